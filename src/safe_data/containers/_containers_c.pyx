# The C hot path's top half: SafeList, SafeDict and SafeSet.
#
# Same names, same order and the same bytes on disk as the pure twin _containers_py.py;
# read that file first, it is the easier one.  What is different here, and why:
#
# * Records are written by the C RecordWriter (journal/_writer_c.pyx), cimported through
#   its .pxd: enter(), leave(), record() and record_one() are direct C calls.
# * Base-class methods are called through the C API or through references stored at
#   import (_list_*).  Calling `list.pop(self, i)` from an overriding `pop` lets Cython
#   "optimise" it into a method lookup that finds our own override again.
# * One discarded item is encoded in place as a one-element list/dict/set
#   (record_one): no temporary container per pop/del/discard.
# * Construction: each class's tp_vectorcall parses ``SafeX(iterable, name=..., ...)``
#   from the caller's stack and calls the same _init_* function as ``__init__``: no
#   argument tuple, no keyword dict, no base-class __init__ looked up (the twin's
#   ``__init__`` is that function).  Anything else takes type's own call.

cimport cython
from cpython.dict cimport PyDict_Clear, PyDict_Copy, PyDict_DelItem, PyDict_Next, PyDict_SetItem, PyDict_Update
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_Insert
from cpython.slice cimport PySlice_AdjustIndices, PySlice_Unpack
from cpython.object cimport Py_EQ, PyObject, PyObject_RichCompareBool, PyTypeObject, newfunc
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_SIZE
from cpython.set cimport PySet_Add, PySet_Contains, PySet_Discard, PySet_Pop
from libc.stdint cimport uint8_t, uint64_t

from ..journal._format cimport T_DICT, T_LIST, T_SET
from ..journal._writer_c cimport RecordWriter, register_containers

import operator
import weakref

from . import _support
from ..errors import ReentrantChangeError
from ..journal import codec
from ..journal import format as fmt
from ..journal import registry

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    int PyList_SetItem(object lst, Py_ssize_t i, object item) except -1
    int PyList_SetSlice(object lst, Py_ssize_t low, Py_ssize_t high, PyObject* items) except -1
    Py_ssize_t PyNumber_AsSsize_t(object o, object overflow) except? -1
    object PyList_New(Py_ssize_t n)
    void PyList_SET_ITEM(object lst, Py_ssize_t i, object item)
    PyTypeObject PyList_Type
    PyTypeObject PySet_Type

cdef extern from *:
    """
    /* Move every item of a list into a new one: O(1), and it runs no Python code (the
       new list is allocated before anything is read), so under the GIL no other thread
       can add to or reorder the list between what is taken and what is left. */
    static PyObject* sd_list_take_all(PyObject* list) {
        PyListObject* out = (PyListObject*)PyList_New(0);
        PyListObject* a = (PyListObject*)list;
        if (out == NULL) return NULL;
        out->ob_item = a->ob_item;
        out->allocated = a->allocated;
        Py_SET_SIZE(out, Py_SIZE(a));
        a->ob_item = NULL;
        a->allocated = 0;
        Py_SET_SIZE(a, 0);
        return (PyObject*)out;
    }

    /* Take the item at i (0 <= i < size) out of a list; return the list's reference to
       it.  It runs no Python code: the list's reference becomes the caller's, so no
       finalizer runs.  The last item, when the list need not shrink its storage (as
       list.pop() would), is taken by lowering the size: no slice assignment. */
    static PyObject* sd_list_take_at(PyObject* list, Py_ssize_t i) {
        PyListObject* a = (PyListObject*)list;
        Py_ssize_t n = Py_SIZE(a);
        PyObject* item = a->ob_item[i];
        if (i == n - 1 && n - 1 >= (a->allocated >> 1)) {
            Py_SET_SIZE(a, n - 1);
            return item;
        }
        Py_INCREF(item);
        if (PyList_SetSlice(list, i, i + 1, NULL) < 0) {
            Py_DECREF(item);
            return NULL;
        }
        return item;
    }

    /* list's own subscript assignment (a SafeList's slot would find our override). */
    static int sd_list_assign(PyObject* list, PyObject* key, PyObject* value) {
        return PyList_Type.tp_as_mapping->mp_ass_subscript(list, key, value);
    }

    /* Copy a set, then clear it; set_merge copies entries with their stored hashes and
       calls no __eq__, so no Python code runs between the copy and the clear. */
    static PyObject* sd_set_take_all(PyObject* set) {
        PyObject* out = PySet_New(NULL);
        PyObject* merged;
        if (out == NULL) return NULL;
        merged = PyNumber_InPlaceOr(out, set);
        if (merged == NULL || PySet_Clear(set) < 0) {
            Py_XDECREF(merged);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(merged);
        return out;
    }
    """
    list sd_list_take_all(object lst)
    object sd_list_take_at(object lst, Py_ssize_t i)
    int sd_list_assign(object lst, object key, PyObject* value) except -1
    set sd_set_take_all(object s)

cdef extern from *:
    """
    /* The builtin's own __init__ (list.__init__, set.__init__) on a new container,
       called directly: no method lookup, no descriptor.  No argument: emptied. */
    static int sd_base_init(PyTypeObject* base, PyObject* self, PyObject* iterable) {
        PyObject* args = iterable == NULL ? PyTuple_New(0) : PyTuple_Pack(1, iterable);
        int r;
        if (args == NULL) return -1;
        r = base->tp_init(self, args, NULL);
        Py_DECREF(args);
        return r;
    }

    /* type's own call (tp_new, then tp_init) with the arguments of a vectorcall. */
    static PyObject* sd_type_call(PyObject* cls, PyObject* const* args, size_t nargsf,
                                  PyObject* kwnames) {
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), i;
        Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        PyObject* kwargs = NULL;
        PyObject* result = NULL;
        PyObject* tuple = PyTuple_New(nargs);
        if (tuple == NULL) return NULL;
        for (i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        if (nkw) {
            kwargs = PyDict_New();
            if (kwargs == NULL) goto done;
            for (i = 0; i < nkw; i++)
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                    goto done;
        }
        result = PyType_Type.tp_call(cls, tuple, kwargs);
    done:
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        return result;
    }

    static void sd_set_vectorcall(PyObject* type, void* f) {
        ((PyTypeObject*)type)->tp_vectorcall = (vectorcallfunc)f;
    }
    """
    int sd_base_init(PyTypeObject* base, object self, PyObject* iterable) except -1
    object sd_type_call(object cls, PyObject** args, size_t nargsf, PyObject* kwnames)
    void sd_set_vectorcall(object type, void* f)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)

__all__ = ["SafeDict", "SafeList", "SafeSet", "watch_records"]

