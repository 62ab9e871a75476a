# The on-disk constants of format.py that C code compiles in: value tags and frame flags.
# format.py is the spec; tests/test_layers.py checks that every value here equals it.

cdef enum:
    T_NONE = 0x00
    T_FALSE = 0x01
    T_TRUE = 0x02
    T_INT = 0x03
    T_FLOAT = 0x04
    T_STR = 0x05
    T_BYTES = 0x06
    T_TUPLE = 0x07
    T_LIST = 0x08
    T_DICT = 0x09
    T_SET = 0x0A
    T_FROZENSET = 0x0B
    T_SLICE = 0x0C
    T_BYTEARRAY = 0x0D
    T_PICKLE = 0x0E
    T_BIGINT = 0x0F
    T_NESTED = 0x10
    FLAG_COMPRESSED = 0x01
    FLAG_CALLER = 0x02
    FLAG_ID = 0x04
    KNOWN_FLAGS = 0x07
    OP_HOLE = 255
    OP_DEFINE = 253
    COMPACT_SLACK = 70
    COMPACT_FLAG_BITS = 2
    LZ4_PROBE_SIZE = 65536
    FRAME_HEADER_SIZE = 36
    MAX_ENCODE_DEPTH = 32
