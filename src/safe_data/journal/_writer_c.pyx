# The C hot path's bottom half: CRC32C, the value codec and the record writer.
#
# Same names, same order and the same bytes on disk as the pure twin _writer_py.py (with
# the encoder of codec.py); read those first, they are the easier ones.  What is
# different here, and why:
#
# * A record is encoded into a stack buffer (heap beyond 512 bytes), then committed into
#   the shared mapping by code that makes no Python calls.  Under the GIL that commit is
#   atomic, so threads need no lock on the fast path; only rotation (Python code that
#   may release the GIL) takes the writer's lock.
# * The safe containers (containers/_containers_c.pyx) cimport this module through
#   _writer_c.pxd and call RecordWriter's cdef methods directly; this module knows them
#   only through register_containers(), which they call at import.

cimport cython

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.errno cimport EINTR, EIO, errno
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from ._format cimport *

import os
import threading
import time

from .. import _faults
from ..errors import (CorruptRecordError, JournalClosedError, RecordTooLargeError, ReentrantChangeError,
                      UnpicklableValueError)
from . import format as fmt
from .codec import NestedContainer, load_pickle as _load_pickle, mac as _mac

cdef extern from "Python.h":
    # (borrowed pointers: no reference taken, see read_scalar)
    PyTypeObject* type_of "Py_TYPE"(PyObject* o)
    PyTypeObject PyLong_Type, PyUnicode_Type, PyFloat_Type, PyBool_Type, PyBytes_Type
    PyTypeObject PyDict_Type, PyList_Type, PyTuple_Type
    Py_ssize_t var_size "Py_SIZE"(PyObject* o)
    Py_ssize_t dict_size "PyDict_GET_SIZE"(PyObject* d)
    bint dict_next "PyDict_Next"(PyObject* d, Py_ssize_t* pos, PyObject** k, PyObject** v)
    PyObject* list_item "PyList_GET_ITEM"(PyObject* l, Py_ssize_t i)
    PyObject* tuple_item "PyTuple_GET_ITEM"(PyObject* t, Py_ssize_t i)
    PyObject* none_p "Py_None"
    PyObject* true_p "Py_True"
    bint unicode_is_ascii "PyUnicode_IS_ASCII"(PyObject* s)
    Py_ssize_t unicode_length "PyUnicode_GET_LENGTH"(PyObject* s)
    void* unicode_data "PyUnicode_DATA"(PyObject* s)
    double float_value "PyFloat_AS_DOUBLE"(PyObject* f)
    Py_ssize_t bytes_size "PyBytes_GET_SIZE"(PyObject* b)
    const char* bytes_data "PyBytes_AS_STRING"(PyObject* b)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    object PyMemoryView_FromMemory(char* mem, Py_ssize_t size, int flags)
    int PyBUF_READ
    int PyList_SetItem(object lst, Py_ssize_t i, object item) except -1
    int PyList_SetSlice(object lst, Py_ssize_t low, Py_ssize_t high, PyObject* items) except -1
    Py_ssize_t PyNumber_AsSsize_t(object o, object overflow) except? -1
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    bint PyUnicode_IS_ASCII(object s)
    void* PyUnicode_DATA(object s)
    Py_ssize_t PyUnicode_GET_LENGTH(object s)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    # the same, NULL on error without Cython raising it (see failed_as)
    PyObject* utf8_or_null "PyUnicode_DecodeUTF8"(const char* s, Py_ssize_t size, const char* errors)
    PyObject* set_or_null "PySet_New"(object iterable)
    PyObject* frozenset_or_null "PyFrozenSet_New"(object iterable)
    int dict_set_or_fail "PyDict_SetItem"(object d, object key, object value)
    int PyErr_ExceptionMatches(object exc)
    void PyErr_Clear()
    object PyBytes_FromStringAndSize(const char* s, Py_ssize_t size)
    object PyByteArray_FromStringAndSize(const char* s, Py_ssize_t size)
    object PyLong_FromLongLong(long long v)
    object PyFloat_FromDouble(double v)
    object PyList_New(Py_ssize_t n)
    void PyList_SET_ITEM(object lst, Py_ssize_t i, object item)
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object item)

cdef extern from "_crc32c.h":
    void sd_crc32c_setup()
    uint32_t sd_crc32c(uint32_t crc, const void* p, size_t n) nogil
    uint32_t sd_crc32c_after(uint64_t a, uint64_t b, const void* p, size_t n) nogil
    int sd_crc32c_hardware()

cdef extern from "_clock.h":
    int64_t sd_now_ns() noexcept

cdef extern from "_encode.h":
    bint sd_int_value(PyObject* obj, long long* v) noexcept
    Py_ssize_t leb_size "sd_leb_size"(uint64_t v) noexcept  # (0 takes one byte)
    Py_ssize_t put_leb "sd_put_leb"(char* p, Py_ssize_t at, uint64_t v) noexcept
    void sd_copy(char* to, const char* frm, size_t n) noexcept

cdef extern from "_sys.h":
    const char* sd_zeros
    enum: SD_ZERO_SIZE
    ssize_t pwrite(int fd, const void* buf, size_t n, long offset)
    int sd_fdatasync(int fd) nogil
    int dup(int fd)
    int close(int fd) nogil

cdef extern from "_prefault.h":
    sd_prefaulter* sd_prefault_new()
    sd_prefaulter* sd_prefault_mine(sd_prefaulter* pf)
    void sd_prefault_offer(sd_prefaulter* pf, char* base, size_t start, size_t end, size_t want)
    void sd_prefault_want(sd_prefaulter* pf, size_t want) noexcept
    size_t sd_prefault_ready(sd_prefaulter* pf) noexcept
    void sd_prefault_withdraw(sd_prefaulter* pf)
    void sd_prefault_free(sd_prefaulter* pf)

sd_crc32c_setup()

__all__ = ["DURABILITY_BATCH", "DURABILITY_FSYNC", "DURABILITY_PROCESS", "RecordWriter", "crc32c",
           "decode_values"]

cdef enum:
    STACK_BUF = 512
    MAX_SCRATCH = 16 * 1024 * 1024
    PREPARE_CHUNK = 256 * 1024
    PREFAULT_AHEAD = 2 * 1024 * 1024  # how far the prefaulter keeps ahead of the records
    TOO_DEEP = 2
    FLAT_MAX = 16  # scalars in a Flat

#: a scalar value as read_scalar() read it: its tag, then (T_INT) the zigzag value as LEB128,
#: (T_FLOAT) the double's 8 bytes, or (T_STR, T_BYTES) the size as LEB128 and the data
cdef struct Scalar:
    uint8_t tag
    uint64_t word
    const char* data
    Py_ssize_t size  # the bytes put_scalar writes

#: a list, tuple or dict of scalars as read_flat() read it: its tag, count, and the
#: scalars in order (a dict's keys and values interleaved)
cdef struct Flat:
    uint8_t tag
    Py_ssize_t count
    Py_ssize_t n  # scalars in items
    Scalar items[FLAT_MAX]
    Py_ssize_t size  # the bytes put_flat writes

#: a frame's length is 32 bits (a C variable: the literal alone would be compared as a
#: Python int)
cdef Py_ssize_t MAX_FRAME_LEN = 0xFFFFFFFF

