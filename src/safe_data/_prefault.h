/* A journal segment's pages faulted in ahead of its writer, by a thread of the writer's own.

The first store into each 4 KiB page of a fresh shared file mapping is a page fault, even
with the page already in the page cache (the writer's zeros written ahead put it there):
a small record is ~16 bytes, so a fault every few hundred records, 6-8 ns of a 58 ns
pop().  MADV_POPULATE_WRITE (Linux 5.14) takes the faults in advance; done by a thread of
its own, that work runs on another core while the application goes on.  Populating
changes no byte, so the prefaulter can only save the writer work: where it is missing,
refused or behind, the writer writes its zeros ahead as it always did
(RecordWriter._prepare).

The thread keeps a window in front of the writer, not the whole segment: the writer
raises the mark it wants reached (sd_prefault_want, an atomic store; a wake-up only when
the thread sleeps), so a segment sealed early (an uploader seals every few seconds) costs
at most the window, in CPU and in dirty pages.

The writer offers a new segment's mapping and withdraws it before the mapping is
released.  The thread holds the lock while it populates a chunk and leaves it between
chunks when a withdrawal waits, so a withdrawal waits one chunk at most and no populate
runs after it, on an address that may already map something else.  The writer ends its
prefaulter before a fork; a forked child that still holds one (a writer the fork hooks
did not reach) has no thread behind it, and its lock may have been held at the fork:
sd_prefault_mine() tells, and the child drops it without touching it (a few bytes) and
starts its own.  No Python code or object is involved. */
#ifndef SAFE_DATA_PREFAULT_H
#define SAFE_DATA_PREFAULT_H

#include <stddef.h>

#if defined(__linux__)
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14; older kernels answer EINVAL */
#endif
#define SD_PREFAULT_CHUNK (64 * 1024)  /* populated per madvise call: a withdrawal waits this long */
#define SD_PAGE_MASK ((size_t)4095)

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    char* base;           /* the offered mapping, NULL if none (under the lock) */
    size_t from, end;     /* the next offset to populate, the mapping's end (under the lock) */
    size_t want;          /* populate up to here: raised by the writer without the lock */
    size_t ready;         /* populated up to here: read by the writer without the lock */
    int withdrawing;      /* a withdrawal waits for the lock */
    int idle;             /* the thread waits for want to rise (or for an offer) */
    int exiting;
    pid_t pid;            /* the process whose thread it is */
} sd_prefaulter;

static int sd_prefault_refused;  /* the kernel has no MADV_POPULATE_WRITE: never start again */

/* (under the lock) where the thread should populate up to now, a page boundary or the
   end (each madvise starts on a page); <= from: nothing to do */
static size_t sd_prefault_limit(sd_prefaulter* pf) {
    size_t want = (__atomic_load_n(&pf->want, __ATOMIC_SEQ_CST) + SD_PAGE_MASK) & ~SD_PAGE_MASK;
    if (pf->base == NULL || __atomic_load_n(&pf->withdrawing, __ATOMIC_SEQ_CST)) return 0;
    return want < pf->end ? want : pf->end;
}

