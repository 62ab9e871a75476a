/* CRC32C (Castagnoli), as used by the journal's frames.
 *
 * sd_crc32c(crc, p, n) extends `crc` over n bytes (start with 0), like
 * google_crc32c.extend.  x86-64 with SSE4.2 uses the crc32 instruction (chosen once at
 * run time); everything else uses a slicing-by-8 table.
 */
#ifndef SAFE_DATA_CRC32C_H
#define SAFE_DATA_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safe_data's C writer assumes a little-endian CPU; build with SAFE_DATA_NO_EXTENSIONS=1"
#endif

static uint32_t sd_crc32c_table[8][256];
static int sd_crc32c_ready = 0;

static void sd_crc32c_init_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        sd_crc32c_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = sd_crc32c_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = sd_crc32c_table[0][c & 0xFF] ^ (c >> 8);
            sd_crc32c_table[t][i] = c;
        }
    }
}

static uint32_t sd_crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { crc = sd_crc32c_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8); n--; }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = sd_crc32c_table[7][w & 0xFF] ^ sd_crc32c_table[6][(w >> 8) & 0xFF] ^
              sd_crc32c_table[5][(w >> 16) & 0xFF] ^ sd_crc32c_table[4][(w >> 24) & 0xFF] ^
              sd_crc32c_table[3][(w >> 32) & 0xFF] ^ sd_crc32c_table[2][(w >> 40) & 0xFF] ^
              sd_crc32c_table[1][(w >> 48) & 0xFF] ^ sd_crc32c_table[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) crc = sd_crc32c_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define SD_CRC32C_HAVE_HW 1
__attribute__((target("sse4.2")))
static uint32_t sd_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    /* unaligned loads: as fast as aligned ones on x86-64, and a frame's few bytes start
       anywhere (aligning them first cost more than the CRC of a small record) */
    uint64_t c = crc;
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; n -= 8; }
    if (n >= 4) { uint32_t w; memcpy(&w, p, 4); c = _mm_crc32_u32((uint32_t)c, w); p += 4; n -= 4; }
    if (n >= 2) { uint16_t w; memcpy(&w, p, 2); c = _mm_crc32_u16((uint32_t)c, w); p += 2; n -= 2; }
    if (n) c = _mm_crc32_u8((uint32_t)c, *p);
    return (uint32_t)c;
}

/* sd_crc32c_hw over the 16 bytes of a and b (little-endian), then p: in one call */
__attribute__((target("sse4.2")))
static uint32_t sd_crc32c_hw_after(uint32_t crc, uint64_t a, uint64_t b, const uint8_t *p, size_t n) {
    return sd_crc32c_hw((uint32_t)_mm_crc32_u64(_mm_crc32_u64(crc, a), b), p, n);
}
#endif

static uint32_t sd_crc32c_sw_after(uint32_t crc, uint64_t a, uint64_t b, const uint8_t *p, size_t n) {
    uint8_t words[16];
    memcpy(words, &a, 8);
    memcpy(words + 8, &b, 8);
    return sd_crc32c_sw(sd_crc32c_sw(crc, words, 16), p, n);
}

static uint32_t (*sd_crc32c_impl)(uint32_t, const uint8_t *, size_t) = 0;
static uint32_t (*sd_crc32c_after_impl)(uint32_t, uint64_t, uint64_t, const uint8_t *, size_t) = 0;

static void sd_crc32c_setup(void) {
    sd_crc32c_init_table();
    sd_crc32c_impl = sd_crc32c_sw;
    sd_crc32c_after_impl = sd_crc32c_sw_after;
#ifdef SD_CRC32C_HAVE_HW
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        sd_crc32c_impl = sd_crc32c_hw;
        sd_crc32c_after_impl = sd_crc32c_hw_after;
    }
#endif
    sd_crc32c_ready = 1;
}

static inline uint32_t sd_crc32c(uint32_t crc, const void *p, size_t n) {
    return ~sd_crc32c_impl(~crc, (const uint8_t *)p, n);
}

/* The CRC32C of the 16 bytes of a and b (little-endian), then of n bytes at p: a compact
 * frame's context (seq, time) and its bytes after the CRC, which the frame does not hold
 * together. */
static inline uint32_t sd_crc32c_after(uint64_t a, uint64_t b, const void *p, size_t n) {
    return ~sd_crc32c_after_impl(~0u, a, b, (const uint8_t *)p, n);
}

static inline int sd_crc32c_hardware(void) {
#ifdef SD_CRC32C_HAVE_HW
    return sd_crc32c_impl == sd_crc32c_hw;
#else
    return 0;
#endif
}

#endif
