/* The clock of the journal's records: CLOCK_REALTIME, in nanoseconds.
 *
 * clock_gettime(CLOCK_REALTIME) costs about 25 ns (the vDSO reads the TSC, then scales it
 * under a sequence lock): as much as a builtin list.pop(), and every record reads it.
 * Where the kernel's own clock source is the TSC (x86-64 Linux; the kernel picks it only
 * when it runs at a constant rate and agrees across CPUs), sd_now_ns() reads the TSC alone
 * and scales it from an anchor, a (TSC, CLOCK_REALTIME) pair taken less than
 * SD_ANCHOR_NS ago.  Between anchors it can drift from CLOCK_REALTIME by what NTP slews in
 * that time (at most 500 ppm: 0.5 us in 1 ms); a step of the clock shows at the next
 * anchor.  The scale is measured from the first anchor on, over a window that only grows
 * (so its error shrinks); the TSC is not used before that window is SD_CALIBRATE_NS long,
 * and a measurement that disagrees with the scale in use by more than SD_SCALE_SLACK (a
 * step of the clock inside the window) starts the calibration again.  Everything runs
 * under the GIL.  Elsewhere sd_now_ns() is clock_gettime().
 */
#ifndef SAFE_DATA_CLOCK_H
#define SAFE_DATA_CLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static inline int64_t sd_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>

#define SD_ANCHOR_NS 1000000.0     /* 1 ms */
#define SD_CALIBRATE_NS 20000000   /* 20 ms */
#define SD_SCALE_SLACK 0.001       /* 1000 ppm: twice what NTP may slew */
#define SD_PAIR_TICKS 2000         /* a pair read further apart was interrupted in between */

static struct {
    int use_tsc;          /* the kernel's clock source is the TSC */
    uint64_t first_tsc;   /* the calibration's first pair (first_tsc 0: none yet) */
    int64_t first_ns;
    uint64_t anchor_tsc;  /* the last pair */
    int64_t anchor_ns;
    double scale;         /* nanoseconds per tick, and as a 32.32 fixed-point number */
    uint64_t mult;        /* (0 while calibrating) */
    uint64_t span;        /* the ticks an anchor lasts */
} sd_clock;

static void sd_clock_setup(void) {
    char source[16] = {0};
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (f != NULL) {
        if (fgets(source, sizeof source, f) == NULL) source[0] = 0;
        fclose(f);
    }
    memset(&sd_clock, 0, sizeof sd_clock);
    sd_clock.use_tsc = strcmp(source, "tsc\n") == 0;
}

/* A new anchor, and the calibration's next step; return CLOCK_REALTIME now. */
static int64_t sd_clock_anchor(void) {
    uint64_t before = __rdtsc();
    int64_t ns = sd_realtime_ns();
    uint64_t after = __rdtsc();
    uint64_t tsc = before + (after - before) / 2;
    double scale;
    if (after - before > SD_PAIR_TICKS) return ns;  /* not a pair: the next call tries again */
    if (sd_clock.first_tsc == 0 || tsc <= sd_clock.first_tsc || ns <= sd_clock.first_ns) {
        sd_clock.first_tsc = tsc;  /* (a step back of the clock starts again too) */
        sd_clock.first_ns = ns;
        sd_clock.mult = 0;
    } else if (ns - sd_clock.first_ns >= SD_CALIBRATE_NS) {
        scale = (double)(ns - sd_clock.first_ns) / (double)(tsc - sd_clock.first_tsc);
        if (sd_clock.mult && (scale > sd_clock.scale * (1 + SD_SCALE_SLACK) ||
                              scale < sd_clock.scale * (1 - SD_SCALE_SLACK))) {
            sd_clock.first_tsc = tsc;  /* the clock stepped: calibrate again */
            sd_clock.first_ns = ns;
            sd_clock.mult = 0;
        } else if (scale > 0.01 && scale < 100) {  /* (a TSC of 10 MHz to 100 GHz) */
            sd_clock.scale = scale;
            sd_clock.mult = (uint64_t)(scale * 4294967296.0);
            sd_clock.span = (uint64_t)(SD_ANCHOR_NS / scale);
        }
    }
    sd_clock.anchor_tsc = tsc;
    sd_clock.anchor_ns = ns;
    return ns;
}

static inline int64_t sd_now_ns(void) {
    uint64_t ticks;
    if (sd_clock.mult) {
        ticks = __rdtsc() - sd_clock.anchor_tsc;  /* (unsigned: a TSC behind the anchor is far) */
        if (ticks < sd_clock.span) return sd_clock.anchor_ns + (int64_t)((ticks * sd_clock.mult) >> 32);
        return sd_clock_anchor();
    }
    if (sd_clock.use_tsc && (sd_clock.first_tsc == 0 || sd_realtime_ns() - sd_clock.first_ns >= SD_CALIBRATE_NS))
        return sd_clock_anchor();
    return sd_realtime_ns();
}

#else

static void sd_clock_setup(void) {}

static inline int64_t sd_now_ns(void) { return sd_realtime_ns(); }

#endif
#endif