DURABILITY_PROCESS = 0
DURABILITY_BATCH = 1
DURABILITY_FSYNC = 2

cdef object _pickle_dumps = None  # pickle.dumps, imported on the first value pickled (codec.py says why)
cdef object _lz4_compress = None
cdef bint faults_armed = _faults.armed  # SAFE_DATA_FAULT / _TRACE set: see _faults.py

# The safe container types, as register_containers() gives them (None until then): the
# encoder writes them as their builtin base, nested ones preceded by their number.
cdef type _safe_list = None
cdef type _tracked_safe_list = None
cdef type _safe_dict = None
cdef type _safe_set = None
cdef type _tracked_safe_set = None
cdef ContainerNumber _container_number = NULL


cdef int register_containers(type safe_list, type tracked_safe_list, type safe_dict, type safe_set,
                             type tracked_safe_set, ContainerNumber number) except -1:
    global _safe_list, _tracked_safe_list, _safe_dict, _safe_set, _tracked_safe_set, _container_number
    _safe_list, _tracked_safe_list, _safe_dict = safe_list, tracked_safe_list, safe_dict
    _safe_set, _tracked_safe_set = safe_set, tracked_safe_set
    _container_number = number
    return 0

# crc32c() and decode_values() read their argument through the buffer protocol itself, as
# _records_c does: a typed memoryview cost half their time, and Cython's support code for
# memoryviews ran when this module loaded

