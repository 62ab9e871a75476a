# What the C containers use of the writer: the RecordWriter type with its cdef methods,
# called directly (no Python call on the hot path), and the containers' registration;
# and what the frame decoder (_records_c.pyx) uses: the value decoder.

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef extern from "Python.h":
    unsigned long PyThread_get_thread_ident()

cdef extern from "<pthread.h>":
    # PyThread_get_thread_ident() on POSIX (the same number), without the call into the
    # interpreter: enter() asks for it once per operation
    unsigned long thread_ident "(unsigned long)pthread_self"() nogil

cdef extern from "_prefault.h":
    ctypedef struct sd_prefaulter:
        pass

cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    bint heap     # p is malloc'd
    bint scratch  # ... and is the writer's reusable scratch buffer (see RecordWriter._take_buffer)

#: a safe container's number in the journal whose MAC key is ``key`` (0: another journal)
ctypedef uint64_t (*ContainerNumber)(object container, bytes key) noexcept

cdef int register_containers(type safe_list, type tracked_safe_list, type safe_dict, type safe_set,
                             type tracked_safe_set, ContainerNumber number) except -1


#: a payload being decoded (rd_value reads one value from it)
cdef struct Rd:
    const unsigned char* p
    Py_ssize_t n
    Py_ssize_t pos
    bint nested_ids  # T_NESTED gives a NestedContainer (codec.Decoder.nested_ids)

#: the next value of ``r`` (CorruptRecordError if it is malformed), as codec.Decoder.value
cdef object rd_value(Rd* r, int depth, object key, bint trust)


#: a compact frame between open_compact and close_compact (_writer_c.pyx)
cdef struct OpenFrame:
    char* p  # where its bytes (and its definition's, if any) start
    Py_ssize_t crc_at
    char first  # its first byte, written last
    uint64_t seq
    int64_t now
    unsigned long thread


