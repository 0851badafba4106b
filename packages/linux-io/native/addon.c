/*
 * System calls Node does not make, each in its own file: a socket's send
 * buffer (socket_send_buffer.c) and reads that never wait for the device
 * (pread_nowait.c).
 */
#include "napi_helpers.h"

NAPI_MODULE_INIT() {
  register_socket_send_buffer(env, exports);
  register_pread_nowait(env, exports);
  return exports;
}
