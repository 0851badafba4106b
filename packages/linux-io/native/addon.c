/*
 * System calls Node does not make, each in its own file: a socket's send
 * buffer (socket_send_buffer.c), reads that never wait for the device
 * (pread_nowait.c), read replies sent from the page cache without a copy
 * (send_from_file.c), a socket held open to watch what its peer has not
 * read (socket_hold.c), and freed memory given back to the kernel
 * (free_memory.c).
 */
#include "napi_helpers.h"

NAPI_MODULE_INIT() {
  register_socket_send_buffer(env, exports);
  register_pread_nowait(env, exports);
  register_send_from_file(env, exports);
  register_socket_hold(env, exports);
  register_free_memory(env, exports);
  return exports;
}
