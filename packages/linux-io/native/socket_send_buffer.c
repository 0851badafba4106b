/*
 * A socket's send buffer by file descriptor: its size (SO_SNDBUF), which Node
 * sets for UDP only, and what sits in it (SIOCOUTQ), which Node does not
 * show. A unix stream socket accepted by a server starts at
 * net.core.wmem_default (~208 KiB) whatever its listener has, and with that
 * little room one event-loop wake-up can queue only ~200 KB of replies; once
 * it is larger, a slow reader's progress is seen in the kernel's queue long
 * before the kernel takes more from the process.
 */
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include "napi_helpers.h"

static napi_value get_send_buffer(napi_env env, int fd) {
  int size = 0;
  socklen_t length = sizeof size;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &length) != 0) return throw_errno(env, "getsockopt(SO_SNDBUF)", errno);
  napi_value result;
  napi_create_int32(env, size, &result);
  return result;
}

/* sendBufferSize(fd): the kernel's figure, which is twice what was asked (its bookkeeping included). */
static napi_value send_buffer_size(napi_env env, napi_callback_info info) {
  int32_t args[1];
  if (!int32_arguments(env, info, 1, args)) return NULL;
  return get_send_buffer(env, args[0]);
}

/* setSendBufferSize(fd, bytes): asks for bytes (the kernel caps it at net.core.wmem_max) and returns what it gave. */
static napi_value set_send_buffer_size(napi_env env, napi_callback_info info) {
  int32_t args[2];
  if (!int32_arguments(env, info, 2, args)) return NULL;
  int size = args[1];
  if (setsockopt(args[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0) return throw_errno(env, "setsockopt(SO_SNDBUF)", errno);
  return get_send_buffer(env, args[0]);
}

/* sendQueueBytes(fd): bytes written to the socket that its peer has not taken yet (TCP: not yet acknowledged). */
static napi_value send_queue_bytes(napi_env env, napi_callback_info info) {
  int32_t args[1];
  if (!int32_arguments(env, info, 1, args)) return NULL;
  int queued = 0;
  if (ioctl(args[0], SIOCOUTQ, &queued) != 0) return throw_errno(env, "ioctl(SIOCOUTQ)", errno);
  napi_value result;
  napi_create_int32(env, queued, &result);
  return result;
}

napi_value register_socket_send_buffer(napi_env env, napi_value exports) {
  export_function(env, exports, "sendBufferSize", send_buffer_size);
  export_function(env, exports, "setSendBufferSize", set_send_buffer_size);
  export_function(env, exports, "sendQueueBytes", send_queue_bytes);
  return exports;
}
