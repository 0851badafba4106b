# The kernel nbd client against the host's `source` export (test/vm/kernel-client.test.ts).
# Host gives: /vm/files/payload.bin (random bytes; its length is a multiple of 64 KiB).
# Layout the scenario leaves on the disk: an ext4 filesystem over everything but the
# last payload-length bytes, and the payload itself in those last bytes.
# The host checks what it reports against the image after the VM exits.
. /etc/vm-lib.sh

dev=/dev/nbd0
payload=$VM_FILES/payload.bin

step "attach source"
nbd_attach source "$dev"
size=$(device_size "$dev")
report size "$size"

step "read the whole device"
report sha256_before "$(sha256_of "$dev")"

payload_bytes=$(stat -c %s "$payload")
payload_offset=$((size - payload_bytes))
step "write the payload at offset $payload_offset"
dd if="$payload" of="$dev" bs=65536 seek=$((payload_offset / 65536)) conv=fsync 2>/dev/null

step "mkfs.ext4 over the first $payload_offset bytes"
# The size argument keeps mke2fs (and its discard of the whole filesystem) off the payload.
mkfs.ext4 -q -F -b 4096 -L vmtest "$dev" $((payload_offset / 4096))
mkdir -p /mnt/fs
mount -t ext4 "$dev" /mnt/fs

step "write files"
mkdir /mnt/fs/data
cp "$payload" /mnt/fs/data/payload.bin
for n in 1 2 3; do
  dd if=/dev/urandom of="/mnt/fs/data/random-$n" bs=65536 count=$((n * 16)) 2>/dev/null
  report "file:/data/random-$n" "$(sha256_of "/mnt/fs/data/random-$n")"
done
echo "written by the kernel nbd client" >/mnt/fs/data/note.txt
report "file:/data/note.txt" "$(sha256_of /mnt/fs/data/note.txt)"
report "file:/data/payload.bin" "$(sha256_of /mnt/fs/data/payload.bin)"

step "unmount and flush"
umount /mnt/fs
sync
blockdev --flushbufs "$dev"
# Read back through the server, not the page cache.
echo 3 >/proc/sys/vm/drop_caches
readback=$(dd if="$dev" bs=65536 skip=$((payload_offset / 65536)) 2>/dev/null | sha256sum)
[ "${readback%% *}" = "$(sha256_of "$payload")" ] || die "the payload read back from $dev differs from what was written"
report sha256_after "$(sha256_of "$dev")"

step "detach"
nbd_detach "$dev"
step "done"
