/*
 * Memory the C allocator keeps after it was freed. glibc gives freed memory
 * back to the kernel on its own only from the top of its heap; a server that
 * let go of its caches in bulk (after finish) would keep most of their pages
 * resident, fragmented among what is still in use.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include "napi_helpers.h"

/* returnFreeMemory(): malloc_trim(0), every free page the allocator can give back; true when it gave some (always false without glibc). */
static napi_value return_free_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

napi_value register_free_memory(napi_env env, napi_value exports) {
  export_function(env, exports, "returnFreeMemory", return_free_memory);
  return exports;
}