static void* sd_prefault_run(void* arg) {
    sd_prefaulter* pf = (sd_prefaulter*)arg;
    size_t limit, n;
#ifdef _GNU_SOURCE
    pthread_setname_np(pthread_self(), "sd-prefault");  /* as top -H and ps -L show it */
#endif
    pthread_mutex_lock(&pf->lock);
    while (!pf->exiting) {
        limit = sd_prefault_limit(pf);
        if (pf->from < limit) {
            n = limit - pf->from < SD_PREFAULT_CHUNK ? limit - pf->from : SD_PREFAULT_CHUNK;
            if (madvise(pf->base + pf->from, n, MADV_POPULATE_WRITE) == 0) {
                pf->from += n;
                __atomic_store_n(&pf->ready, pf->from, __ATOMIC_RELEASE);
            } else if (errno != EINTR && errno != EAGAIN) {
                if (errno == EINVAL) __atomic_store_n(&sd_prefault_refused, 1, __ATOMIC_RELAXED);
                pf->end = pf->from;  /* the writer goes on alone in this segment */
            }
            continue;
        }
        /* Say we sleep, then look again: sd_prefault_want raises want, then looks at idle,
           so one of the two sees the other's store and no raise is missed. */
        __atomic_store_n(&pf->idle, 1, __ATOMIC_SEQ_CST);
        if (pf->from >= sd_prefault_limit(pf) && !pf->exiting) pthread_cond_wait(&pf->wake, &pf->lock);
        __atomic_store_n(&pf->idle, 0, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&pf->lock);
    return NULL;
}

/* A prefaulter with its thread waiting for an offer, or NULL (none: the writer works alone). */
static sd_prefaulter* sd_prefault_new(void) {
    sd_prefaulter* pf;
    pthread_attr_t attr;
    int rc;
    if (__atomic_load_n(&sd_prefault_refused, __ATOMIC_RELAXED)) return NULL;
    if ((pf = (sd_prefaulter*)calloc(1, sizeof *pf)) == NULL) return NULL;
    pf->pid = getpid();
    pthread_mutex_init(&pf->lock, NULL);
    pthread_cond_init(&pf->wake, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);  /* it calls madvise, nothing else */
    rc = pthread_create(&pf->thread, &attr, sd_prefault_run, pf);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_cond_destroy(&pf->wake);
        pthread_mutex_destroy(&pf->lock);
        free(pf);
        return NULL;
    }
    return pf;
}

/* pf if its thread runs in this process, else NULL (a parent's, copied by a fork). */
static inline sd_prefaulter* sd_prefault_mine(sd_prefaulter* pf) {
    return pf != NULL && pf->pid == getpid() ? pf : NULL;
}

/* Offer the mapping at base, whose records start at ``from`` and which ends at ``end``,
   and populate it up to ``want`` (more as the writer asks). */
static void sd_prefault_offer(sd_prefaulter* pf, char* base, size_t from, size_t end, size_t want) {
    pthread_mutex_lock(&pf->lock);
    pf->base = base;
    pf->from = from & ~SD_PAGE_MASK;
    pf->end = end;
    __atomic_store_n(&pf->ready, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pf->want, want, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&pf->wake);
    pthread_mutex_unlock(&pf->lock);
}

/* Ask for the offered mapping to be populated up to ``want``. */
static inline void sd_prefault_want(sd_prefaulter* pf, size_t want) {
    __atomic_store_n(&pf->want, want, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pf->idle, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&pf->lock);
        pthread_cond_signal(&pf->wake);
        pthread_mutex_unlock(&pf->lock);
    }
}

/* The offset up to which the offered mapping is populated (0 before the first chunk). */
static inline size_t sd_prefault_ready(sd_prefaulter* pf) {
    return __atomic_load_n(&pf->ready, __ATOMIC_ACQUIRE);
}

/* Withdraw the mapping; when this returns, the thread no longer touches it. */
static void sd_prefault_withdraw(sd_prefaulter* pf) {
    __atomic_store_n(&pf->withdrawing, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&pf->lock);
    pf->base = NULL;
    pf->from = pf->end = 0;
    __atomic_store_n(&pf->ready, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pf->withdrawing, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&pf->lock);
}

/* End the thread and free the prefaulter (its mapping withdrawn). */
static void sd_prefault_free(sd_prefaulter* pf) {
    pthread_mutex_lock(&pf->lock);
    pf->exiting = 1;
    pthread_cond_signal(&pf->wake);
    pthread_mutex_unlock(&pf->lock);
    pthread_join(pf->thread, NULL);
    pthread_cond_destroy(&pf->wake);
    pthread_mutex_destroy(&pf->lock);
    free(pf);
}

#else  /* elsewhere the writer works alone */

typedef struct sd_prefaulter sd_prefaulter;
static sd_prefaulter* sd_prefault_new(void) { return NULL; }
static inline sd_prefaulter* sd_prefault_mine(sd_prefaulter* pf) { return NULL; }
static void sd_prefault_offer(sd_prefaulter* pf, char* base, size_t from, size_t end, size_t want) {}
static inline void sd_prefault_want(sd_prefaulter* pf, size_t want) {}
static inline size_t sd_prefault_ready(sd_prefaulter* pf) { return 0; }
static void sd_prefault_withdraw(sd_prefaulter* pf) {}
static void sd_prefault_free(sd_prefaulter* pf) {}

#endif
#endif
