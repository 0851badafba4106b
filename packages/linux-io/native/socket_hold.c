/*
 * A socket kept open by a descriptor of our own after Node has closed its
 * one. Read replies sent from the page cache stay in a unix peer's receive
 * queue, as references to the file's pages, until the peer reads them or
 * closes; only a descriptor of our side can tell when that is (SIOCOUTQ).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "napi_helpers.h"

/* holdDescriptor(fd): a duplicate of fd (close-on-exec), which keeps the socket open until closeDescriptor. */
static napi_value hold_descriptor(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int32_arguments(env, info, 1, &fd)) return NULL;
  int held = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (held < 0) return throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
  napi_value result;
  napi_create_int32(env, held, &result);
  return result;
}

/* shutdownSocket(fd): no more sending or receiving (the peer reads what is queued, then end of stream); a peer already gone is no error. */
static napi_value shutdown_socket(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int32_arguments(env, info, 1, &fd)) return NULL;
  if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN) return throw_errno(env, "shutdown", errno);
  return NULL;
}

/* closeDescriptor(fd). */
static napi_value close_descriptor(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int32_arguments(env, info, 1, &fd)) return NULL;
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

napi_value register_socket_hold(napi_env env, napi_value exports) {
  export_function(env, exports, "holdDescriptor", hold_descriptor);
  export_function(env, exports, "shutdownSocket", shutdown_socket);
  export_function(env, exports, "closeDescriptor", close_descriptor);
  return exports;
}
