{
  "targets": [
    {
      "target_name": "socket_send_buffer",
      "sources": ["native/socket_send_buffer.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    }
  ]
}