cdef dict _OP = fmt.OP_CODES
cdef uint8_t OP_LIST_CLEAR = _OP["list", "clear"]
cdef uint8_t OP_LIST_POP = _OP["list", "pop"]
cdef uint8_t OP_LIST_REMOVE = _OP["list", "remove"]
cdef uint8_t OP_LIST_DEL = _OP["list", "del"]
cdef uint8_t OP_LIST_SET = _OP["list", "set"]
cdef uint8_t OP_LIST_IMUL = _OP["list", "*="]
cdef uint8_t OP_LIST_INIT = _OP["list", "init"]
cdef uint8_t OP_LIST_INSERT = _OP["list", "insert"]
cdef uint8_t OP_LIST_ASSIGN = _OP["list", "assign"]
cdef uint8_t OP_LIST_SNAPSHOT = _OP["list", "snapshot"]
cdef uint8_t OP_DICT_CLEAR = _OP["dict", "clear"]
cdef uint8_t OP_DICT_POP = _OP["dict", "pop"]
cdef uint8_t OP_DICT_POPITEM = _OP["dict", "popitem"]
cdef uint8_t OP_DICT_DEL = _OP["dict", "del"]
cdef uint8_t OP_DICT_SET = _OP["dict", "set"]
cdef uint8_t OP_DICT_UPDATE = _OP["dict", "update"]
cdef uint8_t OP_DICT_IOR = _OP["dict", "|="]
cdef uint8_t OP_DICT_INIT = _OP["dict", "init"]
cdef uint8_t OP_DICT_ASSIGN = _OP["dict", "assign"]
cdef uint8_t OP_DICT_SNAPSHOT = _OP["dict", "snapshot"]
cdef uint8_t OP_SET_CLEAR = _OP["set", "clear"]
cdef uint8_t OP_SET_POP = _OP["set", "pop"]
cdef uint8_t OP_SET_REMOVE = _OP["set", "remove"]
cdef uint8_t OP_SET_DISCARD = _OP["set", "discard"]
cdef uint8_t OP_SET_DIFFERENCE_UPDATE = _OP["set", "difference_update"]
cdef uint8_t OP_SET_INTERSECTION_UPDATE = _OP["set", "intersection_update"]
cdef uint8_t OP_SET_SYMMETRIC_DIFFERENCE_UPDATE = _OP["set", "symmetric_difference_update"]
cdef uint8_t OP_SET_ISUB = _OP["set", "-="]
cdef uint8_t OP_SET_IAND = _OP["set", "&="]
cdef uint8_t OP_SET_IXOR = _OP["set", "^="]
cdef uint8_t OP_SET_INIT = _OP["set", "init"]
cdef uint8_t OP_SET_INSERT = _OP["set", "insert"]
cdef uint8_t OP_SET_SNAPSHOT = _OP["set", "snapshot"]

cdef object _MISSING = object()
cdef object _LAST = -1  # list.pop()'s default index (the interpreter's one -1 object)
cdef tuple _NO_ITEMS = ()  # the constructors' default iterable (the empty tuple is one object)
cdef dict _NO_KEYWORDS = {}  # (read only)
cdef str _MODULE = __name__

# base-class methods, called through these references (see the note at the top)
cdef object _list_getitem = list.__getitem__
cdef object _list_setitem = list.__setitem__
cdef object _list_delitem = list.__delitem__
cdef object _list_extend = list.extend
cdef object _list_insert = list.insert
cdef object _list_imul = list.__imul__
cdef object _list_sort = list.sort
cdef object _list_reverse = list.reverse
cdef object _dict_update = dict.update
cdef object _dict_setdefault = dict.setdefault
cdef object _set_update = set.update
cdef object _set_intersection = set.intersection
cdef object _set_difference = set.difference
cdef object _set_difference_update = set.difference_update


cdef Py_ssize_t _MAX_NAME_LEN = fmt.MAX_NAME_LEN


#: the last name encoded, and its bytes: a name written in the code is the same str object
#: at every call, so a loop of SafeDict(name="d") encodes it once (containers may share the
#: bytes: they are immutable, and a record is told apart by its container's number)
cdef str _last_name = None
cdef bytes _last_bname = None


cdef bytes _encode_name(str name):
    global _last_name, _last_bname
    cdef bytes bname
    if name is _last_name:
        return _last_bname
    bname = name.encode("utf-8")
    if len(bname) > _MAX_NAME_LEN:
        raise ValueError(f"container name longer than {_MAX_NAME_LEN} bytes")
    _last_bname = bname  # (no Python code runs between the two: no thread sees half)
    _last_name = name
    return bname


#: the registry's [default journal, its writer], read at every construction (configure()
#: replaces them in place), as _support.resolve_journal does: no lookup
cdef list _default_slot = registry._default_slot


#: called with the container before each record it writes (the transactions of this
#: process, while one is open: safe_data/transactions.py); None otherwise, so the hot path
#: pays one pointer test
cdef object _record_watcher = None


def watch_records(watcher):
    """Call ``watcher(container)`` before each record a container writes, in the writing
    thread, inside the operation (None: stop).  It must not raise: nothing is recorded
    or changed if it does."""
    global _record_watcher
    _record_watcher = watcher


cdef inline object _caller(bint capture):
    return _support.caller_of(_MODULE) if capture else None


cdef Py_ssize_t _position(Py_ssize_t n, Py_ssize_t i, str message) except -1:
    if i < 0:
        i += n
    if i < 0 or i >= n:
        raise IndexError(message)
    return i