def crc32c(data):
    """CRC32C of a bytes-like object (the frames' checksum)."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return sd_crc32c(0, view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


def crc32c_is_hardware():
    return bool(sd_crc32c_hardware())


# --- the encode buffer ---------------------------------------------------------------------

cdef int buf_grow(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    cdef char* p
    if cap < b.n + extra:
        cap = b.n + extra
    if b.heap:
        p = <char*>realloc(b.p, cap)
    else:
        p = <char*>malloc(cap)
        if p != NULL:
            memcpy(p, b.p, b.n)
    if p == NULL:
        raise MemoryError()
    b.p = p
    b.cap = cap
    b.heap = True
    return 0


cdef inline int buf_reserve(Buf* b, Py_ssize_t extra) except -1:
    if b.n + extra > b.cap:
        buf_grow(b, extra)
    return 0


cdef inline int put_byte(Buf* b, uint8_t v) except -1:
    if b.n + 1 > b.cap:
        buf_grow(b, 1)
    b.p[b.n] = <char>v
    b.n += 1
    return 0


cdef inline int put_varint(Buf* b, uint64_t v) except -1:
    if b.n + 10 > b.cap:
        buf_grow(b, 10)
    b.n = put_leb(b.p, b.n, v)
    return 0


cdef inline uint64_t zigzag(int64_t v) noexcept:
    """v with its sign in the low bit (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...): small
    numbers of either sign take few LEB128 bytes."""
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)


cdef inline int put_int(Buf* b, long long v) except -1:
    """An int of 64 bits: its tag, then the value zigzag-encoded as a varint."""
    put_byte(b, T_INT)
    return put_varint(b, zigzag(v))


cdef inline int put_raw(Buf* b, const char* data, Py_ssize_t size) except -1:
    buf_reserve(b, size)
    memcpy(b.p + b.n, data, size)
    b.n += size
    return 0


cdef inline int put_tagged_bytes(Buf* b, uint8_t tag, const char* data, Py_ssize_t size) except -1:
    buf_reserve(b, 11 + size)
    b.p[b.n] = <char>tag
    b.n += 1
    put_varint(b, <uint64_t>size)
    memcpy(b.p + b.n, data, size)
    b.n += size
    return 0


# --- the value encoder (journal/codec.py is the reference) ---------------------------------

cdef int encode_pickle(Buf* b, object obj, bytes key) except -1:
    global _pickle_dumps
    if _pickle_dumps is None:
        from pickle import dumps
        _pickle_dumps = dumps
    try:
        data = _pickle_dumps(obj, 5)
    except ReentrantChangeError:
        raise  # the value's __reduce__ changed the container being changed: say that
    except Exception as exc:
        raise UnpicklableValueError(obj, exc) from exc
    tag = _mac(key, data)
    put_byte(b, T_PICKLE)
    put_varint(b, <uint64_t>PyBytes_GET_SIZE(data))
    put_raw(b, PyBytes_AS_STRING(tag), PyBytes_GET_SIZE(tag))
    put_raw(b, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    return 0


cdef int put_nested(Buf* b, object container, bytes key) except -1:
    """A safe container inside a value: T_NESTED and its number (codec._container_number)."""
    put_byte(b, T_NESTED)
    return put_varint(b, _container_number(container, key))


cdef int encode(Buf* b, object obj, int depth, bytes key) except -1:
    """Append the encoding of obj; return TOO_DEEP (nothing usable written) past the limit."""
    cdef type t = type(obj)
    cdef Py_ssize_t size, i, pos
    cdef const char* s
    cdef PyObject* k
    cdef PyObject* val
    if put_if_scalar(b, <PyObject*>obj):  # None, bool, an int of 64 bits, float, ASCII str, bytes
        return 0
    if t is int:  # of more than 64 bits
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        return put_tagged_bytes(b, T_BIGINT, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    if t is str:  # not ASCII
        try:
            s = PyUnicode_AsUTF8AndSize(obj, &size)
        except UnicodeEncodeError:  # lone surrogates: let pickle keep them
            return encode_pickle(b, obj, key)
        return put_tagged_bytes(b, T_STR, s, size)
    if t is bytearray:
        return put_tagged_bytes(b, T_BYTEARRAY, PyByteArray_AS_STRING(obj), PyByteArray_GET_SIZE(obj))
    if t is list or t is _safe_list or t is _tracked_safe_list:
        if depth >= MAX_ENCODE_DEPTH:
            return TOO_DEEP
        if depth and t is not list:
            put_nested(b, obj, key)
        size = PyList_GET_SIZE(obj)
        put_byte(b, T_LIST)
        put_varint(b, <uint64_t>size)
        i = 0
        while i < size:
            if PyList_GET_SIZE(obj) != size:
                raise RuntimeError("list changed size while it was being journaled")
            if not put_if_scalar(b, PyList_GET_ITEM(obj, i)):
                item = <object>PyList_GET_ITEM(obj, i)  # a strong reference: encoding may run code (pickle)
                if encode(b, item, depth + 1, key) == TOO_DEEP:
                    return TOO_DEEP
            i += 1
        return 0
    if t is dict or t is _safe_dict:
        if depth >= MAX_ENCODE_DEPTH:
            return TOO_DEEP
        if depth and t is not dict:
            put_nested(b, obj, key)
        size = len(obj)
        put_byte(b, T_DICT)
        put_varint(b, <uint64_t>size)
        pos = 0
        i = 0
        while PyDict_Next(obj, &pos, &k, &val):
            i += 1
            if not put_if_scalar(b, k):
                kobj = <object>k  # strong references: encoding may run code (pickle)
                vobj = <object>val
                if encode(b, kobj, depth + 1, key) == TOO_DEEP or encode(b, vobj, depth + 1, key) == TOO_DEEP:
                    return TOO_DEEP
            elif not put_if_scalar(b, val):  # (no code ran: the borrowed references held)
                vobj = <object>val
                if encode(b, vobj, depth + 1, key) == TOO_DEEP:
                    return TOO_DEEP
        if i != size or len(obj) != size:
            raise RuntimeError("dict changed size while it was being journaled")
        return 0
    if t is tuple:
        if depth >= MAX_ENCODE_DEPTH:
            return TOO_DEEP
        size = PyTuple_GET_SIZE(obj)
        put_byte(b, T_TUPLE)
        put_varint(b, <uint64_t>size)
        for i in range(size):
            if encode(b, <object>PyTuple_GET_ITEM(obj, i), depth + 1, key) == TOO_DEEP:
                return TOO_DEEP
        return 0
    if t is set or t is _safe_set or t is _tracked_safe_set or t is frozenset:
        if depth >= MAX_ENCODE_DEPTH:
            return TOO_DEEP
        if depth and t is not set and t is not frozenset:
            put_nested(b, obj, key)
        size = len(obj)
        put_byte(b, T_FROZENSET if t is frozenset else T_SET)
        put_varint(b, <uint64_t>size)
        for item in obj:  # the set iterator raises if the set changes size
            if encode(b, item, depth + 1, key) == TOO_DEEP:
                return TOO_DEEP
        return 0
    if t is slice:
        put_byte(b, T_SLICE)
        if (encode(b, obj.start, depth, key) == TOO_DEEP or encode(b, obj.stop, depth, key) == TOO_DEEP
                or encode(b, obj.step, depth, key) == TOO_DEEP):
            return TOO_DEEP
        return 0
    return encode_pickle(b, obj, key)


cdef inline bint read_scalar(PyObject* obj, Scalar* s) noexcept:
    """Read into s a value that encode() writes without running Python code or allocating
    (an int of 64 bits, None, bool, float, ASCII str, bytes), once: what put_scalar writes
    and how many bytes that is.  False for anything else.  (A borrowed pointer: reading it
    takes no reference, and nothing runs that could free it.)"""
    cdef PyTypeObject* t = type_of(obj)
    cdef long long v
    cdef double d
    if t is &PyLong_Type:
        if not sd_int_value(obj, &v):
            return False
        int_scalar(v, s)
    elif t is &PyUnicode_Type:
        if not unicode_is_ascii(obj):
            return False
        s.tag = T_STR
        s.word = <uint64_t>unicode_length(obj)
        s.data = <const char*>unicode_data(obj)  # ASCII: its UTF-8 bytes
        s.size = 1 + leb_size(s.word) + <Py_ssize_t>s.word
    elif t is &PyFloat_Type:
        d = float_value(obj)
        s.tag = T_FLOAT
        memcpy(&s.word, &d, 8)
        s.size = 9
    elif obj is none_p:
        s.tag = T_NONE
        s.size = 1
    elif t is &PyBool_Type:
        s.tag = T_TRUE if obj is true_p else T_FALSE
        s.size = 1
    elif t is &PyBytes_Type:
        s.tag = T_BYTES
        s.word = <uint64_t>bytes_size(obj)
        s.data = bytes_data(obj)
        s.size = 1 + leb_size(s.word) + <Py_ssize_t>s.word
    else:
        return False
    return True


cdef bint read_flat(PyObject* obj, Flat* f) noexcept:
    """Read into f a value that encode() at depth 1 writes without running Python code: a
    list, tuple or dict (the builtin types: a safe container inside a value is written as
    a reference to it) of at most FLAT_MAX scalars.  False for anything else."""
    cdef PyTypeObject* t = type_of(obj)
    cdef Py_ssize_t i = 0, pos = 0
    cdef PyObject* k
    cdef PyObject* v
    f.size = 0
    if t is &PyDict_Type:
        f.count = dict_size(obj)
        if f.count * 2 > FLAT_MAX:
            return False
        while dict_next(obj, &pos, &k, &v):
            if not read_scalar(k, &f.items[i]) or not read_scalar(v, &f.items[i + 1]):
                return False
            f.size += f.items[i].size + f.items[i + 1].size
            i += 2
        f.tag = T_DICT
    elif t is &PyList_Type or t is &PyTuple_Type:
        f.count = var_size(obj)
        if f.count > FLAT_MAX:
            return False
        while i < f.count:
            if not read_scalar(list_item(obj, i) if t is &PyList_Type else tuple_item(obj, i), &f.items[i]):
                return False
            f.size += f.items[i].size
            i += 1
        f.tag = T_LIST if t is &PyList_Type else T_TUPLE
    else:
        return False
    f.n = i
    f.size += 1 + leb_size(<uint64_t>f.count)
    return True


cdef inline Py_ssize_t put_flat(char* p, Py_ssize_t at, const Flat* f) noexcept:
    """Write at p + at what encode() writes for the value read into f (f.size bytes);
    return where they end."""
    cdef Py_ssize_t i
    p[at] = <char>f.tag
    at = put_leb(p, at + 1, <uint64_t>f.count)
    for i in range(f.n):
        at = put_scalar(p, at, &f.items[i])
    return at


cdef inline bint put_if_scalar(Buf* b, PyObject* obj) except -1:
    """encode() of obj if read_scalar() reads it (no recursion, no Python code); False,
    having written nothing, if it does not."""
    cdef Scalar s
    if not read_scalar(obj, &s):
        return False
    buf_reserve(b, s.size)
    b.n = put_scalar(b.p, b.n, &s)
    return True


cdef inline void int_scalar(int64_t v, Scalar* s) noexcept:
    """read_scalar() of the int v, from the C integer (also a list's position: no int
    object)."""
    s.tag = T_INT
    s.word = zigzag(v)
    s.size = 1 + leb_size(s.word)


cdef inline Py_ssize_t put_scalar(char* p, Py_ssize_t at, const Scalar* s) noexcept:
    """Write at p + at the bytes encode() writes for the value read into s (s.size of
    them); return where they end."""
    p[at] = <char>s.tag
    if s.tag == T_INT:
        return put_leb(p, at + 1, s.word)
    if s.tag == T_FLOAT:
        memcpy(p + at + 1, &s.word, 8)
        return at + 9
    if s.tag == T_STR or s.tag == T_BYTES:
        at = put_leb(p, at + 1, s.word)
        sd_copy(p + at, s.data, <size_t>s.word)
        return at + <Py_ssize_t>s.word
    return at + 1


cdef inline Py_ssize_t leb128_size(uint64_t v) noexcept:
    """The bytes of v as LEB128, none for 0 (_commit writes no number then)."""
    return leb_size(v) if v else 0


# --- compact frames (format.py compact_frame is the reference) ------------------------------

cdef inline Py_ssize_t put_len(char* p, Py_ssize_t body) noexcept:
    """A compact frame's length (of a body of ``body`` bytes after the CRC) at p; return
    where its CRC goes."""
    return put_leb(p, 0, <uint64_t>(4 + body))


cdef inline void put_crc(char* at, const char* end, uint64_t seq, int64_t time_ns) noexcept:
    """Write at ``at`` the CRC of a compact frame whose bytes after it end at ``end``:
    CRC32C of its context (seq, time) and of those bytes."""
    cdef uint32_t crc = sd_crc32c_after(seq, <uint64_t>time_ns, at + 4, end - at - 4)
    memcpy(at, &crc, 4)


cdef inline bytes slot_key(unsigned long thread, uint64_t cid, bytes name):
    """The key of a (thread, name, number) in a writer's table: one bytes object."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name)
    cdef bytes key = PyBytes_FromStringAndSize(NULL, 16 + n)
    cdef char* k = PyBytes_AS_STRING(key)
    cdef uint64_t t = thread
    memcpy(k, &t, 8)
    memcpy(k + 8, &cid, 8)
    memcpy(k + 16, PyBytes_AS_STRING(name), n)
    return key


