#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "napi_helpers.h"

static const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTTY: return "ENOTTY";
    case EINVAL: return "EINVAL";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EIO: return "EIO";
    case EISDIR: return "EISDIR";
    case EFAULT: return "EFAULT";
    case ENOSYS: return "ENOSYS";
    case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET";
    case ENOTCONN: return "ENOTCONN";
    case EAGAIN: return "EAGAIN";
    default: return "ESYSCALL";
  }
}

napi_value errno_error(napi_env env, const char *syscall, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_value code, text, error, number;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, err, &number);
  napi_set_named_property(env, error, "errno", number);
  /* Node's own system errors carry `syscall` too, and callers tell them from other failures by it. */
  size_t name_length = strcspn(syscall, "(");
  napi_value name;
  napi_create_string_utf8(env, syscall, name_length, &name);
  napi_set_named_property(env, error, "syscall", name);
  return error;
}

napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_throw(env, errno_error(env, syscall, err));
  return NULL;
}

int get_arguments(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

int int32_arguments(napi_env env, napi_callback_info info, size_t count, int32_t *out) {
  napi_value argv[4];
  if (count > 4) {
    napi_throw_type_error(env, NULL, "too many arguments");
    return 0;
  }
  if (!get_arguments(env, info, count, argv, "missing argument")) return 0;
  for (size_t i = 0; i < count; i++) {
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "arguments must be integers");
      return 0;
    }
  }
  return 1;
}

int bytes_argument(napi_env env, napi_value value, const char *what, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t byte_offset;
  if (napi_get_typedarray_info(env, value, &type, length, data, &arraybuffer, &byte_offset) != napi_ok || type != napi_uint8_array) {
    char message[96];
    snprintf(message, sizeof message, "%s must be a Uint8Array or Buffer", what);
    napi_throw_type_error(env, NULL, message);
    return 0;
  }
  return 1;
}

void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value);
  napi_set_named_property(env, exports, name, value);
}