# Built and freed with every container: the freelist keeps a few freed ones to build the
# next (no allocation, no free; a container made and dropped in a loop reuses one)
@cython.final
@cython.freelist(16)
cdef class _Binding:
    """What a safe container is bound to: a journal's writer, its identity, its name and
    its options.

    One object holds them for all three container classes, so each container has one
    C field and the journaling calls read the same way everywhere.

    The identity is ``cid``, a number unique among the writer's containers, carried by
    every record.  The name is a label: a nested container's (``orders[3]["items"]``) is
    its parent's label and where it now is in the parent, worked out again before each
    record (relabel), so records carry the path as of the operation.
    """

    cdef readonly object journal
    cdef readonly RecordWriter writer
    cdef readonly uint64_t container_id
    cdef readonly str name
    cdef bytes bname
    cdef readonly bint deep
    cdef readonly bint capture
    cdef readonly bint versioned  # adds are journaled too ("insert", "assign", "snapshot")
    cdef uint64_t _active  # the writer's operation epoch while an operation of ours runs
    cdef object _me  # (deep) a weak reference to the container, its children's parent
    # a nested container: a weak reference to its parent, where it was last seen there,
    # the parent's label its own was made from, and its own address (to find it)
    cdef object _parent
    cdef object _key
    cdef str _parent_label
    cdef PyObject* _self
    # the container this binding is of (borrowed: the container holds the binding, and only
    # its own operations record through it), for the record watcher
    cdef PyObject* _owner

    cdef inline int begin(self) except -1:
        """Start an operation on this container: writer.enter(), and refuse one that code
        run by another operation of this container starts (re-entrant change).

        An operation may run code of the values it handles (a pickle's ``__reduce__``, an
        ``__eq__``, a finalizer).  Were that code to change this container, the records
        would no longer follow the changes (docs/guarantees.md, "Re-entrant changes").
        Other threads wait in enter(), so finding our epoch marked means this thread is
        inside one of our own operations; after a fork the epoch moves on, so a mark left
        by a thread of the parent means nothing.
        """
        self.writer.enter()
        if self._active == self.writer._op_epoch:
            self.writer.leave()
            raise ReentrantChangeError(self.name)
        self._active = self.writer._op_epoch
        return 0

    cdef inline int end(self) except -1:
        self._active = 0
        return self.writer.leave()

    cdef inline int announce(self) except -1:
        """Before each record: a nested container's label brought up to date, and the
        record watcher told."""
        if self._parent is not None:
            self.relabel()
        if _record_watcher is not None:
            _record_watcher(<object>self._owner)
        return 0

    cdef inline int many(self, uint8_t op, object key, object values) except -1:
        self.announce()
        return self.writer.record(op, self.bname, self.container_id, key, values, _caller(self.capture))

    cdef inline bint plain(self) noexcept:
        """Its records need nothing around them: no label to work out again, no caller to
        capture, no watcher or hook to call (writer.direct() may write them)."""
        return self._parent is None and not self.capture and _record_watcher is None and not self.writer._hooked

    cdef inline int one(self, uint8_t op, object key, uint8_t tag, object item_key, object item) except -1:
        if self.plain() and self.writer.direct(op, self.bname, self.container_id, key, 0, False, tag, item_key, item):
            return 0
        self.announce()
        return self.writer.record_one(op, self.bname, self.container_id, key, tag, item_key, item,
                                      _caller(self.capture))

    cdef inline int at(self, uint8_t op, Py_ssize_t index, object item) except -1:
        """one() of a list's item at ``index`` (the record's key)."""
        self.announce()
        return self.writer.record_at(op, self.bname, self.container_id, index, item, _caller(self.capture))

    cdef int relabel(self) except -1:
        """A nested container's label as of now: its parent's (itself relabeled) and where
        it is in the parent.  Where it was last seen is tried first; else the parent is
        searched by identity.  Gone from its parent (or the parent gone), it keeps the
        label it last had."""
        cdef _Binding pb
        cdef Py_ssize_t i, n, pos = 0
        cdef PyObject* k
        cdef PyObject* v
        parent = self._parent()
        if parent is None:
            return 0
        pb = _binding_of(parent)
        if pb is None:
            return 0
        if pb._parent is not None:
            pb.relabel()
        key = self._key
        if isinstance(parent, list):
            n = PyList_GET_SIZE(parent)
            i = key
            if not (0 <= i < n and PyList_GET_ITEM(parent, i) == self._self):
                for i in range(n):
                    if PyList_GET_ITEM(parent, i) == self._self:
                        break
                else:
                    return 0
                key = i
        else:
            v = PyDict_GetItemWithError(parent, key)
            if v != self._self:
                while PyDict_Next(parent, &pos, &k, &v):  # no Python code runs: by identity
                    if v == self._self:
                        key = <object>k
                        break
                else:
                    return 0
        if key is not self._key or pb.name is not self._parent_label:
            self._key = key
            self._parent_label = pb.name
            self.name = _support.child_name(pb.name, key)
            self.bname = _encode_name(self.name)
        return 0

    cdef str label(self):
        if self._parent is not None:
            self.relabel()
        return self.name

    @property
    def root(self):
        """The name of the outermost container it is nested in, as far as that is alive
        (its records are found under that name: Journal.records(root, nested=True))."""
        cdef _Binding b = self, up
        while b._parent is not None:
            parent = b._parent()
            up = None if parent is None else _binding_of(parent)
            if up is None:
                break
            b = up
        return b.name

    cdef object convert(self, object value, object key):
        """With deep=True: a plain list/dict/set stored inside becomes a safe container (a
        versioned one in a versioned container, so that restore() sees its changes)
        nested in this one; a safe container of ours nested elsewhere moves here."""
        cdef type t = type(value)
        cdef _Binding child
        if t is list:
            value = SafeList(value, name=_support.child_name(self.label(), key), journal=self.journal,
                             deep=True, capture_caller=self.capture, versioned=self.versioned)
        elif t is dict:
            value = SafeDict(value, name=_support.child_name(self.label(), key), journal=self.journal,
                             deep=True, capture_caller=self.capture, versioned=self.versioned)
        elif t is set:
            value = SafeSet(value, name=_support.child_name(self.label(), key), journal=self.journal,
                            capture_caller=self.capture, versioned=self.versioned)
        else:
            child = _binding_of(value)
            if child is None or child._parent is None or child.writer is not self.writer:
                return value
            child._parent = self._me
            child._key = key
            child._parent_label = None  # its label is rebuilt at its next record
            return value
        child = _binding_of(value)
        child._parent = self._me
        child._key = key
        child._parent_label = self.name
        child._self = <PyObject*>value
        return value


cdef _Binding _binding_of(object container):
    """The binding of a safe container of this module (None for anything else)."""
    if isinstance(container, SafeList):
        return (<SafeList>container)._b
    if isinstance(container, SafeDict):
        return (<SafeDict>container)._b
    if isinstance(container, SafeSet):
        return (<SafeSet>container)._b
    return None


cdef _Binding _bind(_Binding old, object owner, str kind, name, journal, bint deep, bint capture,
                    bint versioned):
    """The binding of a new container; ``__init__`` called again keeps unspecified settings
    and the container's identity (in the same journal)."""
    cdef _Binding b = _Binding.__new__(_Binding)
    b._owner = <PyObject*>owner
    if old is not None:
        name = old.name if name is None else name
        journal = old.journal if journal is None else journal
        deep, versioned = old.deep, old.versioned  # fixed when the container was created
        capture = capture or old.capture
    if journal is None and PyList_GET_ITEM(_default_slot, 0) != <PyObject*>None:
        b.journal = <object>PyList_GET_ITEM(_default_slot, 0)
        b.writer = <object>PyList_GET_ITEM(_default_slot, 1)
    else:  # (registry.default() opens the default journal the first time)
        b.journal = registry.default() if journal is None else journal
        b.writer = b.journal._writer
    b.name = name if name is not None else _support.auto_name(kind, _MODULE)
    b.bname = _encode_name(b.name)
    b.deep = deep
    b.capture = capture
    b.versioned = versioned
    if old is not None and old.writer is b.writer:
        b.container_id = old.container_id
        if name is None or name == old.name:  # still where it was: still nested there
            b.name, b.bname = old.name, old.bname
            b._parent, b._key, b._parent_label, b._self = old._parent, old._key, old._parent_label, old._self
    else:
        b.container_id = b.writer.new_container_id()
    if deep:
        b._me = weakref.ref(owner)
    return b


