/* The clock of the journal's records: CLOCK_REALTIME, in nanoseconds, read for each record.
 *
 * clock_gettime() costs 17-28 ns here, about a third of a journaled pop().  A TSC scaled
 * from a (TSC, CLOCK_REALTIME) pair renewed every millisecond cost 8 ns, but it drifted
 * from CLOCK_REALTIME by up to a few hundred ns between renewals (what NTP slews, and the
 * scale's error): a record then carried a time later than a time.time_ns() the
 * application read after the operation returned, and restore(at=that time) left the
 * operation out.  A record's time must lie between what the application's clock reads
 * before and after its operation, and only the kernel's own reading of the clock does.
 */
#ifndef SAFE_DATA_CLOCK_H
#define SAFE_DATA_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t sd_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
