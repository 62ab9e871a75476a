"""The C half of ``safe_data.watch`` (containers/watch.py): one dict watcher (CPython 3.12+)
for every watched dict.

CPython calls the watcher inside the dict operation, before the change, with the dict
half-way through it: the callback must neither run Python code nor let the GIL go, or
another thread could change the dict under the operation.  So it only takes references
(the old value of an overwritten or deleted key, a copy of a cleared dict), queues them,
and asks for them to be journaled right after: by a pending call, which the main thread
runs at its next check between bytecodes, and by the committer thread
(``commit_forever()``) that it wakes.  watch.py encodes what ``take()`` returns.
"""

from cpython.object cimport PyObject
from cpython.long cimport PyLong_FromVoidPtr

cdef extern from "Python.h":
    ctypedef enum PyDict_WatchEvent:
        PyDict_EVENT_ADDED
        PyDict_EVENT_MODIFIED
        PyDict_EVENT_DELETED
        PyDict_EVENT_CLONED
        PyDict_EVENT_CLEARED
        PyDict_EVENT_DEALLOCATED
    ctypedef int (*PyDict_WatchCallback)(PyDict_WatchEvent, PyObject*, PyObject*, PyObject*) noexcept
    int PyDict_AddWatcher(PyDict_WatchCallback callback) except -1
    int PyDict_Watch(int watcher_id, object d) except -1
    int PyDict_Unwatch(int watcher_id, object d) except -1
    PyObject* PyDict_GetItemWithError(object d, PyObject* key)  # borrowed, NULL if absent
    Py_ssize_t PyDict_Size(object d) except -1
    dict PyDict_Copy(object d)
    PyObject* PyErr_GetRaisedException()
    void PyErr_SetRaisedException(PyObject* exc)
    PyObject* PyErr_Occurred()
    void PyErr_WriteUnraisable(object obj)
    int Py_AddPendingCall(int (*func)(void*) noexcept, void* arg)
    ctypedef void* PyThread_type_lock
    PyThread_type_lock PyThread_allocate_lock()
    int PyThread_acquire_lock(PyThread_type_lock lock, int waitflag) nogil
    void PyThread_release_lock(PyThread_type_lock lock) nogil

#: event codes take() reports (the watcher's own are not part of the limited API)
MODIFIED = PyDict_EVENT_MODIFIED
DELETED = PyDict_EVENT_DELETED
CLEARED = PyDict_EVENT_CLEARED
DEALLOCATED = PyDict_EVENT_DEALLOCATED

cdef int _watcher = -1
#: id(dict) -> the watch settings object watch.py gave (it has ``on_dealloc``)
cdef dict _watched = {}
#: (settings, event, key, old value or contents), in the order the changes happened
cdef list _queue = []
#: released when the queue stops being empty; the committer thread waits on it
cdef PyThread_type_lock _wake = NULL
#: the Python function the pending call runs (watch.py's drain), set by start()
cdef object _drain = None
cdef bint _pending = False


def start(drain) -> None:
    """Register the one watcher of this interpreter; ``drain()`` journals what is queued."""
    global _watcher, _wake, _drain
    if _watcher != -1:
        return
    _wake = PyThread_allocate_lock()
    if _wake == NULL:
        raise MemoryError("could not allocate the watcher's lock")
    PyThread_acquire_lock(_wake, 0)  # held: the committer waits until a change is queued
    _drain = drain
    _watcher = PyDict_AddWatcher(_on_change)


def watch(dict d, settings) -> None:
    PyDict_Watch(_watcher, d)
    _watched[id(d)] = settings


def unwatch(dict d) -> None:
    PyDict_Unwatch(_watcher, d)
    del _watched[id(d)]


def settings_of(dict d):
    """The settings ``d`` is watched with, or None."""
    return _watched.get(id(d))


def take() -> list:
    """What the watcher queued since the last call, oldest first."""
    global _queue
    queued = _queue
    _queue = []
    return queued


def commit_forever() -> None:
    """The committer thread: journal the queue each time the watcher wakes it."""
    while True:
        with nogil:
            PyThread_acquire_lock(_wake, 1)
        _drain_reporting()


cdef int _run_drain(void* arg) noexcept:
    """The pending call: the main thread journals the queue at its next safe point."""
    global _pending
    _pending = False
    _drain_reporting()
    return 0


cdef void _drain_reporting() noexcept:
    try:
        _drain()
    except BaseException:  # (a warning made an error) it would surface in unrelated code
        PyErr_WriteUnraisable(_drain)


cdef int _on_change(PyDict_WatchEvent event, PyObject* d, PyObject* key, PyObject* new_value) noexcept:
    if event == PyDict_EVENT_ADDED or event == PyDict_EVENT_CLONED:
        return 0  # nothing is lost: a new key, or an empty dict filled by a copy
    # CPython may call a watcher with an exception set; it must still be set afterwards
    cdef PyObject* pending_exc = PyErr_GetRaisedException()
    if _capture(event, <object>d, key, new_value) < 0:
        PyErr_WriteUnraisable(<object>d)
    PyErr_SetRaisedException(pending_exc)
    return 0


cdef int _capture(PyDict_WatchEvent event, object d, PyObject* key, PyObject* new_value) except -1:
    """Queue the references ``event`` would lose.  Runs no Python code: only dict, list and
    tuple operations of the C API on builtin objects."""
    global _pending
    cdef object ident = PyLong_FromVoidPtr(<void*>d)
    settings = _watched.get(ident)
    if settings is None:
        return 0
    cdef PyObject* old
    if event == PyDict_EVENT_MODIFIED or event == PyDict_EVENT_DELETED:
        old = PyDict_GetItemWithError(d, key)
        if old == NULL or old == new_value:  # (an error is reported by the caller)
            return -1 if PyErr_Occurred() != NULL else 0
        item = (settings, <int>event, <object>key, <object>old)
    else:  # cleared, or deallocated: the whole contents
        if event == PyDict_EVENT_DEALLOCATED:
            del _watched[ident]
            if not settings.on_dealloc:
                return 0
        if not PyDict_Size(d):
            return 0
        item = (settings, <int>event, None, PyDict_Copy(d))  # (a subclass's own copy() is not called)
    _queue.append(item)
    if len(_queue) == 1:
        PyThread_release_lock(_wake)
    if not _pending and Py_AddPendingCall(_run_drain, NULL) == 0:
        _pending = True
    return 0