@cython.auto_pickle(False)
cdef class SafeList(list):
    """A ``list`` whose every discarded value is journaled first."""

    cdef readonly _Binding _b
    cdef object __weakref__

    def __init__(self, iterable=(), *, name=None, journal=None, deep=False, capture_caller=False,
                 versioned=False):
        _init_list(self, iterable, name, journal, deep, capture_caller, versioned)

    def undo(self, n=1):
        """Revert the last ``n`` destructive operations (see :func:`safe_data.undo`)."""
        from ..history import undo  # (the history layer sits above the containers)
        return undo(self, n)

    @property
    def name(self):
        """The container's name in the journal (nested: its path as of now)."""
        return self._b.label()

    @property
    def container_id(self):
        """Its number in the journal: with the writer id, its identity in the records."""
        return self._b.container_id

    @property
    def journal(self):
        """The journal it preserves into."""
        return self._b.journal

    @property
    def deep(self):
        """Whether nested containers become safe ones."""
        return self._b.deep

    @property
    def capture_caller(self):
        """Whether records name their caller."""
        return self._b.capture

    @property
    def versioned(self):
        """Whether every change is journaled, so that restore() is exact."""
        return self._b.versioned

    def __reduce__(self):
        return _support.reduce(self, "list", list(self))

    def __copy__(self):
        return _support.copy_of(self)

    def __deepcopy__(self, memo):
        return _support.deepcopy_of(self, memo, _list_extend, list(self))

    # Discarding, between _Binding.begin() and end().  A plain SafeList's append, extend,
    # insert, sort and reverse take no lock (the interpreter's fast path), so another thread
    # may add or reorder whenever journaling lets the GIL go.  Each operation therefore takes
    # out exactly what it discards first, in C code that runs no Python code, then journals
    # what it took, and puts it back if that fails: what is journaled is what was removed.
    def clear(self):
        cdef _Binding b = self._b
        b.begin()
        try:
            if PyList_GET_SIZE(self):
                _discard_all(self, OP_LIST_CLEAR)
        finally:
            b.end()

    @cython.binding(False)  # a method descriptor, as list.pop is: CPython specialises its calls
    def pop(self, index=-1, /):
        cdef _Binding b = self._b
        # (the default -1 without a conversion: -1 is also its error value, which costs a
        # check of the error indicator)
        cdef Py_ssize_t i = -1 if index is _LAST else index if type(index) is int else operator.index(index)
        b.begin()
        try:
            if PyList_GET_SIZE(self) == 0:
                raise IndexError("pop from empty list")
            return _discard_at(self, OP_LIST_POP, _position(PyList_GET_SIZE(self), i, "pop index out of range"))
        finally:
            b.end()

    def remove(self, value):
        cdef _Binding b = self._b
        cdef Py_ssize_t i = 0
        b.begin()
        try:
            while i < PyList_GET_SIZE(self):
                item = <object>PyList_GET_ITEM(self, i)
                if item is value or PyObject_RichCompareBool(item, value, Py_EQ):
                    # __eq__ may have let another thread insert or reorder: find it again
                    i = _locate(self, item, i)
                    if i < 0:
                        i = 0  # taken out by a base-class call meanwhile: look again
                        continue
                    _discard_at(self, OP_LIST_REMOVE, i)
                    return
                i += 1
            raise ValueError("list.remove(x): x not in list")
        finally:
            b.end()

    def __delitem__(self, key):
        cdef _Binding b = self._b
        cdef Py_ssize_t i, start, stop, step
        if type(key) is slice:
            PySlice_Unpack(key, &start, &stop, &step)  # may run __index__: before begin()
        else:
            i = PyNumber_AsSsize_t(key, IndexError)  # as list's: too large is IndexError
        b.begin()
        try:
            if type(key) is slice:
                taken, where = _take_slice(self, start, stop, step, None)
                if taken:
                    try:
                        b.many(OP_LIST_DEL, where, taken)
                    except BaseException:
                        _put_back(self, where.start, where.step, taken)
                        raise
            else:
                _discard_at(self, OP_LIST_DEL, _position(PyList_GET_SIZE(self), i, "list assignment index out of range"))
        finally:
            b.end()

    def __setitem__(self, key, value):
        cdef _Binding b = self._b
        cdef Py_ssize_t i, start, stop, step
        if type(key) is slice:
            if type(value) is not list:
                value = list(value)  # run the caller's iterable before taking the lock
            PySlice_Unpack(key, &start, &stop, &step)
            self._set_slice(start, stop, step, value)
            return
        i = PyNumber_AsSsize_t(key, IndexError)
        if b.deep:
            value = b.convert(value, _position(PyList_GET_SIZE(self), i, "list assignment index out of range"))
        b.begin()
        try:
            i = _position(PyList_GET_SIZE(self), i, "list assignment index out of range")
            old = <object>PyList_GET_ITEM(self, i)
            if old is value:
                return
            Py_INCREF(value)  # PyList_SetItem steals a reference
            PyList_SetItem(self, i, value)  # we hold old: no finalizer runs
            try:
                b.at(OP_LIST_SET, i, old)
                if b.versioned:
                    b.at(OP_LIST_ASSIGN, i, value)
            except BaseException:
                _undo_assign(self, i, 1, [value], [old])
                raise
        finally:
            b.end()

    cdef _set_slice(self, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t step, list value):
        cdef _Binding b = self._b
        cdef Py_ssize_t n = PyList_GET_SIZE(self)
        cdef Py_ssize_t first = start, last = stop
        if b.deep:  # the labels of nested containers: as of now (converting runs code)
            PySlice_AdjustIndices(n, &first, &last, step)
            value = [b.convert(v, first + j * step) for j, v in enumerate(value)]
        b.begin()
        try:
            taken, where = _take_slice(self, start, stop, step, value)
            try:
                if taken:  # the key says where the old items were and how many replace them
                    b.many(OP_LIST_SET, (where, PyList_GET_SIZE(value)), taken)
                if b.versioned:
                    b.many(OP_LIST_ASSIGN, where, value)
            except BaseException:
                _undo_assign(self, where.start, where.step, value, taken)
                raise
        finally:
            b.end()

    def __imul__(self, n):
        cdef _Binding b = self._b
        cdef Py_ssize_t times = operator.index(n)
        b.begin()
        try:
            if times <= 0:
                if PyList_GET_SIZE(self):
                    _discard_all(self, OP_LIST_IMUL)
                return self
            result = _list_imul(self, times)
            if b.versioned and times > 1:
                b.many(OP_LIST_SNAPSHOT, None, self)
            return result
        finally:
            b.end()


