/*
 * preadv2(RWF_NOWAIT): a read that returns what the page cache holds and
 * never waits for the device. Node reads either on the event loop (readSync,
 * which blocks every connection for as long as the device takes; forever on
 * a hung disk) or on the thread pool (a hand-off per read, which costs more
 * than the copy of a page-cached read). With this, the event loop takes what
 * is cached and leaves only the rest to the thread pool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/uio.h>
#include "napi_helpers.h"

/*
 * preadNoWait(fd, buffer, position): bytes read from the start of `buffer`
 * (a typed array; 0 at the end of the file), or -1 when nothing of it is in
 * the page cache (EAGAIN). A short count means the rest is not cached (or the
 * file ends). Throws what preadv2 reports otherwise, EOPNOTSUPP included (a
 * file system without non-blocking buffered reads).
 */
static napi_value pread_nowait(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_arguments(env, info, 3, argv, "preadNoWait(fd, buffer, position)")) return NULL;
  int32_t fd;
  int64_t position;
  size_t length;
  void *data;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[2], &position) != napi_ok || position < 0) {
    napi_throw_type_error(env, NULL, "fd and position must be non-negative integers");
    return NULL;
  }
  if (!bytes_argument(env, argv[1], "buffer", &data, &length)) return NULL;
  struct iovec vector = { .iov_base = data, .iov_len = length };
  ssize_t got;
  do {
    got = preadv2(fd, &vector, 1, (off_t)position, RWF_NOWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && errno != EAGAIN) return throw_errno(env, "preadv2(RWF_NOWAIT)", errno);
  napi_value result;
  napi_create_int64(env, got < 0 ? -1 : (int64_t)got, &result);
  return result;
}

napi_value register_pread_nowait(napi_env env, napi_value exports) {
  export_function(env, exports, "preadNoWait", pread_nowait);
  return exports;
}
