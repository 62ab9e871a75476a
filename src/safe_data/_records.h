/* What the frame decoder (journal/_records_c.pyx) needs of CPython that Cython does not say. */
#ifndef SAFE_DATA_RECORDS_H
#define SAFE_DATA_RECORDS_H

#include <Python.h>

/* An instance of ``type``, a tuple subclass without a __dict__ (reader.Record), of ``n``
   items, each NULL until PyTuple_SET_ITEM fills it: what tuple.__new__(type, items) makes,
   without a tuple of the items to copy them from, and a second allocation. */
static inline PyObject *sd_new_tuple_of(PyTypeObject *type, Py_ssize_t n) {
    PyObject *t = type->tp_alloc(type, n);
#if PY_VERSION_HEX >= 0x030E0000
    if (t != NULL) {
        ((PyTupleObject *)t)->ob_hash = -1;  /* 3.14 caches a tuple's hash: none yet */
    }
#endif
    return t;
}

#endif