cdef int _init_list(SafeList self, iterable, name, journal, bint deep, bint capture, bint versioned) except -1:
    cdef _Binding old = self._b
    cdef _Binding b = _bind(old, self, "list", name, journal, deep, capture, versioned)
    if b.deep:  # (called again, the settings are the container's: b's, not the arguments)
        iterable = [b.convert(v, i) for i, v in enumerate(iterable)]
    if old is None:
        self._b = b
        sd_base_init(&PyList_Type, self, NULL if iterable is _NO_ITEMS else <PyObject*>iterable)
        if versioned:
            b.many(OP_LIST_SNAPSHOT, None, self)
        return 0
    if type(iterable) is not list:
        iterable = list(iterable)  # the caller's iterable runs before the lock
    old.begin()  # __init__ again on a live list: it replaces the contents
    try:
        if PyList_GET_SIZE(self):
            _discard_all(self, OP_LIST_INIT)
        self._b = b
        _list_extend(self, iterable)  # after whatever other threads added meanwhile
        if b.versioned:
            b.many(OP_LIST_SNAPSHOT, None, self)
    finally:
        old.end()
    return 0


cdef object _discard_at(SafeList lst, uint8_t op, Py_ssize_t i):
    """Journal the item at i and take it out; return it.  What writer.direct() writes is
    journaled first (no code runs between that and taking it out); anything else is
    taken out, journaled, and put back if that fails."""
    cdef _Binding b = lst._b
    if b.plain() and b.writer.direct(op, b.bname, b.container_id, None, i, True, T_LIST, None,
                                     <object>PyList_GET_ITEM(lst, i)):
        return sd_list_take_at(lst, i)
    item = sd_list_take_at(lst, i)
    try:
        b.at(op, i, item)
    except BaseException:
        _put_back(lst, i, 1, [item])
        raise
    return item


cdef int _discard_all(SafeList lst, uint8_t op) except -1:
    """Take every item out, journal them, and put them back in front if that fails."""
    taken = sd_list_take_all(lst)
    try:
        lst._b.many(op, None, taken)
    except BaseException:
        PyList_SetSlice(lst, 0, 0, <PyObject*>taken)
        raise
    return 0


cdef tuple _take_slice(SafeList lst, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t step, list value):
    """Replace lst[start:stop:step] (already unpacked) by value (None: delete it); return
    (the items taken out, as a list, the slice normalized to the length they came from).

    Everything is allocated first; then, if no Python code run meanwhile (a garbage
    collection pass on CPython < 3.12) changed the length, the items are read and replaced
    by code that runs none, so they are exactly what the list lost.
    """
    cdef Py_ssize_t n, count, k, first, last
    while True:
        n = PyList_GET_SIZE(lst)
        first, last = start, stop
        count = PySlice_AdjustIndices(n, &first, &last, step)
        if value is not None and step != 1 and count != PyList_GET_SIZE(value):
            raise ValueError(f"attempt to assign sequence of size {PyList_GET_SIZE(value)} "
                             f"to extended slice of size {count}")
        where = slice(first, last, step)  # for the record (docs/format.md)
        unpacked = slice(start, stop, step)  # for the change: ints, so it runs no code
        taken = PyList_New(count)
        if PyList_GET_SIZE(lst) == n:
            break
    for k in range(count):
        item = <object>PyList_GET_ITEM(lst, first + k * step)
        Py_INCREF(item)  # SET_ITEM steals a reference
        PyList_SET_ITEM(taken, k, item)
    sd_list_assign(lst, unpacked, NULL if value is None else <PyObject*>value)
    return taken, where


