/* What the C value encoder (journal/_writer_c.pyx) needs that Cython does not say: an
 * int's value without a call when it has one digit, LEB128 numbers and their sizes
 * without a loop, and short copies without a call. */
#ifndef SAFE_DATA_ENCODE_H
#define SAFE_DATA_ENCODE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

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

/* The bytes of v as LEB128 (0 takes one): seven bits a byte, looked up by the leading
 * zero bits (a division by 7 costs more than the rest of the lookup). */
static const uint8_t sd_leb_sizes[64] = {
    10, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5,
    5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1};

static inline Py_ssize_t sd_leb_size(uint64_t v) {
    return sd_leb_sizes[__builtin_clzll(v | 1)];
}

/* Write v as LEB128 at p + at; return where it ends.  Most numbers in a frame (lengths,
 * slots, a position, a small int) take one to three bytes: those without a loop. */
static inline Py_ssize_t sd_put_leb(char *p, Py_ssize_t at, uint64_t v) {
    if (v < 0x80) {
        p[at] = (char)v;
        return at + 1;
    }
    if (v < 0x4000) {
        p[at] = (char)(v | 0x80);
        p[at + 1] = (char)(v >> 7);
        return at + 2;
    }
    if (v < 0x200000) {
        p[at] = (char)(v | 0x80);
        p[at + 1] = (char)((v >> 7) | 0x80);
        p[at + 2] = (char)(v >> 14);
        return at + 3;
    }
    while (v > 0x7F) {
        p[at++] = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    p[at] = (char)v;
    return at + 1;
}

/* memcpy(to, from, n) for the few bytes of a short str or bytes without a call (which
 * costs more than the copy): two overlapping words, or three bytes. */
static inline void sd_copy(char *to, const char *from, size_t n) {
    uint64_t a, b;
    uint32_t c, d;
    if (n > 16) {
        memcpy(to, from, n);
    } else if (n >= 8) {
        memcpy(&a, from, 8);
        memcpy(&b, from + n - 8, 8);
        memcpy(to, &a, 8);
        memcpy(to + n - 8, &b, 8);
    } else if (n >= 4) {
        memcpy(&c, from, 4);
        memcpy(&d, from + n - 4, 4);
        memcpy(to, &c, 4);
        memcpy(to + n - 4, &d, 4);
    } else if (n) {
        to[0] = from[0];
        to[n / 2] = from[n / 2];
        to[n - 1] = from[n - 1];
    }
}

#endif
