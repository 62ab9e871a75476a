# Reading back at scale: a run of sound frames decoded into Records, or into the columns of
# a RecordBatch, in C (journal/bulk.py calls it).  reader.scan_frames and reader.decode_frame are the reference: this takes a
# frame only when they would take it without a word (its length fits, its CRC32C verifies,
# its seq is the next one, it is no hole, it decodes), and stops at the first frame it
# cannot take so plainly; the caller reads the rest of the segment from there through them.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from ._format cimport *
from ._writer_c cimport Rd, rd_value

from ..errors import CorruptRecordError

cdef extern from "Python.h":
    object PyLong_FromLongLong(long long v)
    object PyLong_FromUnsignedLongLong(unsigned long long v)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyBytes_FromStringAndSize(const char* s, Py_ssize_t size)
    char* PyBytes_AS_STRING(object b)
    Py_ssize_t PyBytes_GET_SIZE(object b)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object item)
    int PyList_Append(object lst, object item) except -1
    object PyByteArray_FromStringAndSize(const char* s, Py_ssize_t size)
    char* PyByteArray_AS_STRING(object b)
    int PyByteArray_Resize(object b, Py_ssize_t size) except -1

cdef extern from "_records.h":
    object sd_new_tuple_of(type t, Py_ssize_t n)

cdef extern from "_crc32c.h":
    void sd_crc32c_setup()
    uint32_t sd_crc32c(uint32_t crc, const void* p, size_t n) nogil
    uint32_t sd_crc32c_after(uint64_t a, uint64_t b, const void* p, size_t n) nogil

sd_crc32c_setup()

__all__ = ["FrameDecoder"]

cdef enum:
    RECORD_FIELDS = 14  # reader.Record
    MAX_ID_BYTES = 9    # a container number beyond 63 bits goes to reader.leb128


cdef inline Py_ssize_t get_leb(const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, uint64_t* out) noexcept:
    """Read the LEB128 number at pos (before end) into out; where it ends, or -1."""
    cdef uint64_t v = 0
    cdef int shift = 0
    while pos < end and shift < 64:
        v |= (<uint64_t>(p[pos] & 0x7F)) << shift
        pos += 1
        if p[pos - 1] < 0x80:
            out[0] = v
            return pos
        shift += 7
    return -1


cdef inline uint32_t context_crc(uint64_t seq, int64_t time_ns, const unsigned char* rest, Py_ssize_t n) noexcept:
    """A compact frame's CRC: of its context (seq, time) and of its bytes after the CRC."""
    return sd_crc32c_after(seq, <uint64_t>time_ns, rest, n)


cdef inline void put(object t, Py_ssize_t i, object item) noexcept:
    Py_INCREF(item)  # SET_ITEM steals a reference
    PyTuple_SET_ITEM(t, i, item)