cdef Py_ssize_t _locate(object lst, object item, Py_ssize_t hint):
    """The index of item itself (by identity) in lst, looking at hint first; -1 if gone."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(lst)
    if hint < n and <object>PyList_GET_ITEM(lst, hint) is item:
        return hint
    for i in range(n):
        if <object>PyList_GET_ITEM(lst, i) is item:
            return i
    return -1


cdef int _put_back(object lst, Py_ssize_t start, Py_ssize_t step, list taken) except -1:
    """The record of a removal could not be written: put the items back where they were
    (where another thread moved things meanwhile: near there; nothing is lost)."""
    cdef Py_ssize_t k, count = PyList_GET_SIZE(taken)
    if step == 1:
        PyList_SetSlice(lst, min(start, PyList_GET_SIZE(lst)), min(start, PyList_GET_SIZE(lst)), <PyObject*>taken)
        return 0
    order = range(count) if step > 0 else range(count - 1, -1, -1)  # lowest position first
    for k in order:
        PyList_Insert(lst, min(start + k * step, PyList_GET_SIZE(lst)), <object>PyList_GET_ITEM(taken, k))
    return 0


cdef int _undo_assign(object lst, Py_ssize_t start, Py_ssize_t step, list value, list taken) except -1:
    """The record of an assignment could not be written: put back what it replaced."""
    cdef Py_ssize_t k, n = PyList_GET_SIZE(value)
    for k in range(n):
        if _locate(lst, <object>PyList_GET_ITEM(value, k), start + k * step) != start + k * step:
            break  # another thread moved items meanwhile: keep both, lose nothing
    else:
        if step == 1:
            PyList_SetSlice(lst, start, start + n, <PyObject*>taken)
            return 0
        for k in range(n):
            item = <object>PyList_GET_ITEM(taken, k)
            Py_INCREF(item)
            PyList_SetItem(lst, start + k * step, item)
        return 0
    return _put_back(lst, start, 1, taken)


cdef int _add(SafeList lst, Py_ssize_t index, list items) except -1:
    """Insert ``items`` at ``index``; with versioned=True journal it as an "insert" first."""
    cdef _Binding b = lst._b
    if not b.versioned:
        return PyList_SetSlice(lst, index, index, <PyObject*>items)
    b.begin()  # the record and the change in the same order for every thread
    try:
        if index > PyList_GET_SIZE(lst):
            index = PyList_GET_SIZE(lst)
        b.many(OP_LIST_INSERT, index, items)
        PyList_SetSlice(lst, index, index, <PyObject*>items)
    finally:
        b.end()
    return 0


cdef list _converted(SafeList lst, Py_ssize_t index, iterable):
    if lst._b.deep:
        return [lst._b.convert(v, index + j) for j, v in enumerate(iterable)]
    return list(iterable)


cdef int _reorder(SafeList lst, how, key, reverse) except -1:
    cdef _Binding b = lst._b
    b.begin()
    try:
        if how is _list_sort:
            how(lst, key=key, reverse=reverse)
        else:
            how(lst)
        if b.versioned:
            b.many(OP_LIST_SNAPSHOT, None, lst)
    finally:
        b.end()
    return 0


@cython.auto_pickle(False)
cdef class _TrackedSafeList(SafeList):
    """What ``SafeList(..., deep=True)`` or ``versioned=True`` creates: adding converts
    nested containers (deep) and is journaled (versioned); sort and reverse are journaled
    as a snapshot (versioned).

    A separate class so that a plain SafeList does not override ``append`` and keeps the
    interpreter's fast path for it (an override costs 2x on every append).  It has no C
    methods of its own (hence the module-level helpers): SafeList's tp_new creates it.
    """

    def append(self, value):
        cdef Py_ssize_t n = PyList_GET_SIZE(self)
        _add(self, n, _converted(self, n, (value,)))

    def extend(self, iterable):
        cdef Py_ssize_t n = PyList_GET_SIZE(self)
        _add(self, n, _converted(self, n, iterable))

    def insert(self, index, value):
        cdef Py_ssize_t n = PyList_GET_SIZE(self)
        cdef Py_ssize_t i = operator.index(index)
        i = max(0, min(n, i + n if i < 0 else i))
        _add(self, i, _converted(self, i, (value,)))

    def __iadd__(self, other):
        self.extend(other)
        return self

    def sort(self, *, key=None, reverse=False):
        _reorder(self, _list_sort, key, reverse)

    def reverse(self):
        _reorder(self, _list_reverse, None, None)


cdef newfunc _plain_list_new = (<PyTypeObject*>SafeList).tp_new


cdef object _safe_list_new(type cls, PyObject* args, PyObject* kwargs):
    if cls is SafeList and kwargs != NULL and ((<object>kwargs).get("deep") or (<object>kwargs).get("versioned")):
        cls = _TrackedSafeList
    return _plain_list_new(cls, args, kwargs)


(<PyTypeObject*>SafeList).tp_new = <newfunc>_safe_list_new


@cython.auto_pickle(False)
cdef class SafeDict(dict):
    """A ``dict`` whose every removed or overwritten value is journaled first."""

    cdef readonly _Binding _b
    cdef object __weakref__

    def __init__(self, *args, name=None, journal=None, deep=False, capture_caller=False,
                 versioned=False, **kwargs):
        _init_dict(self, args, kwargs, name, journal, deep, capture_caller, versioned)

    def undo(self, n=1):
        """Revert the last ``n`` destructive operations (see :func:`safe_data.undo`)."""
        from ..history import undo  # (the history layer sits above the containers)
        return undo(self, n)

    @property
    def versioned(self):
        """Whether every change is journaled, so that restore() is exact."""
        return self._b.versioned

    @property
    def name(self):
        """The container's name in the journal (nested: its path as of now)."""
        return self._b.label()

    @property
    def container_id(self):
        """Its number in the journal: with the writer id, its identity in the records."""
        return self._b.container_id

    @property
    def journal(self):
        """The journal it preserves into."""
        return self._b.journal

    @property
    def deep(self):
        """Whether nested containers become safe ones."""
        return self._b.deep

    @property
    def capture_caller(self):
        """Whether records name their caller."""
        return self._b.capture

    def __reduce__(self):
        return _support.reduce(self, "dict", dict(self))

    def __copy__(self):
        return _support.copy_of(self)

    def __deepcopy__(self, memo):
        return _support.deepcopy_of(self, memo, _dict_update, list(dict.items(self)))

    cdef _update(self, tuple args, dict kwargs, uint8_t op, bint track=True):
        cdef _Binding b = self._b
        if not kwargs:
            if not args:
                return
            if len(args) == 1 and type(args[0]) is dict and not b.deep:
                self._update_from_dict(args[0], op, track)
                return
        pairs = _support.update_pairs(args, kwargs)
        if b.deep:
            pairs = [(k, b.convert(v, k)) for k, v in pairs]
        b.begin()
        try:
            if len(self):
                old = {}
                for k, v in pairs:
                    o = dict.get(self, k, _MISSING)
                    if o is not _MISSING and o is not v and k not in old:
                        old[k] = o
                if old:
                    b.many(op, None, old)
            if b.versioned and track and pairs:
                b.many(OP_DICT_ASSIGN, None, dict(pairs))
            _dict_update(self, pairs)
        finally:
            b.end()

    cdef _update_from_dict(self, dict new, uint8_t op, bint track):
        """``_update`` from a plain dict: the same records, read and stored by the dict's
        own C loops rather than through pairs.

        Into an empty dict nothing is overwritten, and unless it is versioned nothing is
        journaled: ``new`` is merged as dict.update would.  Else it is copied first (no
        Python code runs meanwhile): looking its keys up here may run their ``__eq__``,
        which must not change what is journaled and stored."""
        cdef _Binding b = self._b
        cdef Py_ssize_t pos = 0
        cdef PyObject* key
        cdef PyObject* value
        cdef PyObject* found
        b.begin()
        try:
            if not len(self) and not (b.versioned and track):
                PyDict_Update(self, new)
                return
            new = PyDict_Copy(new)
            if len(self):
                old = None
                while PyDict_Next(new, &pos, &key, &value):
                    found = PyDict_GetItemWithError(self, <object>key)
                    if found != NULL and found != value:
                        if old is None:
                            old = {}
                        old[<object>key] = <object>found
                if old:
                    b.many(op, None, old)
            if b.versioned and track and new:
                b.many(OP_DICT_ASSIGN, None, new)
            PyDict_Update(self, new)
        finally:
            b.end()

    # Discarding: each reads what it discards, journals it and changes the dict between
    # _Binding.begin() and end().  Every method that changes a SafeDict takes that lock,
    # so no other thread changes it meanwhile, and code run by the journaling cannot.
    def __setitem__(self, key, value):
        cdef _Binding b = self._b
        cdef PyObject* old
        if b.deep:
            value = b.convert(value, key)
        b.begin()
        try:
            old = PyDict_GetItemWithError(self, key)
            if old != NULL and <object>old is not value:
                b.one(OP_DICT_SET, key, T_DICT, key, <object>old)
            if b.versioned and (old == NULL or <object>old is not value):
                b.one(OP_DICT_ASSIGN, key, T_DICT, key, value)
            PyDict_SetItem(self, key, value)
        finally:
            b.end()

    def __delitem__(self, key):
        cdef _Binding b = self._b
        cdef PyObject* old
        b.begin()
        try:
            old = PyDict_GetItemWithError(self, key)
            if old == NULL:
                raise KeyError(key)
            b.one(OP_DICT_DEL, key, T_DICT, key, <object>old)
            PyDict_DelItem(self, key)
        finally:
            b.end()

    def pop(self, key, default=_MISSING, /):
        cdef _Binding b = self._b
        cdef PyObject* found
        b.begin()
        try:
            found = PyDict_GetItemWithError(self, key)
            if found == NULL:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            old = <object>found
            b.one(OP_DICT_POP, key, T_DICT, key, old)
            PyDict_DelItem(self, key)
            return old
        finally:
            b.end()

    def popitem(self):
        cdef _Binding b = self._b
        b.begin()
        try:
            # the builtin takes out the last item in O(1) (it also shrinks the entries
            # array: a delete by key leaves a dead slot at the end, which made every next
            # call skip all the slots before and draining a dict quadratic)
            item = dict.popitem(self)
            key, old = item
            try:
                b.one(OP_DICT_POPITEM, key, T_DICT, key, old)
            except BaseException:
                PyDict_SetItem(self, key, old)  # not journaled: put it back, where it was
                raise
            return item
        finally:
            b.end()

    def clear(self):
        cdef _Binding b = self._b
        b.begin()
        try:
            if len(self):
                b.many(OP_DICT_CLEAR, None, self)
                PyDict_Clear(self)
        finally:
            b.end()

    def update(self, *args, **kwargs):
        self._update(args, kwargs, OP_DICT_UPDATE)

    def __ior__(self, other):
        self._update((other,), {}, OP_DICT_IOR)
        return self

    # adding (overridden only to convert nested values when deep=True)
    def setdefault(self, key, default=None):
        cdef _Binding b = self._b
        if key in self:
            return self[key]
        if b.deep:
            default = b.convert(default, key)
        b.begin()
        try:
            if b.versioned and key not in self:
                b.one(OP_DICT_ASSIGN, key, T_DICT, key, default)
            return _dict_setdefault(self, key, default)
        finally:
            b.end()


