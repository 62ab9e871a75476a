/* What the C value encoder (journal/_writer_c.pyx) needs that Cython does not say: an
 * int's value without a call when it has one digit, and LEB128 sizes without a loop. */
#ifndef SAFE_DATA_ENCODE_H
#define SAFE_DATA_ENCODE_H

#include <Python.h>
#include <stdint.h>

/* The value of the exact int `obj` in *v; 0 if it does not fit in 64 bits. */
static inline int sd_int_value(PyObject *obj, long long *v) {
    int overflow = 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)obj)) {
        *v = (long long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
        return 1;
    }
#else
    Py_ssize_t digits = Py_SIZE(obj);  /* signed: the sign is the int's */
    if (digits >= -1 && digits <= 1) {
        *v = (long long)digits * (long long)((PyLongObject *)obj)->ob_digit[0];
        return 1;
    }
#endif
    *v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    return !overflow;  /* (an exact int: no error but the overflow) */
}

/* The bytes of v as LEB128 (0 takes one). */
static inline Py_ssize_t sd_leb_size(uint64_t v) {
    return (63 - __builtin_clzll(v | 1)) / 7 + 1;
}

#endif