@cython.final  # (cdef methods called directly, which the C compiler may inline)
cdef class RecordWriter:
    cdef object _manager
    cdef bytes _key
    cdef bint _fsync  # durability is DURABILITY_FSYNC (a C flag: no Python comparison per record)
    cdef Py_ssize_t _threshold
    cdef object _lock
    cdef object _map
    cdef Py_buffer _view
    cdef bint _has_view
    cdef char* _base
    cdef Py_ssize_t _pos
    cdef Py_ssize_t _end
    cdef Py_ssize_t _prepared  # zeros written or pages populated up to here (see _prepare)
    cdef sd_prefaulter* _prefaulter  # populates the active segment's pages ahead, or NULL
    cdef int _fd
    cdef uint64_t _seq
    cdef bint _closed
    cdef char* _scratch
    cdef Py_ssize_t _scratch_cap
    cdef bint _scratch_busy
    cdef unsigned long _op_owner  # see enter()
    cdef int _op_depth
    cdef int _op_waiters
    cdef uint64_t _op_epoch  # counts the outermost enter()s: see _Binding.begin
    cdef object _op_free  # threading.Condition, used only when contended
    cdef object _hook  # called after each record (Journal.on_discard), or None
    cdef bint _hooked  # _hook is not None: the one test the hot path pays for it
    cdef uint64_t _bytes  # frame bytes written by this process (safe_data.stats())
    cdef uint64_t _containers  # numbers given to containers (next_container_id)
    cdef uint64_t _last_seq  # seq and time of the last record committed, read by append()
    cdef int64_t _last_time  # and by the hook right after the commit (no Python code between)
    # group commit ("fsync" mode, see _settle)
    cdef uint64_t _op_first  # the seqs of the operation's records, put on disk by leave()
    cdef uint64_t _op_last
    cdef object _flushed  # threading.Condition(RLock()): a flush ended
    cdef unsigned long _flusher  # the thread flushing, 0 if none
    cdef uint64_t _synced  # every record up to this seq is on disk
    cdef object _failed  # (lo, hi, errno, message) or None: see _fail
    cdef Py_ssize_t _unsettled  # operations and appends whose records _settle has not answered for
    cdef uint64_t _flushes  # fdatasync calls made for records
    # compact frames (format version 2; see _commit_compact)
    cdef bint _compact  # the manager writes version-2 segments
    cdef dict _slots  # the active segment's table: key bytes (see slot_key) -> slot
    cdef int64_t _time  # the time of the segment's last frame (its created time before any)
    cdef unsigned long _last_thread  # the last record's thread, name (the bytes object itself)
    cdef bytes _last_name  # and container number, and their slot: most records are of the
    cdef uint64_t _last_cid  # container of the record before (None: no such record in this
    cdef Py_ssize_t _last_slot  # segment)

    cdef inline uint64_t new_container_id(self) noexcept:
        """A number for a new container, unique among this writer's (codes 1, 2, ...): no
        Python code runs, so under the GIL two threads never get the same."""
        self._containers += 1
        return self._containers

    cdef inline int enter(self) except -1:
        """Begin one destructive operation: reading what it discards, journaling it and
        changing the container happen under this reentrant lock, one operation at a
        time per journal.  Without it, a thread switch while a record is written (a
        rotation, a pickle, lz4) lets another thread move the items, and the operation
        then deletes something it did not journal.

        Uncontended it is two stores: the owner field is tested and set by C code that
        holds the GIL throughout, so that is atomic.  Only a thread that finds another
        owner (which let the GIL go in a slow path) waits, on a Condition.
        """
        cdef unsigned long me = thread_ident()
        if self._op_owner == me:
            self._op_depth += 1  # reentered: a pickled value discarding from another container
        elif self._op_owner == 0:
            self._op_owner = me
            self._op_depth = 1
            self._op_epoch += 1
        else:
            self._wait_for_operation(me)
        return 0

    cdef inline int leave(self) except -1:
        cdef uint64_t first, last
        self._op_depth -= 1
        if self._op_depth == 0:
            first, last = self._op_first, self._op_last
            self._op_first = 0
            self._op_owner = 0
            if self._op_waiters:
                with self._op_free:
                    self._op_free.notify()
            if first:  # "fsync" mode: the operation's records on disk, outside its lock
                self._settle(first, last)
        return 0

    cdef int _wait_for_operation(self, unsigned long me) except -1
    cdef int record(self, uint8_t op, bytes name, uint64_t cid, object key, object values,
                    object caller) except -1
    cdef int record_one(self, uint8_t op, bytes name, uint64_t cid, object key, uint8_t tag,
                        object item_key, object item, object caller) except -1
    cdef int record_at(self, uint8_t op, bytes name, uint64_t cid, Py_ssize_t index, object item,
                       object caller) except -1
    cdef int direct(self, uint8_t op, bytes name, uint64_t cid, object key, Py_ssize_t index, bint at,
                    uint8_t tag, object item_key, object item) except -1
    cdef inline char* _room(self, Py_ssize_t frame_len) except NULL:
        """Make room for a frame of frame_len bytes at the write position; return where it
        goes.  Zeros are written ahead of the frames (_prepare): when they reach that far,
        there is nothing to do (a frame that fits within them is under the frame limit)."""
        if frame_len <= self._prepared - self._pos:
            return self._base + self._pos
        return self._make_room(frame_len)

    cdef char* _make_room(self, Py_ssize_t frame_len) except NULL
    cdef int _one(self, Buf* b, uint8_t op, bytes name, uint64_t cid, uint8_t tag, object item_key,
                  object item, object caller) except -1
    cdef void _take_buffer(self, Buf* b, char* stack)
    cdef void _give_back(self, Buf* b)
    cdef int _finish(self, uint8_t op, bytes name, uint64_t cid, Buf* b, uint8_t flags) except -1
    cdef int _commit(self, uint8_t op, uint8_t flags, bytes name, uint64_t cid,
                     const char* payload, Py_ssize_t plen) except -1
    cdef int _commit_compact(self, uint8_t op, uint8_t flags, bytes name, uint64_t cid,
                             const char* payload, Py_ssize_t plen) except -1
    cdef inline int _committed(self, uint64_t seq, unsigned long thread, int64_t now, Py_ssize_t size) except -1:
        """What follows the commit of record ``seq`` (``size`` bytes): the writer's state,
        and in "fsync" mode its way to the disk."""
        self._pos += size
        self._seq = seq
        self._bytes += <uint64_t>size
        if self._fsync:
            self._to_disk(seq, thread)
        # after a flush (which let the GIL go): this thread's record, for append() and the hook
        self._last_seq = seq
        self._last_time = now
        return 0

    cdef int _to_disk(self, uint64_t seq, unsigned long thread) except -1
    cdef int _prepare(self, Py_ssize_t upto) except -1
    cdef int _settle(self, uint64_t first, uint64_t last) except -1
    cdef int _flush(self) except -1
    cdef int _fail(self, uint64_t lo, uint64_t hi, object exc) except -1
    cdef int _rotate(self, Py_ssize_t need) except -1
    cdef int _seal(self) except -1
    cdef void _release_map(self)
    cdef sd_prefaulter* _prefaulter_here(self) noexcept
    cdef void _start_prefaulter(self)
    cdef void _drop_prefaulter(self)
