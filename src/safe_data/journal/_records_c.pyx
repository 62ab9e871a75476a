# Reading back at scale: a run of sound frames decoded into Records in C (journal/bulk.py
# calls it).  reader.scan_frames and reader.decode_frame are the reference: this takes a
# frame only when they would take it without a word (its length fits, its CRC32C verifies,
# its seq is the next one, it is no hole, it decodes), and stops at the first frame it
# cannot take so plainly; the caller reads the rest of the segment from there through them.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.list cimport PyList_GET_SIZE
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
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object item)
    int PyList_Append(object lst, object item) except -1

cdef extern from "_records.h":
    object sd_new_tuple_of(type t, Py_ssize_t n)

cdef extern from "_crc32c.h":
    void sd_crc32c_setup()
    uint32_t sd_crc32c(uint32_t crc, const void* p, size_t n) nogil

sd_crc32c_setup()

__all__ = ["FrameDecoder"]

cdef enum:
    RECORD_FIELDS = 14  # reader.Record
    MAX_ID_BYTES = 9    # a container number beyond 63 bits goes to reader.leb128


cdef inline void put(object t, Py_ssize_t i, object item):
    Py_INCREF(item)  # SET_ITEM steals a reference
    PyTuple_SET_ITEM(t, i, item)


cdef class FrameDecoder:
    """Decodes the frames of one segment into ``record_type`` instances (reader.Record),
    as reader.decode_frame does: ``ops`` is format.OPS, ``decompress`` reader's lz4
    step, ``key``/``trust_pickles``/``nested_ids`` as decode_frame's."""

    cdef type record_type
    cdef dict ops
    cdef object decompress
    cdef object pid, writer, segment, key
    cdef bint trust, nested_ids
    cdef bytes last_name  # the last container name seen, raw, and as a str: records
    cdef object last_text  # come in runs of one container, so most names decode once
    cdef uint64_t last_thread
    cdef object last_thread_obj

    def __init__(self, type record_type, dict ops, decompress, pid, writer, str segment, key,
                 bint trust_pickles, bint nested_ids):
        if not issubclass(record_type, tuple) or record_type.__dictoffset__:
            raise TypeError("record_type must be a tuple subclass with __slots__ = ()")
        self.record_type = record_type
        self.ops = ops
        self.decompress = decompress
        self.pid, self.writer, self.segment, self.key = pid, writer, segment, key
        self.trust, self.nested_ids = trust_pickles, nested_ids
        self.last_name = b""
        self.last_text = ""
        self.last_thread_obj = None

    def run(self, data, Py_ssize_t pos, expected, Py_ssize_t limit):
        """Decode up to ``limit`` consecutive frames from byte ``pos`` of ``data`` (a
        segment's bytes), the first numbered ``expected`` (None: any); stop before the
        first one reader.scan_frames or decode_frame would say anything about, or at the
        end.  Return (records, where the next frame is, the seq it must carry)."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t n
        cdef uint32_t frame_len, crc
        cdef uint64_t seq, next_seq = 0
        cdef bint numbered = expected is not None
        if numbered:
            next_seq = expected
        records = []
        # the buffer protocol itself: a typed memoryview costs microseconds a call
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            p, n = <const unsigned char*>view.buf, view.len
            while PyList_GET_SIZE(records) < limit and n - pos >= 4:
                memcpy(&frame_len, p + pos, 4)
                if frame_len < FRAME_HEADER_SIZE or frame_len > n - pos:
                    break
                memcpy(&crc, p + pos + 4, 4)
                if sd_crc32c(0, p + pos + 8, frame_len - 8) != crc:
                    break
                memcpy(&seq, p + pos + 8, 8)
                if numbered and seq != next_seq:
                    break
                record = self.record(p + pos, frame_len, pos, seq)
                if record is None:
                    break
                PyList_Append(records, record)
                next_seq, numbered = seq + 1, True
                pos += frame_len
        finally:
            PyBuffer_Release(&view)
        return records, pos, (next_seq if numbered else None)

    cdef object record(self, const unsigned char* f, uint32_t frame_len, Py_ssize_t offset, uint64_t seq):
        """The Record of the verified frame at ``f``, or None if decode_frame would not
        take it plainly (a hole, a name longer than its frame, an unknown op or flag, a
        payload that does not decode)."""
        cdef int64_t time_ns
        cdef uint64_t thread, number = 0
        cdef uint8_t op = f[32], flags = f[33]
        cdef uint16_t name_len
        cdef Py_ssize_t body, size, i
        cdef Rd r
        memcpy(&name_len, f + 34, 2)
        body = FRAME_HEADER_SIZE + name_len
        if op == OP_HOLE or body > frame_len or flags & ~KNOWN_FLAGS:
            return None
        found = PyDict_GetItemWithError(self.ops, op)
        if found is NULL:
            return None
        kind_op = <object>found
        container_id = None
        if flags & FLAG_ID:
            i = 0
            while True:
                if i == MAX_ID_BYTES or body + i >= frame_len:
                    return None
                number |= (<uint64_t>(f[body + i] & 0x7F)) << (7 * i)
                i += 1
                if f[body + i - 1] < 0x80:
                    break
            container_id = PyLong_FromUnsignedLongLong(number)
            body += i
        r.p, r.n, r.pos, r.nested_ids = f + body, frame_len - body, 0, self.nested_ids
        if flags & FLAG_COMPRESSED:
            try:
                payload = self.decompress(PyBytes_FromStringAndSize(<const char*>r.p, r.n))
            except CorruptRecordError:
                return None
            r.p, r.n = <const unsigned char*>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)
        try:
            key = rd_value(&r, 0, self.key, self.trust)
            values = rd_value(&r, 0, self.key, self.trust)
            caller = rd_value(&r, 0, self.key, self.trust) if flags & FLAG_CALLER else None
        except CorruptRecordError:
            return None
        if r.pos != r.n:
            return None
        name = self.name(f + FRAME_HEADER_SIZE, name_len)
        if name is None:
            return None
        memcpy(&time_ns, f + 16, 8)
        memcpy(&thread, f + 24, 8)
        if self.last_thread_obj is None or thread != self.last_thread:
            self.last_thread, self.last_thread_obj = thread, PyLong_FromUnsignedLongLong(thread)
        record = sd_new_tuple_of(self.record_type, RECORD_FIELDS)
        put(record, 0, PyLong_FromUnsignedLongLong(seq))
        put(record, 1, PyLong_FromLongLong(time_ns))
        put(record, 2, name)
        put(record, 3, kind_op[0])
        put(record, 4, kind_op[1])
        put(record, 5, key)
        put(record, 6, values)
        put(record, 7, self.pid)
        put(record, 8, self.last_thread_obj)
        put(record, 9, caller)
        put(record, 10, self.writer)
        put(record, 11, self.segment)
        put(record, 12, PyLong_FromLongLong(offset))
        put(record, 13, container_id)
        return record

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
