{
  "targets": [
    {
      "target_name": "linux_io",
      "sources": ["native/addon.c", "native/napi_helpers.c", "native/socket_send_buffer.c", "native/pread_nowait.c", "native/send_from_file.c", "native/socket_hold.c", "native/free_memory.c"],
      "cflags": ["-Wall", "-Wextra"]
    }
  ]
}
