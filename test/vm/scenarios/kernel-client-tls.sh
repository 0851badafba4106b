# The kernel nbd client over TLS (test/vm/kernel-client.test.ts): nbd-client -x checks the
# server's certificate against the host's test CA, then the device reads and writes through it.
# Host gives: /vm/files/ca-cert.pem, /vm/files/payload.bin (a multiple of 64 KiB).
. /etc/vm-lib.sh

dev=/dev/nbd0
payload=$VM_FILES/payload.bin

step "attach source over TLS"
# The certificate names localhost; the guest reaches the host by another address.
nbd_attach_with source "$dev" 10809 -x -A "$VM_FILES/ca-cert.pem" -H localhost
size=$(device_size "$dev")
report size "$size"

step "read the whole device"
report sha256_before "$(sha256_of "$dev")"

payload_bytes=$(stat -c %s "$payload")
step "write the payload in the last $payload_bytes bytes"
dd if="$payload" of="$dev" bs=65536 seek=$(((size - payload_bytes) / 65536)) conv=fsync 2>/dev/null
sync
blockdev --flushbufs "$dev"
# Read back through the server, not the page cache.
echo 3 >/proc/sys/vm/drop_caches
report sha256_after "$(sha256_of "$dev")"

step "detach"
nbd_detach "$dev"
step "done"