cdef inline Py_ssize_t compact_need(Py_ssize_t plen, bytes name) noexcept:
    """The room a compact frame of a ``plen``-byte payload needs, its definition included."""
    return FRAME_HEADER_SIZE + plen + COMPACT_SLACK + PyBytes_GET_SIZE(name)


cdef inline Py_ssize_t open_compact(RecordWriter w, OpenFrame* f, char* p, uint8_t op, uint8_t flags,
                                    bytes name, uint64_t cid, Py_ssize_t plen, unsigned long thread) except -1:
    """Begin at ``p`` (with compact_need() bytes of room) a compact frame of ``thread`` for
    a payload of ``plen`` bytes, after the definition of its (thread, name, number) if the
    segment's table has none yet: write everything up to the payload and return where it
    goes (from p); close_compact ends the frame.  Between the two, no Python code runs:
    the frame is written atomically under the GIL.  (The slot's key is a bytes object and
    the slot an int: allocating them never starts the garbage collector, whose finalizers
    could write a record in the middle of this one.)"""
    cdef Py_ssize_t name_len = PyBytes_GET_SIZE(name)
    cdef Py_ssize_t slot, at = 0, crc_at
    cdef uint64_t seq = w._seq + 1, zdt
    cdef int64_t now = sd_now_ns()
    cdef PyObject* found
    if name is w._last_name and thread == w._last_thread and cid == w._last_cid:
        slot = w._last_slot
    else:
        key = slot_key(thread, cid, name)
        found = PyDict_GetItemWithError(w._slots, key)
        if found != NULL:
            slot = <Py_ssize_t><object>found
        else:  # first use in this segment: define it
            slot = len(w._slots)
            w._slots[key] = slot
            at = crc_at = put_len(p, 1 + leb_size(<uint64_t>slot) + 8 + leb_size(cid) + name_len)
            f.first = p[0]  # the first byte is written last (see close_compact)
            p[0] = 0
            p[at + 4] = <char>OP_DEFINE
            at = put_leb(p, at + 5, <uint64_t>slot)
            memcpy(p + at, &thread, 8)
            at = put_leb(p, at + 8, cid)
            memcpy(p + at, PyBytes_AS_STRING(name), name_len)
            at += name_len
            put_crc(p + crc_at, p + at, seq, w._time)
        w._last_name, w._last_thread, w._last_cid, w._last_slot = name, thread, cid, slot
    zdt = zigzag(now - w._time)
    crc_at = at + put_len(p + at, 1 + leb_size(zdt) + leb_size(<uint64_t>slot << COMPACT_FLAG_BITS | flags) + plen)
    if at == 0:
        f.first = p[0]
        p[0] = 0
    p[crc_at + 4] = <char>op
    at = put_leb(p, crc_at + 5, zdt)
    f.p = p
    f.crc_at = crc_at
    f.seq = seq
    f.now = now
    f.thread = thread
    return put_leb(p, at, <uint64_t>slot << COMPACT_FLAG_BITS | flags)  # flags in its low bits


cdef inline int close_compact(RecordWriter w, OpenFrame* f, Py_ssize_t end) except -1:
    """End the frame open_compact began, whose payload ends at ``f.p + end``: its CRC, then
    its first byte, which makes it (and its definition) exist."""
    put_crc(f.p + f.crc_at, f.p + end, f.seq, f.now)
    if faults_armed:  # tests only (docs/guarantees.md): a Python call, so not atomic then
        _faults.point("record.write")
    f.p[0] = f.first  # the first byte last: the frames exist once it is written (0 before: the end)
    w._time = f.now
    return w._committed(f.seq, f.thread, f.now, end)


cdef int encode_value(Buf* b, object obj, bytes key) except -1:
    """Top level: a value too deep (or cyclic) for the compact encoding is pickled whole."""
    cdef Py_ssize_t start = b.n
    if encode(b, obj, 0, key) == TOO_DEEP:
        b.n = start
        encode_pickle(b, obj, key)
    return 0


def encode_value_bytes(obj, bytes key):
    """The codec bytes of one value (for tests that compare the two implementations)."""
    cdef char stack[STACK_BUF]
    cdef Buf b
    b.p = stack
    b.n = 0
    b.cap = STACK_BUF
    b.heap = False
    try:
        encode_value(&b, obj, key)
        return b.p[:b.n]
    finally:
        if b.heap:
            free(b.p)


# --- the value decoder (journal/codec.py Decoder is the reference) -------------------------

cdef enum:
    MAX_DECODE_DEPTH = MAX_ENCODE_DEPTH + 2

cdef object _corrupt(Rd* r, str reason):
    raise CorruptRecordError(f"{reason} at payload byte {r.pos}")


cdef int failed_as(Rd* r, object expected, str reason) except -1:
    """The error a C API call just raised: CorruptRecordError(reason) if it is an
    ``expected``, else itself.  (The decoder checks for errors so rather than with try:
    entering a try walks the thread's stack of exception contexts, once per value.)"""
    if PyErr_ExceptionMatches(expected):
        PyErr_Clear()
        _corrupt(r, reason)
    return -1


cdef inline object owned(PyObject* new_reference):
    """An object from a C API call's new reference (not NULL)."""
    value = <object>new_reference
    Py_DECREF(value)  # the cast took a reference of its own
    return value


cdef inline uint8_t rd_byte(Rd* r) except? 255:
    if r.pos >= r.n:
        _corrupt(r, "payload truncated")
    r.pos += 1
    return r.p[r.pos - 1]


cdef uint64_t rd_varint(Rd* r) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b
    while True:
        b = rd_byte(r)
        v |= (<uint64_t>(b & 0x7F)) << shift
        if b < 0x80:
            return v
        shift += 7
        if shift > 63:
            _corrupt(r, "varint too long")


cdef const unsigned char* rd_take(Rd* r, uint64_t size) except NULL:
    if size > <uint64_t>(r.n - r.pos):
        _corrupt(r, f"payload truncated (need {size} bytes)")
    r.pos += <Py_ssize_t>size
    return r.p + r.pos - <Py_ssize_t>size