cdef int _init_dict(SafeDict self, tuple args, dict kwargs, name, journal, bint deep, bint capture,
                    bint versioned) except -1:
    cdef bint again = self._b is not None
    self._b = _bind(self._b, self, "dict", name, journal, deep, capture, versioned)
    self._update(args, kwargs, OP_DICT_INIT, again)  # __init__ again on a live dict: it updates
    if versioned and not again:
        self._b.many(OP_DICT_SNAPSHOT, None, self)
    return 0


@cython.auto_pickle(False)
cdef class SafeSet(set):
    """A ``set`` whose every removed element is journaled first."""

    cdef readonly _Binding _b

    def __init__(self, iterable=(), *, name=None, journal=None, capture_caller=False,
                 versioned=False):
        _init_set(self, iterable, name, journal, capture_caller, versioned)

    def __repr__(self):  # like the builtin's: set's own repr names subclasses
        return "{" + ", ".join(map(repr, self)) + "}" if len(self) else "set()"

    def undo(self, n=1):
        """Put back what the last ``n`` destructive operations removed (see :func:`safe_data.undo`)."""
        from ..history import undo  # (the history layer sits above the containers)
        return undo(self, n)

    @property
    def name(self):
        """The container's name in the journal (nested: its path as of now)."""
        return self._b.label()

    @property
    def container_id(self):
        """Its number in the journal: with the writer id, its identity in the records."""
        return self._b.container_id

    @property
    def journal(self):
        """The journal it preserves into."""
        return self._b.journal

    @property
    def capture_caller(self):
        """Whether records name their caller."""
        return self._b.capture

    @property
    def versioned(self):
        """Whether every change is journaled, so that restore() is exact."""
        return self._b.versioned

    def __reduce__(self):
        return _support.reduce(self, "set", set(self))

    def __copy__(self):
        return _support.copy_of(self)

    def __deepcopy__(self, memo):
        return _support.deepcopy_of(self, memo, _set_update, list(self))

    # Discarding, between _Binding.begin() and end().  A plain SafeSet's add, update and |=
    # take no lock, so another thread may add whenever journaling lets the GIL go; that
    # cannot undo a removal by value, so only clear() (and __init__ again) must take out
    # exactly what they journal, as SafeList does.
    def clear(self):
        cdef _Binding b = self._b
        b.begin()
        try:
            if len(self):
                _discard_all_of_set(self, OP_SET_CLEAR)
        finally:
            b.end()

    def pop(self):
        cdef _Binding b = self._b
        b.begin()
        try:
            value = PySet_Pop(self)
            try:
                b.one(OP_SET_POP, None, T_SET, None, value)
            except BaseException:
                PySet_Add(self, value)  # not journaled: put it back, lose nothing
                raise
            return value
        finally:
            b.end()

    @cython.binding(False)  # a method descriptor, as the builtin's: CPython specialises its calls
    def remove(self, element, /):
        cdef _Binding b = self._b
        b.begin()
        try:
            if not PySet_Contains(self, element):
                raise KeyError(element)
            b.one(OP_SET_REMOVE, None, T_SET, None, element)
            PySet_Discard(self, element)
        finally:
            b.end()

    @cython.binding(False)  # a method descriptor, as the builtin's: CPython specialises its calls
    def discard(self, element, /):
        cdef _Binding b = self._b
        b.begin()
        try:
            if PySet_Contains(self, element):
                b.one(OP_SET_DISCARD, None, T_SET, None, element)
                PySet_Discard(self, element)
        finally:
            b.end()

    cdef _remove(self, other, bint keep_common, uint8_t op):
        """Remove what is in ``other`` (or, with keep_common, what is not) and journal it."""
        cdef _Binding b = self._b
        b.begin()
        try:
            gone = _set_intersection(self, other) if not keep_common else _set_difference(self, other)
            if gone:
                b.many(op, None, gone)
                _set_difference_update(self, gone)
        finally:
            b.end()

    cdef _symmetric(self, other, uint8_t op):
        cdef _Binding b = self._b
        other = set(other)
        b.begin()
        try:
            shared = _set_intersection(self, other)
            if shared:
                b.many(op, None, shared)
                _set_difference_update(self, shared)
            added = other - shared
            if b.versioned and added:
                b.many(OP_SET_INSERT, None, added)
            _set_update(self, added)
        finally:
            b.end()

    def difference_update(self, *others):
        self._remove(set().union(*others), False, OP_SET_DIFFERENCE_UPDATE)

    def intersection_update(self, *others):
        common = set(others[0]).intersection(*others[1:]) if others else None
        if common is not None:
            self._remove(common, True, OP_SET_INTERSECTION_UPDATE)

    def symmetric_difference_update(self, other):
        self._symmetric(other, OP_SET_SYMMETRIC_DIFFERENCE_UPDATE)

    def __isub__(self, other):
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self._remove(other, False, OP_SET_ISUB)
        return self

    def __iand__(self, other):
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self._remove(other, True, OP_SET_IAND)
        return self

    def __ixor__(self, other):
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self._symmetric(other, OP_SET_IXOR)
        return self


