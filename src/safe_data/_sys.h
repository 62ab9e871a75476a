/* Platform choices for the C writer, made once here. */
#ifndef SAFE_DATA_SYS_H
#define SAFE_DATA_SYS_H

#include <stdint.h>
#include <unistd.h>

#if defined(__APPLE__)
#define sd_fdatasync(fd) fsync(fd)
#else
#define sd_fdatasync(fd) fdatasync(fd)
#endif

/* zeros for pwrite-ahead of the writer (see RecordWriter._prepare) */
#define SD_ZERO_SIZE 65536
static const char sd_zeros_buf[SD_ZERO_SIZE] = {0};
static const char *sd_zeros = sd_zeros_buf;

#endif