cdef object rd_value(Rd* r, int depth, object key, bint trust):
    cdef uint8_t tag
    cdef uint64_t z, size, count, i
    cdef const unsigned char* s
    cdef double d
    cdef PyObject* made
    if depth > MAX_DECODE_DEPTH:
        _corrupt(r, "nesting too deep")
    tag = rd_byte(r)
    if tag == T_INT:
        z = rd_varint(r)
        return PyLong_FromLongLong(<long long>((z >> 1) ^ (0 - (z & 1))))
    if tag == T_STR:
        size = rd_varint(r)
        s = rd_take(r, size)
        made = utf8_or_null(<const char*>s, <Py_ssize_t>size, "strict")
        if made is NULL:
            failed_as(r, UnicodeDecodeError, "invalid UTF-8")
        return owned(made)
    if tag == T_NONE:
        return None
    if tag == T_TRUE:
        return True
    if tag == T_FALSE:
        return False
    if tag == T_FLOAT:
        memcpy(&d, rd_take(r, 8), 8)
        return PyFloat_FromDouble(d)
    if tag == T_BYTES or tag == T_BYTEARRAY:
        size = rd_varint(r)
        s = rd_take(r, size)
        if tag == T_BYTES:
            return PyBytes_FromStringAndSize(<const char*>s, <Py_ssize_t>size)
        return PyByteArray_FromStringAndSize(<const char*>s, <Py_ssize_t>size)
    if tag == T_LIST or tag == T_TUPLE or tag == T_SET or tag == T_FROZENSET:
        count = rd_varint(r)
        if count > <uint64_t>(r.n - r.pos):  # every item takes at least one byte
            _corrupt(r, "item count exceeds payload")
        if tag == T_TUPLE:
            items = PyTuple_New(<Py_ssize_t>count)
            for i in range(count):
                item = rd_value(r, depth + 1, key, trust)
                Py_INCREF(item)  # SET_ITEM steals a reference
                PyTuple_SET_ITEM(items, <Py_ssize_t>i, item)
            return items
        items = PyList_New(<Py_ssize_t>count)
        for i in range(count):
            item = rd_value(r, depth + 1, key, trust)
            Py_INCREF(item)
            PyList_SET_ITEM(items, <Py_ssize_t>i, item)
        if tag == T_LIST:
            return items
        made = set_or_null(items) if tag == T_SET else frozenset_or_null(items)
        if made is NULL:
            failed_as(r, TypeError, "unhashable set element")
        return owned(made)
    if tag == T_DICT:
        count = rd_varint(r)
        if count > <uint64_t>(r.n - r.pos) // 2:
            _corrupt(r, "item count exceeds payload")
        out = {}
        for i in range(count):
            k = rd_value(r, depth + 1, key, trust)
            v = rd_value(r, depth + 1, key, trust)
            if dict_set_or_fail(out, k, v) < 0:
                failed_as(r, TypeError, "unhashable dict key")
        return out
    if tag == T_SLICE:
        start = rd_value(r, depth + 1, key, trust)
        stop = rd_value(r, depth + 1, key, trust)
        return slice(start, stop, rd_value(r, depth + 1, key, trust))
    if tag == T_BIGINT:
        size = rd_varint(r)
        s = rd_take(r, size)
        return int.from_bytes(PyBytes_FromStringAndSize(<const char*>s, <Py_ssize_t>size), "little", signed=True)
    if tag == T_PICKLE:
        size = rd_varint(r)
        mac = PyBytes_FromStringAndSize(<const char*>rd_take(r, 32), 32)
        s = rd_take(r, size)
        return _load_pickle(PyBytes_FromStringAndSize(<const char*>s, <Py_ssize_t>size), mac, key, trust)
    if tag == T_NESTED:
        z = rd_varint(r)
        if r.pos >= r.n or (r.p[r.pos] != T_LIST and r.p[r.pos] != T_DICT and r.p[r.pos] != T_SET):
            _corrupt(r, "a nested container that is not a list, dict or set")
        value = rd_value(r, depth, key, trust)  # (its own tag was checked: no recursion through here)
        return NestedContainer(z, value) if r.nested_ids else value
    _corrupt(r, f"unknown value tag 0x{tag:02x}")


def decode_values(payload, key, bint trust_pickles, int count, bint nested_ids=False):
    """Decode exactly ``count`` consecutive values filling ``payload`` (see codec.Decoder)."""
    cdef Py_buffer view
    cdef Rd r
    cdef int i
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        r.p = <const unsigned char*>view.buf
        r.n = view.len
        r.pos = 0
        r.nested_ids = nested_ids
        values = [rd_value(&r, 0, key, trust_pickles) for i in range(count)]
        if r.pos != r.n:
            raise CorruptRecordError("unexpected bytes after the payload")
        return values
    finally:
        PyBuffer_Release(&view)


# --- the record writer ---------------------------------------------------------------------