cdef class FrameDecoder:
    """Decodes the frames of one segment into ``record_type`` instances (reader.Record),
    as reader.decode_frame does: ``ops`` is format.OPS, ``decompress`` reader's lz4
    step, ``key``/``trust_pickles``/``nested_ids`` as decode_frame's."""

    cdef type record_type
    cdef tuple kinds, op_names  # by op code (256 each): format.OPS split; None: unknown
    cdef object decompress
    cdef object pid, writer, segment, key
    cdef bint trust, nested_ids
    cdef bytes last_name  # the last container name seen, raw, and as a str: records
    cdef object last_text  # come in runs of one container, so most names decode once
    cdef uint64_t last_thread
    cdef object last_thread_obj
    # what decode() took of the last frame, for record() or append_columns(): no tuple a record
    cdef object _name, _key, _values, _caller, _container_id
    # compact frames (format version 2): the state a frame is read in (compact.State's)
    cdef bint compact
    cdef uint64_t c_seq
    cdef int64_t c_time
    cdef list table  # slot -> (thread, name bytes, number, name str, container_id)

    def __init__(self, type record_type, dict ops, decompress, pid, writer, str segment, key,
                 bint trust_pickles, bint nested_ids):
        if not issubclass(record_type, tuple) or record_type.__dictoffset__:
            raise TypeError("record_type must be a tuple subclass with __slots__ = ()")
        self.record_type = record_type
        self.kinds = tuple(ops.get(code, (None, None))[0] for code in range(256))
        self.op_names = tuple(ops.get(code, (None, None))[1] for code in range(256))
        self.decompress = decompress
        self.pid, self.writer, self.segment, self.key = pid, writer, segment, key
        self.trust, self.nested_ids = trust_pickles, nested_ids
        self.last_name = b""
        self.last_text = ""
        self.last_thread_obj = None
        self.compact = False
        self.table = []

    def start_compact(self, uint64_t base_seq, int64_t created_ns):
        """Read compact frames (format version 2) from the state of a segment's start."""
        self.compact = True
        self.c_seq, self.c_time = base_seq, created_ns
        self.table = []

    def compact_state(self):
        """(seq, time_ns, table) where the compact frames stopped: a compact.State's."""
        return self.c_seq, self.c_time, [entry[:3] for entry in self.table]

    def run(self, data, Py_ssize_t pos, expected, Py_ssize_t limit, bint columns=False):
        """Decode up to ``limit`` consecutive frames from byte ``pos`` of ``data`` (a
        segment's bytes), the first numbered ``expected`` (None: any); stop before the
        first one reader.scan_frames or decode_frame would say anything about, or at the
        end.  Return (records, where the next frame is, the seq it must carry).

        With ``columns``, the records are columns instead (batches.RecordBatch makes them
        one): seq, time_ns, thread and offset as bytearrays of native 64-bit integers,
        then lists of container, kind, op, key, values, caller and container_id."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t n, count = 0
        cdef uint32_t frame_len, crc
        cdef uint64_t seq, next_seq = 0
        cdef bint numbered = expected is not None
        cdef uint64_t* numbers[4]
        if numbered:
            next_seq = expected
        if self.compact:
            return self.run_compact(data, pos, limit, columns)
        if columns:
            made = tuple([PyByteArray_FromStringAndSize(NULL, limit * 8) for _ in range(4)]
                         + [[] for _ in range(7)])
            for i in range(4):
                numbers[i] = <uint64_t*>PyByteArray_AS_STRING(made[i])
        else:
            made = []
        # the buffer protocol itself: a typed memoryview costs microseconds a call
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        p, n = <const unsigned char*>view.buf, view.len
        # one try a run, not one a frame: entering a try walks the thread's stack of
        # exception contexts (deep under the reader's generators)
        try:
            while count < limit and n - pos >= 4:
                memcpy(&frame_len, p + pos, 4)
                if frame_len < FRAME_HEADER_SIZE or frame_len > n - pos:
                    break
                memcpy(&crc, p + pos + 4, 4)
                if sd_crc32c(0, p + pos + 8, frame_len - 8) != crc:
                    break
                memcpy(&seq, p + pos + 8, 8)
                if numbered and seq != next_seq:
                    break
                if not self.decode(p + pos, frame_len):
                    break
                if columns:
                    numbers[0][count] = seq
                    memcpy(&numbers[1][count], p + pos + 16, 8)  # time_ns
                    memcpy(&numbers[2][count], p + pos + 24, 8)  # thread
                    numbers[3][count] = <uint64_t>pos
                    self.append_columns(made, p[pos + 32])
                else:
                    PyList_Append(made, self.record(p + pos, pos, seq))
                count += 1
                next_seq, numbered = seq + 1, True
                pos += frame_len
        except CorruptRecordError:
            pass  # the frame at pos does not decode: the Python reader says why
        finally:
            PyBuffer_Release(&view)
        if columns:
            for i in range(4):
                PyByteArray_Resize(made[i], count * 8)
        return made, pos, (next_seq if numbered else None)

    def run_compact(self, data, Py_ssize_t pos, Py_ssize_t limit, bint columns):
        """run() of compact frames: from the state the frames before ``pos`` left, which
        it advances (compact_state() tells it); the same checks as reader._scan_compact,
        stopping at the first frame it would say anything about."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t n, count = 0, body, end, at
        cdef uint64_t length, value, seq, slot, thread, number
        cdef int64_t time_ns
        cdef uint32_t crc
        cdef uint8_t op
        cdef uint64_t* numbers[4]
        if columns:
            made = tuple([PyByteArray_FromStringAndSize(NULL, limit * 8) for _ in range(4)]
                         + [[] for _ in range(7)])
            for i in range(4):
                numbers[i] = <uint64_t*>PyByteArray_AS_STRING(made[i])
        else:
            made = []
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        p, n = <const unsigned char*>view.buf, view.len
        try:
            while count < limit:
                body = get_leb(p, pos, n if n - pos < 5 else pos + 5, &length)
                if body < 0 or length < 6 or length > <uint64_t>(n - body):
                    break
                end = body + <Py_ssize_t>length
                op = p[body + 4]
                memcpy(&crc, p + body, 4)
                if op == OP_DEFINE:
                    if crc != context_crc(self.c_seq + 1, self.c_time, p + body + 4, end - body - 4):
                        break
                    at = get_leb(p, body + 5, end, &slot)
                    if at < 0 or at + 8 > end or slot != <uint64_t>len(self.table):
                        break
                    memcpy(&thread, p + at, 8)
                    at = get_leb(p, at + 8, end, &number)
                    if at < 0:
                        break
                    raw = PyBytes_FromStringAndSize(<const char*>p + at, end - at)
                    try:
                        text = PyUnicode_DecodeUTF8(<const char*>p + at, end - at, "strict")
                    except UnicodeDecodeError:
                        break  # decode_frame says so, of each record of it
                    self.table.append((PyLong_FromUnsignedLongLong(thread), raw, PyLong_FromUnsignedLongLong(number),
                                       text, PyLong_FromUnsignedLongLong(number) if number else None))
                    pos = end
                    continue
                if op == OP_HOLE:
                    break
                at = get_leb(p, body + 5, end, &value)
                if at < 0:
                    break
                seq = self.c_seq + 1
                time_ns = self.c_time + <int64_t>((value >> 1) ^ (0 - (value & 1)))
                if crc != context_crc(seq, time_ns, p + body + 4, end - body - 4):
                    break
                at = get_leb(p, at, end, &value)
                if at < 0 or (value >> COMPACT_FLAG_BITS) >= <uint64_t>len(self.table):
                    break
                entry = self.table[value >> COMPACT_FLAG_BITS]
                if not self.decode_payload(p + at, end - at, op, <uint8_t>(value & ((1 << COMPACT_FLAG_BITS) - 1))):
                    break
                self._name, self._container_id = entry[3], entry[4]
                if columns:
                    numbers[0][count] = seq
                    memcpy(&numbers[1][count], &time_ns, 8)
                    numbers[2][count] = <uint64_t>entry[0]
                    numbers[3][count] = <uint64_t>pos
                    self.append_columns(made, op)
                else:
                    PyList_Append(made, self.make_record(seq, time_ns, entry[0], op, pos))
                self.c_seq, self.c_time = seq, time_ns
                count += 1
                pos = end
        except CorruptRecordError:
            pass  # the frame at pos does not decode: the Python reader says why
        finally:
            PyBuffer_Release(&view)
        if columns:
            for i in range(4):
                PyByteArray_Resize(made[i], count * 8)
        return made, pos, self.c_seq + 1

    cdef bint decode_payload(self, const unsigned char* b, Py_ssize_t n, uint8_t op, uint8_t flags) except -1:
        """Decode a verified record's payload into ``_key``, ``_values`` and ``_caller``;
        False if decode_frame would not take it plainly (an unknown op, bytes left
        over); CorruptRecordError if it does not decode."""
        cdef Rd r
        if self.kinds[op] is None:
            return False
        r.p, r.n, r.pos, r.nested_ids = b, n, 0, self.nested_ids
        if flags & FLAG_COMPRESSED:
            payload = self.decompress(PyBytes_FromStringAndSize(<const char*>r.p, r.n))
            r.p, r.n = <const unsigned char*>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)
        self._key = rd_value(&r, 0, self.key, self.trust)
        self._values = rd_value(&r, 0, self.key, self.trust)
        self._caller = rd_value(&r, 0, self.key, self.trust) if flags & FLAG_CALLER else None
        return r.pos == r.n

    cdef object make_record(self, uint64_t seq, int64_t time_ns, object thread, uint8_t op, Py_ssize_t offset):
        """The Record of what decode_payload() just took, of a compact frame."""
        record = sd_new_tuple_of(self.record_type, RECORD_FIELDS)
        put(record, 0, PyLong_FromUnsignedLongLong(seq))
        put(record, 1, PyLong_FromLongLong(time_ns))
        put(record, 2, self._name)
        put(record, 3, self.kinds[op])
        put(record, 4, self.op_names[op])
        put(record, 5, self._key)
        put(record, 6, self._values)
        put(record, 7, self.pid)
        put(record, 8, thread)
        put(record, 9, self._caller)
        put(record, 10, self.writer)
        put(record, 11, self.segment)
        put(record, 12, PyLong_FromLongLong(offset))
        put(record, 13, self._container_id)
        return record

    cdef bint decode(self, const unsigned char* f, uint32_t frame_len) except -1:
        """Decode the verified frame at ``f`` into ``_name``, ``_key``, ``_values``,
        ``_caller`` and ``_container_id``; False if decode_frame would not take it plainly
        (a hole, a name longer than its frame, an unknown op or flag, a name that is not
        UTF-8); CorruptRecordError if its payload
        does not decode."""
        cdef uint64_t number = 0
        cdef uint8_t op = f[32], flags = f[33]
        cdef uint16_t name_len
        cdef Py_ssize_t body, i
        cdef Rd r
        memcpy(&name_len, f + 34, 2)
        body = FRAME_HEADER_SIZE + name_len
        if op == OP_HOLE or body > frame_len or flags & ~KNOWN_FLAGS:
            return False
        if self.kinds[op] is None:
            return False
        container_id = None
        if flags & FLAG_ID:
            i = 0
            while True:
                if i == MAX_ID_BYTES or body + i >= frame_len:
                    return False
                number |= (<uint64_t>(f[body + i] & 0x7F)) << (7 * i)
                i += 1
                if f[body + i - 1] < 0x80:
                    break
            container_id = PyLong_FromUnsignedLongLong(number)
            body += i
        r.p, r.n, r.pos, r.nested_ids = f + body, frame_len - body, 0, self.nested_ids
        if flags & FLAG_COMPRESSED:
            payload = self.decompress(PyBytes_FromStringAndSize(<const char*>r.p, r.n))
            r.p, r.n = <const unsigned char*>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)
        key = rd_value(&r, 0, self.key, self.trust)
        values = rd_value(&r, 0, self.key, self.trust)
        caller = rd_value(&r, 0, self.key, self.trust) if flags & FLAG_CALLER else None
        if r.pos != r.n:
            return False
        name = self.name(f + FRAME_HEADER_SIZE, name_len)
        if name is None:
            return False
        self._name, self._key, self._values, self._caller = name, key, values, caller
        self._container_id = container_id
        return True

    cdef object record(self, const unsigned char* f, Py_ssize_t offset, uint64_t seq):
        """The Record of the frame at ``f`` that decode() just took."""
        cdef int64_t time_ns
        cdef uint64_t thread
        cdef uint8_t op = f[32]
        memcpy(&time_ns, f + 16, 8)
        memcpy(&thread, f + 24, 8)
        if self.last_thread_obj is None or thread != self.last_thread:
            self.last_thread, self.last_thread_obj = thread, PyLong_FromUnsignedLongLong(thread)
        record = sd_new_tuple_of(self.record_type, RECORD_FIELDS)
        put(record, 0, PyLong_FromUnsignedLongLong(seq))
        put(record, 1, PyLong_FromLongLong(time_ns))
        put(record, 2, self._name)
        put(record, 3, self.kinds[op])
        put(record, 4, self.op_names[op])
        put(record, 5, self._key)
        put(record, 6, self._values)
        put(record, 7, self.pid)
        put(record, 8, self.last_thread_obj)
        put(record, 9, self._caller)
        put(record, 10, self.writer)
        put(record, 11, self.segment)
        put(record, 12, PyLong_FromLongLong(offset))
        put(record, 13, self._container_id)
        return record

    cdef int append_columns(self, tuple made, uint8_t op) except -1:
        """Append what decode() just took to the object columns of ``made``."""
        PyList_Append(made[4], self._name)
        PyList_Append(made[5], self.kinds[op])
        PyList_Append(made[6], self.op_names[op])
        PyList_Append(made[7], self._key)
        PyList_Append(made[8], self._values)
        PyList_Append(made[9], self._caller)
        PyList_Append(made[10], self._container_id)
        return 0

    cdef object name(self, const unsigned char* raw, uint16_t size):
        """The container name, decoded (None: not UTF-8)."""
        if size == len(self.last_name) and memcmp(raw, PyBytes_AS_STRING(self.last_name), size) == 0:
            return self.last_text
        try:
            text = PyUnicode_DecodeUTF8(<const char*>raw, size, "strict")
        except UnicodeDecodeError:
            return None
        self.last_name, self.last_text = PyBytes_FromStringAndSize(<const char*>raw, size), text
        return text
