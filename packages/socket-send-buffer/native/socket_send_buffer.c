/*
 * A socket's send buffer by file descriptor: its size (SO_SNDBUF), which Node
 * sets for UDP only, and what sits in it (SIOCOUTQ), which Node does not
 * show. A unix stream socket accepted by a server starts at
 * net.core.wmem_default (~208 KiB) whatever its listener has, and with that
 * little room one event-loop wake-up can queue only ~200 KB of replies; once
 * it is larger, a slow reader's progress is seen in the kernel's queue long
 * before the kernel takes more from the process.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char message[128];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_value code, text, error, number;
  napi_create_string_utf8(env, err == EBADF ? "EBADF" : err == ENOTSOCK ? "ENOTSOCK" : err == ENOTTY ? "ENOTTY" : err == EINVAL ? "EINVAL" : "ESYSCALL", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, err, &number);
  napi_set_named_property(env, error, "errno", number);
  napi_throw(env, error);
  return NULL;
}

static int int_argument(napi_env env, napi_callback_info info, size_t count, int32_t *out) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    napi_throw_type_error(env, NULL, "missing argument");
    return 0;
  }
  for (size_t i = 0; i < count; i++) {
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "arguments must be integers");
      return 0;
    }
  }
  return 1;
}

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
  if (!int_argument(env, info, 1, args)) return NULL;
  return get_send_buffer(env, args[0]);
}

/* setSendBufferSize(fd, bytes): asks for bytes (the kernel caps it at net.core.wmem_max) and returns what it gave. */
static napi_value set_send_buffer_size(napi_env env, napi_callback_info info) {
  int32_t args[2];
  if (!int_argument(env, info, 2, args)) return NULL;
  int size = args[1];
  if (setsockopt(args[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0) return throw_errno(env, "setsockopt(SO_SNDBUF)", errno);
  return get_send_buffer(env, args[0]);
}

/* sendQueueBytes(fd): bytes written to the socket that its peer has not taken yet (TCP: not yet acknowledged). */
static napi_value send_queue_bytes(napi_env env, napi_callback_info info) {
  int32_t args[1];
  if (!int_argument(env, info, 1, args)) return NULL;
  int queued = 0;
  if (ioctl(args[0], SIOCOUTQ, &queued) != 0) return throw_errno(env, "ioctl(SIOCOUTQ)", errno);
  napi_value result;
  napi_create_int32(env, queued, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendBufferSize", NAPI_AUTO_LENGTH, send_buffer_size, NULL, &fn);
  napi_set_named_property(env, exports, "sendBufferSize", fn);
  napi_create_function(env, "setSendBufferSize", NAPI_AUTO_LENGTH, set_send_buffer_size, NULL, &fn);
  napi_set_named_property(env, exports, "setSendBufferSize", fn);
  napi_create_function(env, "sendQueueBytes", NAPI_AUTO_LENGTH, send_queue_bytes, NULL, &fn);
  napi_set_named_property(env, exports, "sendQueueBytes", fn);
  return exports;
}