cdef class RecordWriter:
    """Appends frames to the active segment of one journal, for all threads of a process."""

    def __cinit__(self):
        self._has_view = False
        self._base = NULL
        self._fd = -1
        self._op_free = threading.Condition(threading.Lock())
        self._flushed = threading.Condition(threading.RLock())

    def __init__(self, manager, bytes mac_key, int durability, Py_ssize_t compress_threshold):
        self._manager = manager
        self._key = mac_key
        self._fsync = durability == DURABILITY_FSYNC
        self._threshold = compress_threshold
        self._lock = threading.Lock()
        self._pos = self._end = self._prepared = 0
        self._seq = 0
        self._closed = False
        self._compact = manager.compact
        self._slots = {}

    def __dealloc__(self):
        self._drop_prefaulter()
        if self._has_view:
            PyBuffer_Release(&self._view)
        free(self._scratch)

    @property
    def seq(self):
        return self._seq

    @property
    def bytes_written(self):
        """Bytes of the frames this process wrote through this writer (since a fork)."""
        return self._bytes

    @property
    def prefaulted_to(self):
        """The offset in the active segment up to which its pages are faulted in ahead of
        the records by the writer's prefaulter thread (_prefault.h); 0 if none has been."""
        return sd_prefault_ready(self._prefaulter) if self._prefaulter_here() != NULL else 0

    def set_hook(self, hook):
        """Call ``hook(seq, time_ns, op, name, key, values, caller, container_id)`` after
        each record is in the journal, in the writing thread (inside the operation: in
        "fsync" mode before the flush that ends it); None: no hook.
        """
        self._hook = hook
        self._hooked = hook is not None

    cdef int _wait_for_operation(self, unsigned long me) except -1:
        self._op_waiters += 1
        try:
            with self._op_free:
                while self._op_owner != 0:
                    self._op_free.wait(0.05)
                self._op_owner = me  # no Python code since the test above: still free
                self._op_depth = 1
                self._op_epoch += 1
        finally:
            self._op_waiters -= 1
        return 0

    @property
    def operation_lock(self):
        """For the Python twin's containers: the same lock as a context manager."""
        return _OperationLock(self)

    @property
    def op_epoch(self):
        """How many outermost operations have begun (see _Binding.begin)."""
        return self._op_epoch

    @property
    def adding_lock(self):
        """For the Python twin's adding methods (C containers' adds take no lock)."""
        return _OperationLock(self)

    @property
    def flushes(self):
        """fdatasync calls made to put records on disk ("fsync" mode; since a fork): fewer
        than the records when concurrent operations shared them."""
        return self._flushes

    @property
    def synced(self):
        """The seq up to which every record is known to be on disk ("fsync" mode)."""
        return self._synced

    @property
    def mac_key(self):
        """The journal's key, which authenticates pickles (and tells its containers)."""
        return self._key

    def next_container_id(self):
        """A number for a new container, unique among this writer's (codes 1, 2, ...)."""
        return self.new_container_id()

    def append(self, int op, bytes name, key, values, caller=None, uint64_t container_id=0):
        """Journal one record; return its sequence number.  Raises before anything is lost."""
        self.record(<uint8_t>op, name, container_id, key, values, caller)
        return self._last_seq

    cdef int record(self, uint8_t op, bytes name, uint64_t cid, object key, object values,
                    object caller) except -1:
        cdef char stack[STACK_BUF]
        cdef Buf b
        self._take_buffer(&b, stack)
        try:
            encode_value(&b, key, self._key)
            encode_value(&b, values, self._key)
            if caller is not None:
                encode_value(&b, caller, self._key)
            self._finish(op, name, cid, &b, FLAG_CALLER if caller is not None else 0)
        finally:
            self._give_back(&b)
        if self._hooked:  # no Python code ran since the commit: _last_seq is this record's
            self._hook(self._last_seq, self._last_time, op, name, key, values, caller, cid)
        return 0

    cdef int record_one(self, uint8_t op, bytes name, uint64_t cid, object key, uint8_t tag,
                        object item_key, object item, object caller) except -1:
        """Like record() with values = [item], {item} or {item_key: item}, built in place."""
        cdef char stack[STACK_BUF]
        cdef Buf b
        if caller is not None or not self.direct(op, name, cid, key, 0, False, tag, item_key, item):
            self._take_buffer(&b, stack)
            try:
                encode_value(&b, key, self._key)
                self._one(&b, op, name, cid, tag, item_key, item, caller)
            finally:
                self._give_back(&b)
        if self._hooked:
            self._hook(self._last_seq, self._last_time, op, name, key,
                       {item_key: item} if tag == T_DICT else ({item} if tag == T_SET else [item]),
                       caller, cid)
        return 0

    cdef int record_at(self, uint8_t op, bytes name, uint64_t cid, Py_ssize_t index, object item,
                       object caller) except -1:
        """record_one() of a list's item with its position as the key: the same bytes, but
        the position is encoded from the C integer (no int object per pop)."""
        cdef char stack[STACK_BUF]
        cdef Buf b
        if caller is not None or not self.direct(op, name, cid, None, index, True, T_LIST, None, item):
            self._take_buffer(&b, stack)
            try:
                put_int(&b, index)
                self._one(&b, op, name, cid, T_LIST, None, item, caller)
            finally:
                self._give_back(&b)
        if self._hooked:
            self._hook(self._last_seq, self._last_time, op, name, index, [item], caller, cid)
        return 0

    cdef int direct(self, uint8_t op, bytes name, uint64_t cid, object key, Py_ssize_t index, bint at,
                    uint8_t tag, object item_key, object item) except -1:
        """Write a one-item record (its key: ``key``, or the position ``index`` if ``at``)
        straight into the mapping, when its keys are scalars and its item a scalar or a
        small list, tuple or dict of them (read_flat), which encode() writes without
        running Python code or allocating, and the payload is too small to compress: no
        buffer, no copy, each value read once, no Python code run.  Return 1 when written;
        0, having written nothing, for the general path: other values, a payload to
        compress, or no room ready (made then, which runs Python code: the caller must
        read its values again).

        A container's operation calls it before it changes anything (its thread holds the
        operation lock): when it returns 1, what it journaled is still what is there."""
        cdef Scalar k, ik, v
        cdef Flat fv
        cdef bint flat = False
        cdef Py_ssize_t size, need, end
        cdef char* p
        cdef OpenFrame f
        if not read_scalar(<PyObject*>item, &v):
            if not read_flat(<PyObject*>item, &fv):
                return 0
            flat = True
            v.size = fv.size
        if at:
            int_scalar(index, &k)
        elif not read_scalar(<PyObject*>key, &k):
            return 0
        size = k.size + 2 + v.size  # and the one-item container's tag and count
        if tag == T_DICT:
            if not read_scalar(<PyObject*>item_key, &ik):
                return 0
            size += ik.size
        if size >= self._threshold:
            return 0
        if self._compact:
            need = compact_need(size, name)
        else:
            need = FRAME_HEADER_SIZE + PyBytes_GET_SIZE(name) + leb128_size(cid) + size
        if need > self._prepared - self._pos:
            self._make_room(need)
            return 0
        p = self._base + self._pos
        if self._compact:
            end = open_compact(self, &f, p, op, 0, name, cid, size, self._op_owner)
        else:
            end = need - size
        end = put_scalar(p, end, &k)
        p[end] = <char>tag
        p[end + 1] = 1
        end += 2
        if tag == T_DICT:
            end = put_scalar(p, end, &ik)
        end = put_flat(p, end, &fv) if flat else put_scalar(p, end, &v)
        if self._compact:
            close_compact(self, &f, end)
        else:
            self._commit(op, 0, name, cid, p + need - size, size)
        return 1

    cdef int _one(self, Buf* b, uint8_t op, bytes name, uint64_t cid, uint8_t tag, object item_key,
                  object item, object caller) except -1:
        """The rest of a one-item record after its key: the item as a one-element list, set
        or dict, the caller, and the commit."""
        cdef Py_ssize_t start = b.n
        put_byte(b, tag)
        put_byte(b, 1)
        if tag == T_DICT and encode(b, item_key, 1, self._key) == TOO_DEEP:
            b.n = start
            encode_pickle(b, {item_key: item}, self._key)
        elif encode(b, item, 1, self._key) == TOO_DEEP:
            b.n = start
            encode_pickle(b, {item_key: item} if tag == T_DICT else ({item} if tag == T_SET else [item]),
                          self._key)
        if caller is not None:
            encode_value(b, caller, self._key)
        return self._finish(op, name, cid, b, FLAG_CALLER if caller is not None else 0)

    cdef void _take_buffer(self, Buf* b, char* stack):
        """Encode into the writer's scratch buffer when it is free, else on the stack.

        Large records would otherwise fault in fresh heap pages on every call (a third of
        the time of a clear() of a million items); the scratch keeps them mapped.
        """
        b.n = 0
        if self._scratch != NULL and not self._scratch_busy:
            self._scratch_busy = True  # encoding may run Python code (pickle): another thread
            b.p = self._scratch        # then encodes into its own buffer
            b.cap = self._scratch_cap
            b.heap = b.scratch = True
        else:
            b.p = stack
            b.cap = STACK_BUF
            b.heap = b.scratch = False

    cdef void _give_back(self, Buf* b):
        if b.scratch:
            self._scratch_busy = False
            if b.cap <= MAX_SCRATCH:
                self._scratch, self._scratch_cap = b.p, b.cap  # it may have been reallocated
                return
            self._scratch = NULL
            self._scratch_cap = 0
        elif b.heap and self._scratch == NULL and b.cap <= MAX_SCRATCH:
            self._scratch, self._scratch_cap = b.p, b.cap
            return
        if b.heap:
            free(b.p)

    cdef int _finish(self, uint8_t op, bytes name, uint64_t cid, Buf* b, uint8_t flags) except -1:
        global _lz4_compress
        cdef const char* payload = b.p
        cdef Py_ssize_t plen = b.n
        cdef bytes packed
        if plen >= self._threshold:
            if _lz4_compress is None:
                from lz4.block import compress
                _lz4_compress = compress
            if plen > LZ4_PROBE_SIZE:  # incompressible (say, a million ints)? skip it: see format.md
                packed = _lz4_compress(PyMemoryView_FromMemory(b.p, LZ4_PROBE_SIZE, PyBUF_READ), store_size=True)
                if PyBytes_GET_SIZE(packed) * 10 > LZ4_PROBE_SIZE * 9:
                    self._commit(op, flags, name, cid, payload, plen)
                    return 0
            packed = _lz4_compress(PyMemoryView_FromMemory(b.p, b.n, PyBUF_READ), store_size=True)
            if PyBytes_GET_SIZE(packed) < plen:
                payload = PyBytes_AS_STRING(packed)
                plen = PyBytes_GET_SIZE(packed)
                flags |= FLAG_COMPRESSED
        self._commit(op, flags, name, cid, payload, plen)
        return 0

    cdef int _commit(self, uint8_t op, uint8_t flags, bytes name, uint64_t cid,
                     const char* payload, Py_ssize_t plen) except -1:
        if self._compact:
            return self._commit_compact(op, flags, name, cid, payload, plen)
        cdef Py_ssize_t name_len = PyBytes_GET_SIZE(name)
        cdef char id_bytes[10]
        cdef Py_ssize_t id_len = 0
        cdef Py_ssize_t frame_len
        cdef char* p
        cdef uint64_t thread
        cdef int64_t now
        cdef uint16_t nlen = <uint16_t>name_len
        cdef uint32_t flen, crc
        cdef uint64_t seq
        if cid:  # the container's number, LEB128, after the name
            flags |= FLAG_ID
            while cid > 0x7F:
                id_bytes[id_len] = <char>((cid & 0x7F) | 0x80)
                id_len += 1
                cid >>= 7
            id_bytes[id_len] = <char>cid
            id_len += 1
        frame_len = FRAME_HEADER_SIZE + name_len + id_len + plen
        p = self._room(frame_len)
        # From here to the end of the copy: no Python calls, so atomic under the GIL.
        seq = self._seq + 1
        thread = PyThread_get_thread_ident()
        now = sd_now_ns()
        memcpy(p + 8, &seq, 8)
        memcpy(p + 16, &now, 8)
        memcpy(p + 24, &thread, 8)
        p[32] = <char>op
        p[33] = <char>flags
        memcpy(p + 34, &nlen, 2)
        memcpy(p + FRAME_HEADER_SIZE, PyBytes_AS_STRING(name), name_len)
        memcpy(p + FRAME_HEADER_SIZE + name_len, id_bytes, id_len)
        if payload != p + FRAME_HEADER_SIZE + name_len + id_len:  # else encoded in place (direct)
            memcpy(p + FRAME_HEADER_SIZE + name_len + id_len, payload, plen)
        crc = sd_crc32c(0, p + 8, frame_len - 8)
        flen = <uint32_t>frame_len
        memcpy(p + 4, &crc, 4)
        if faults_armed:  # tests only (docs/guarantees.md): a Python call, so not atomic then
            _faults.point("record.write")
        memcpy(p, &flen, 4)  # the length last: the frame exists once it is written
        return self._committed(seq, thread, now, frame_len)

    cdef int _commit_compact(self, uint8_t op, uint8_t flags, bytes name, uint64_t cid,
                             const char* payload, Py_ssize_t plen) except -1:
        """_commit of a compact frame (format version 2)."""
        cdef OpenFrame f
        cdef char* p = self._room(compact_need(plen, name))
        cdef Py_ssize_t at = open_compact(self, &f, p, op, flags, name, cid, plen, PyThread_get_thread_ident())
        memcpy(p + at, payload, plen)
        return close_compact(self, &f, at + plen)

    cdef int _to_disk(self, uint64_t seq, unsigned long thread) except -1:
        """_committed's part in "fsync" mode: record ``seq`` on its way to the disk."""
        if self._op_owner == thread:  # on disk once the operation ends, outside its lock
            if not self._op_first:
                self._op_first = seq
                self._unsettled += 1
            self._op_last = seq
        else:
            self._unsettled += 1
            self._settle(seq, seq)
        return 0

    cdef int _settle(self, uint64_t first, uint64_t last) except -1:
        """Return once the records ``first`` to ``last`` (one operation's, or one append's)
        are on disk ("fsync" mode); raise OSError if a failed flush or seal covered one.

        Group commit: one thread at a time flushes (the leader, ``_flusher``), with one
        fdatasync, every record written so far, holding no lock meanwhile.  Threads that
        wrote meanwhile wait on ``_flushed``; the leader wakes them all when done, and each
        finds its record on disk, or leads the next flush, for all that wrote since.  A
        finalizer run by the leader's thread may discard and settle in turn: it flushes
        itself rather than wait for itself (the condition's lock is reentrant for it).
        """
        cdef unsigned long me = PyThread_get_thread_ident(), outer
        try:
            while True:
                with self._flushed:
                    while True:
                        failed = self._failed
                        if failed is not None and failed[0] < last and first <= failed[1]:
                            raise OSError(failed[2], failed[3])
                        if last <= self._synced:
                            return 0
                        if self._flusher in (0, me):
                            break
                        self._flushed.wait()
                    outer, self._flusher = self._flusher, me
                try:
                    # let the threads just woken by the last flush write their records
                    # first (a GIL switch, ~1 us against a ~1 ms fdatasync): one flush then
                    # covers them, rather than each leading a flush of its own
                    time.sleep(0)
                    self._flush()
                finally:
                    with self._flushed:
                        self._flusher = outer
                        self._flushed.notify_all()
        finally:
            self._unsettled -= 1
            if not self._unsettled:
                self._failed = None  # no record it covered is left to report it

    cdef int _flush(self) except -1:
        """One fdatasync of the active segment, for every record written so far (those of
        earlier segments are on disk: sealing fsyncs them, see _seal)."""
        cdef uint64_t target = self._seq, lo = self._synced
        cdef int fd, rc = 0, err = 0
        if self._base == NULL:
            # a rotation let the GIL go while sealing them; its fsync marks them.  (The
            # twin's holds its lock throughout: the seal has marked them already.)
            time.sleep(0.001)
            return 0
        fd = dup(self._fd)  # without the GIL, on a duplicate: a rotation may close the original
        if fd < 0:
            raise OSError(errno, os.strerror(errno))
        self._flushes += 1
        try:
            if faults_armed:
                _faults.point("record.sync")
            with nogil:
                rc = sd_fdatasync(fd)
                err = errno
        except OSError as exc:
            self._fail(lo, target, exc)
            return 0
        finally:
            close(fd)
        if rc != 0:
            self._fail(lo, target, OSError(err, f"fdatasync of the journal segment failed: {os.strerror(err)}"))
        elif self._synced < target:
            self._synced = target
        return 0

    cdef int _fail(self, uint64_t lo, uint64_t hi, object exc) except -1:
        """Note that the records lo < seq <= hi may not be on disk: a flush or a seal of them
        failed.  Each reports it to its operation, even after a later flush succeeds: once
        fdatasync has failed, the kernel may have dropped their dirty pages, and a retry
        proves nothing about them.  Forgotten when none is left."""
        code = exc.errno if isinstance(exc, OSError) and exc.errno else EIO
        failed = self._failed
        if failed is not None:
            lo, hi = min(lo, failed[0]), max(hi, failed[1])
        self._failed = (lo, hi, code, f"records {lo + 1} to {hi} of the journal may not be on disk: {exc}")
        return 0

    cdef char* _make_room(self, Py_ssize_t frame_len) except NULL:
        """_room's slow part: rotate to a new segment, write zeros ahead."""
        if frame_len > MAX_FRAME_LEN:
            raise RecordTooLargeError(f"a {frame_len}-byte record exceeds the 4 GiB frame limit; nothing was discarded")
        while self._pos + frame_len > self._end:
            self._rotate(frame_len)
        if self._pos + frame_len > self._prepared:
            self._prepare(self._pos + frame_len)
        return self._base + self._pos

    cdef int _prepare(self, Py_ssize_t upto) except -1:
        """Make the pages up to ``upto`` ready: populated by the prefaulter, or else zeros
        written ahead of the frames, PREPARE_CHUNK at a time.

        The first store into a page of a fresh file mapping costs a page fault that
        allocates it (about 4 us on ext4); pwrite puts the same pages in the page cache
        eight times faster, after which a store into the mapping costs a lighter fault,
        which the prefaulter's thread takes instead where it runs (_prefault.h).
        """
        cdef Py_ssize_t target = self._prepared + PREPARE_CHUNK
        cdef Py_ssize_t n
        cdef ssize_t written
        if self._prefaulter_here() == NULL:  # (a fork ended it: again from here)
            self._start_prefaulter()
        if self._prefaulter != NULL:
            sd_prefault_want(self._prefaulter, <size_t>(upto + PREFAULT_AHEAD))
            n = <Py_ssize_t>sd_prefault_ready(self._prefaulter)
            if n >= upto:  # come back a chunk on, to keep it ahead
                self._prepared = min(n, upto + PREPARE_CHUNK)
                return 0
        if target < upto:
            target = upto
        if target > self._end:
            target = self._end
        while self._prepared < target:
            n = target - self._prepared
            if n > SD_ZERO_SIZE:
                n = SD_ZERO_SIZE
            written = pwrite(self._fd, sd_zeros, n, self._prepared)
            if written < 0:
                if errno == EINTR:
                    continue
                raise OSError(errno, f"writing to the journal segment failed: {os.strerror(errno)}")
            self._prepared += written
        return 0

    cdef int _rotate(self, Py_ssize_t need) except -1:
        with self._lock:
            if self._pos + need <= self._end:
                return 0  # another thread rotated while we waited
            if self._closed:
                raise JournalClosedError("the journal is closed; nothing was discarded")
            self._seal()
            m, start, end, fd = self._manager.open(need, self._seq + 1)
            PyObject_GetBuffer(m, &self._view, PyBUF_WRITABLE)
            self._has_view = True
            self._map = m
            self._base = <char*>self._view.buf
            self._fd = fd
            self._end = end
            self._pos = self._prepared = start
            self._start_prefaulter()
            # a new segment, a new table: every segment is read alone
            self._slots = {}
            self._last_name = None
            self._time = self._manager.active.created_ns
        return 0

    cdef int _seal(self) except -1:
        """Seal the active segment, if any (under self._lock), and note its records on disk
        ("fsync" mode: sealing fsyncs), or that they may not be if sealing failed."""
        used = self._pos
        self._release_map()
        try:
            self._manager.seal(used, self._seq)
        except BaseException as exc:
            if self._fsync:
                self._fail(self._synced, self._seq, exc)
            raise
        if self._fsync:
            self._synced = self._seq
        return 0

    cdef void _release_map(self):
        if self._prefaulter_here() != NULL:  # before the mapping can be unmapped
            sd_prefault_withdraw(self._prefaulter)
        self._base = NULL
        self._pos = self._end = self._prepared = 0
        self._fd = -1
        if self._has_view:
            self._has_view = False
            PyBuffer_Release(&self._view)
        self._map = None

    def sync(self):
        """Make every record written so far durable (fdatasync of the active segment)."""
        cdef int fd, rc
        if self._base == NULL:
            return
        if faults_armed:
            _faults.point("record.sync")
        fd = dup(self._fd)
        if fd < 0:
            raise OSError(errno, os.strerror(errno))
        with nogil:
            rc = sd_fdatasync(fd)
            close(fd)
        if rc != 0:
            raise OSError(errno, f"fdatasync of the journal segment failed: {os.strerror(errno)}")

    def seal_segment(self):
        """Seal the active segment now (the next record opens a new one), so that what it
        holds can be shipped; nothing happens if no segment is open."""
        with self._lock:
            if self._closed or self._base == NULL:
                return
            self._seal()

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._seal()
            finally:
                self._drop_prefaulter()

    cdef sd_prefaulter* _prefaulter_here(self) noexcept:
        """The prefaulter, if its thread runs in this process; a forked child forgets its
        parent's without touching it (_prefault.h)."""
        self._prefaulter = sd_prefault_mine(self._prefaulter)
        return self._prefaulter

    cdef void _start_prefaulter(self):
        """Have the active segment's pages faulted in ahead of the records (_prefault.h):
        from each new segment's start, and from where the records are after a fork."""
        if self._prefaulter_here() == NULL:
            self._prefaulter = sd_prefault_new()
        if self._prefaulter != NULL:
            sd_prefault_offer(self._prefaulter, self._base, <size_t>self._pos, <size_t>self._end,
                              <size_t>(self._pos + PREFAULT_AHEAD))

    cdef void _drop_prefaulter(self):
        if self._prefaulter_here() != NULL:
            sd_prefault_withdraw(self._prefaulter)
            sd_prefault_free(self._prefaulter)
            self._prefaulter = NULL

    def before_fork(self):
        """End the prefaulter's thread: a child has none of its parent's threads, and
        CPython 3.12+ warns at a fork of a process with threads (3.13 counts them after
        the fork's hooks for the parent, so the next chunk of records starts it again,
        not such a hook)."""
        self._drop_prefaulter()

    def after_fork_in_child(self):
        """A forked child must never write into its parent's segment."""
        self._lock = threading.Lock()
        # another thread of the parent may have been inside an operation: start free
        self._op_free = threading.Condition(threading.Lock())
        self._op_owner = 0
        self._op_depth = 0
        self._op_waiters = 0
        self._op_first = 0
        self._release_map()
        self._seq = self._last_seq = self._bytes = 0
        self._flushed = threading.Condition(threading.RLock())
        self._flusher = 0
        self._synced = self._unsettled = self._flushes = 0
        self._failed = None
        self._manager.forget_after_fork()


@cython.final
cdef class _OperationLock:
    cdef RecordWriter writer

    def __cinit__(self, RecordWriter writer):
        self.writer = writer

    def __enter__(self):
        self.writer.enter()

    def __exit__(self, *exc):
        self.writer.leave()