cdef int _init_set(SafeSet self, iterable, name, journal, bint capture, bint versioned) except -1:
    cdef _Binding old = self._b
    cdef _Binding b = _bind(old, self, "set", name, journal, False, capture, versioned)
    if old is None:
        self._b = b
        sd_base_init(&PySet_Type, self, NULL if iterable is _NO_ITEMS else <PyObject*>iterable)
        if versioned:
            b.many(OP_SET_SNAPSHOT, None, set(self))
        return 0
    iterable = list(iterable)
    old.begin()  # __init__ again on a live set: it replaces the contents
    try:
        if len(self):
            _discard_all_of_set(self, OP_SET_INIT)
        self._b = b
        _set_update(self, iterable)  # besides whatever other threads added meanwhile
        if b.versioned:
            b.many(OP_SET_SNAPSHOT, None, set(self))
    finally:
        old.end()
    return 0


cdef int _discard_all_of_set(SafeSet s, uint8_t op) except -1:
    """Take every element out, journal them, and put them back if that fails."""
    taken = sd_set_take_all(s)
    try:
        s._b.many(op, None, taken)
    except BaseException:
        _set_update(s, taken)
        raise
    return 0


@cython.auto_pickle(False)
cdef class _TrackedSafeSet(SafeSet):
    """What ``SafeSet(..., versioned=True)`` creates: adding is journaled ("insert"), so
    that restore() is exact.  A separate class, as _TrackedSafeList is, so that a plain
    SafeSet keeps set's own add and update."""

    def add(self, value):
        cdef _Binding b = self._b
        b.begin()
        try:
            if not PySet_Contains(self, value):
                b.many(OP_SET_INSERT, None, {value})
                PySet_Add(self, value)
        finally:
            b.end()

    def update(self, *others):
        cdef _Binding b = self._b
        items = set().union(*others)  # the caller's iterables run before the lock
        b.begin()
        try:
            new = items.difference(self)
            if new:
                b.many(OP_SET_INSERT, None, new)
                _set_update(self, new)
        finally:
            b.end()

    def __ior__(self, other):
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self.update(other)
        return self


cdef newfunc _plain_set_new = (<PyTypeObject*>SafeSet).tp_new


cdef object _safe_set_new(type cls, PyObject* args, PyObject* kwargs):
    if cls is SafeSet and kwargs != NULL and (<object>kwargs).get("versioned"):
        cls = _TrackedSafeSet
    return _plain_set_new(cls, args, kwargs)


(<PyTypeObject*>SafeSet).tp_new = <newfunc>_safe_set_new


# Construction by vectorcall (see the note at the top).  A call of the class itself with at
# most one positional argument and no keywords but the settings is parsed here; any other
# (and a subclass's: tp_vectorcall is not inherited) is type's own call, whose errors are
# those of __init__.

cdef struct _Settings:
    PyObject* items  # the positional argument (NULL: none)
    PyObject* name
    PyObject* journal
    PyObject* deep
    PyObject* capture
    PyObject* versioned


cdef bint _parse(PyObject** args, size_t nargsf, PyObject* kwnames, bint has_deep, _Settings* s):
    """The settings of a constructor call (borrowed from the caller's stack); False if it
    is not one this parser takes."""
    cdef Py_ssize_t i, nargs = PyVectorcall_NARGS(nargsf)
    cdef Py_ssize_t nkw = 0 if kwnames == NULL else PyTuple_GET_SIZE(<object>kwnames)
    if nargs > 1:
        return False
    s.items = args[0] if nargs else NULL
    s.name = s.journal = s.deep = s.capture = s.versioned = NULL
    for i in range(nkw):
        key = (<tuple>kwnames)[i]
        if key == "name":
            s.name = args[nargs + i]
        elif key == "journal":
            s.journal = args[nargs + i]
        elif key == "capture_caller":
            s.capture = args[nargs + i]
        elif key == "versioned":
            s.versioned = args[nargs + i]
        elif key == "deep" and has_deep:
            s.deep = args[nargs + i]
        else:
            return False
    return True


cdef inline object _arg(PyObject* value, object default):
    return default if value == NULL else <object>value


cdef inline bint _flag(PyObject* value) except -1:
    return value != NULL and bool(<object>value)


cdef object _safe_list_call(object cls, PyObject** args, size_t nargsf, PyObject* kwnames):
    cdef _Settings s
    if cls is not SafeList or not _parse(args, nargsf, kwnames, True, &s):
        return sd_type_call(cls, args, nargsf, kwnames)
    deep, versioned = _flag(s.deep), _flag(s.versioned)
    self = _plain_list_new(_TrackedSafeList if deep or versioned else SafeList, <PyObject*>_NO_ITEMS, NULL)
    _init_list(self, _arg(s.items, _NO_ITEMS), _arg(s.name, None), _arg(s.journal, None), deep,
               _flag(s.capture), versioned)
    return self


cdef object _safe_dict_call(object cls, PyObject** args, size_t nargsf, PyObject* kwnames):
    cdef _Settings s
    if cls is not SafeDict or not _parse(args, nargsf, kwnames, True, &s):
        return sd_type_call(cls, args, nargsf, kwnames)
    self = _plain_dict_new(SafeDict, <PyObject*>_NO_ITEMS, NULL)
    _init_dict(self, _NO_ITEMS if s.items == NULL else (<object>s.items,), _NO_KEYWORDS, _arg(s.name, None),
               _arg(s.journal, None), _flag(s.deep), _flag(s.capture), _flag(s.versioned))
    return self


cdef object _safe_set_call(object cls, PyObject** args, size_t nargsf, PyObject* kwnames):
    cdef _Settings s
    if cls is not SafeSet or not _parse(args, nargsf, kwnames, False, &s):
        return sd_type_call(cls, args, nargsf, kwnames)
    versioned = _flag(s.versioned)
    self = _plain_set_new(_TrackedSafeSet if versioned else SafeSet, <PyObject*>_NO_ITEMS, NULL)
    _init_set(self, _arg(s.items, _NO_ITEMS), _arg(s.name, None), _arg(s.journal, None),
              _flag(s.capture), versioned)
    return self


cdef newfunc _plain_dict_new = (<PyTypeObject*>SafeDict).tp_new

sd_set_vectorcall(SafeList, <void*>_safe_list_call)
sd_set_vectorcall(SafeDict, <void*>_safe_dict_call)
sd_set_vectorcall(SafeSet, <void*>_safe_set_call)


cdef uint64_t _container_number(object container, bytes key) noexcept:
    """The number of a safe container of this module in the journal keyed ``key`` (0: it
    is bound to another journal, or to none: a subclass that skipped ``__init__``)."""
    cdef _Binding b = _binding_of(container)
    return b.container_id if b is not None and b.writer._key is key else 0


# The writer's encoders learn these types here: the journal imports nothing above it.
register_containers(SafeList, _TrackedSafeList, SafeDict, SafeSet, _TrackedSafeSet, _container_number)
codec.register_containers({SafeList: T_LIST, _TrackedSafeList: T_LIST, SafeDict: T_DICT,
                           SafeSet: T_SET, _TrackedSafeSet: T_SET})
