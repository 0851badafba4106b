/*
 * A read reply sent from the page cache: the header from memory, then the
 * data by sendfile(2), which hands the socket references to the cached pages
 * instead of copying them (Linux 6.5 and later for unix sockets, earlier for
 * TCP). A server that preads into a buffer and writes it copies every byte
 * twice on its one thread; this copies none, and the client's own read is
 * the only copy left.
 *
 * sendfile reads the file synchronously when a page is not cached, so the
 * range is first checked with cachestat(2): a reply is sent this way only
 * when every page of it is in memory, and the caller never waits for the
 * device.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "napi_helpers.h"

/* Linux 6.5's cachestat; the C library here may predate it, so its number and structures are spelled out (one number on every architecture). */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct cachestat_range_v1 {
  uint64_t off;
  uint64_t len;
};
struct cachestat_v1 {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

/* 1 when every page of [position, position + length) is in the page cache, 0 when one is not, -1 with errno on failure. */
static int range_cached(int fd, int64_t position, int64_t length) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t first = (uint64_t)position / (uint64_t)page;
  uint64_t last = ((uint64_t)position + (uint64_t)length - 1) / (uint64_t)page;
  struct cachestat_range_v1 range = { .off = first * (uint64_t)page, .len = (last - first + 1) * (uint64_t)page };
  struct cachestat_v1 stat;
  if (syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) return -1;
  return stat.nr_cache >= last - first + 1;
}

/*
 * sendFromFile(socketFd, header, fileFd, position, length): bytes written to
 * the socket, header first: header.length + length when all went, fewer when
 * the socket filled (the caller writes the rest), or -1 when a page of the
 * range is not cached (nothing written). Throws what cachestat, send or
 * sendfile report: ENOSYS where cachestat is missing, EPIPE or ECONNRESET
 * when the peer is gone; a sendfile error carries `written`, the bytes of
 * the reply (the header) that went before it.
 */
static napi_value send_from_file(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_arguments(env, info, 5, argv, "sendFromFile(socketFd, header, fileFd, position, length)")) return NULL;
  int32_t socket_fd, file_fd;
  int64_t position, length;
  if (napi_get_value_int32(env, argv[0], &socket_fd) != napi_ok || napi_get_value_int32(env, argv[2], &file_fd) != napi_ok ||
      napi_get_value_int64(env, argv[3], &position) != napi_ok || napi_get_value_int64(env, argv[4], &length) != napi_ok || position < 0 || length <= 0) {
    napi_throw_type_error(env, NULL, "descriptors must be integers, position non-negative and length positive");
    return NULL;
  }
  size_t header_length;
  void *header;
  if (!bytes_argument(env, argv[1], "header", &header, &header_length)) return NULL;

  int cached = range_cached(file_fd, position, length);
  if (cached < 0) return throw_errno(env, "cachestat", errno);
  napi_value result;
  if (!cached) {
    napi_create_int64(env, -1, &result);
    return result;
  }

  int64_t written = 0;
  while ((size_t)written < header_length) {
    ssize_t n = send(socket_fd, (const char *)header + written, header_length - (size_t)written, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return throw_errno(env, "send", errno);
    }
    written += n;
  }
  if ((size_t)written == header_length) {
    off_t offset = (off_t)position;
    int64_t left = length;
    while (left > 0) {
      ssize_t n = sendfile(socket_fd, file_fd, &offset, (size_t)left);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        /* The header went already: the error says how much of the reply did, so the caller can send the rest its own way. */
        napi_value error = errno_error(env, "sendfile", errno), sent;
        napi_create_int64(env, written, &sent);
        napi_set_named_property(env, error, "written", sent);
        napi_throw(env, error);
        return NULL;
      }
      if (n == 0) break; /* the file ended (shrunk under us): the caller writes the rest its own way */
      written += n;
      left -= n;
    }
  }
  napi_create_int64(env, written, &result);
  return result;
}

napi_value register_send_from_file(napi_env env, napi_value exports) {
  export_function(env, exports, "sendFromFile", send_from_file);
  return exports;
}
