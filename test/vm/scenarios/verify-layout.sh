# Reads a migrated disk back after finish (test/vm/migration.test.ts): the host serves the
# final image read-only with a plain `nbd-remapper serve --read-only`; the guest attaches it,
# mounts partition 1 (ext4) and 2 (xfs) read-only and checks every file against the
# manifests, and that no file is missing or extra. The host cannot read xfs without a
# mount; this VM is its way to check the xfs files.
#
# Host gives (/vm/files): params.sh (NBD_PORT), manifest-1.sha256, manifest-2.sha256.
. /etc/vm-lib.sh
. "$VM_FILES/params.sh"

dev=/dev/nbd0
step "attach the final disk"
nbd-client -t 30 -R -N source "$VM_FORWARD_HOST" "$NBD_PORT" "$dev" || die "nbd-client could not attach the final disk"
blockdev --rereadpt "$dev" || die "cannot read the partition table of $dev"
wait_for_dev "${dev}p1"
wait_for_dev "${dev}p2"
report table "$(sfdisk -d "$dev" | tr '\n' ';')"

mkdir -p /mnt/p1 /mnt/p2
mount -t ext4 -o ro "${dev}p1" /mnt/p1 || die "cannot mount partition 1 (ext4) of the final disk"
mount -t xfs -o ro "${dev}p2" /mnt/p2 || die "cannot mount partition 2 (xfs) of the final disk"

for p in 1 2; do
  step "check the files on partition $p"
  (cd /mnt/p$p && sha256sum -c -s "$VM_FILES/manifest-$p.sha256") || die "files on partition $p differ from the manifest"
  expected=$(wc -l <"$VM_FILES/manifest-$p.sha256")
  found=$(cd /mnt/p$p && find . -path ./lost+found -prune -o -type f -print | wc -l)
  [ "$found" = "$expected" ] || die "partition $p holds $found files, the manifest $expected"
  report "files_$p" "$found"
done

umount /mnt/p1
umount /mnt/p2
nbd_detach "$dev"
step "done"
