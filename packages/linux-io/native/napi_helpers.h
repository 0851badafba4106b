/* What every function of the addon needs: errors that carry errno, integer arguments. */
#ifndef LINUX_IO_NAPI_HELPERS_H
#define LINUX_IO_NAPI_HELPERS_H
#define NAPI_VERSION 8
#include <stdint.h>
#include <node_api.h>

/* An Error whose message names the call, with `code`, `errno` and `syscall`, for the caller to add to before throwing it. */
napi_value errno_error(napi_env env, const char *syscall, int err);

/* Throws an Error whose message names the call, with `code` (e.g. "EBADF"), `errno` and `syscall` (the name before any "("), as Node's own system errors; returns NULL for the caller to return. */
napi_value throw_errno(napi_env env, const char *syscall, int err);

/* The first `count` arguments into `argv`; throws a TypeError with `usage` and returns 0 when fewer were given. */
int get_arguments(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage);

/* Reads `count` int32 arguments into `out`; throws a TypeError and returns 0 when one is missing or not an integer. */
int int32_arguments(napi_env env, napi_callback_info info, size_t count, int32_t *out);

/* The memory of a Uint8Array (or Buffer) argument; throws a TypeError naming `what` and returns 0 when it is not one. */
int bytes_argument(napi_env env, napi_value value, const char *what, void **data, size_t *length);

/* Adds `fn` to `exports` as `name`. */
void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn);

napi_value register_socket_send_buffer(napi_env env, napi_value exports);
napi_value register_pread_nowait(napi_env env, napi_value exports);
napi_value register_send_from_file(napi_env env, napi_value exports);
napi_value register_socket_hold(napi_env env, napi_value exports);
napi_value register_free_memory(napi_env env, napi_value exports);
#endif
