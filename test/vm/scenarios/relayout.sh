# A file-level migration with the kernel nbd client (test/vm/migration.test.ts).
#
# The host serves one disk with nbd-remapper: export "source" (the old layout: an MBR
# with one ext4 partition) and "destination" (the new layout, through the map). The
# guest does what a person migrating a disk does:
#   attach both; mount the old ext4 from source; fstrim it; remount it read-only;
#   seal (control plane); write the new partition table on destination; mkfs.ext4 and
#   mkfs.xfs on its two partitions; copy the files in batches (sync + checkpoint after
#   each); optionally read every file back through destination; unmount; detach.
# The host then runs finish and checks the image.
#
# Host gives (/vm/files):
#   params.sh        NBD_PORT, CONTROL_PORT, DISCARDS ("OFFSET:LENGTH …", the server's blkdiscard hint), REATTACH (1: ioctl-mode nbd-client, the old ext4 on a dm-linear device,
#                    both exports re-attached after a crash), READBACK (1: sha256sum -c
#                    through destination after the copy), CRASH_BATCH (n>0: ask the host to kill and
#                    restart the server while batch n copies; CRASH_PORT is the host helper's port),
#                    CRASH_AFTER_KIB (how much of batch n to copy first)
#   new-table.sfdisk the new partition table (sfdisk script): partition 1 ext4, partition 2 xfs
#   batches.txt      lines "SRC DESTDIR": cp -a /mnt/old/SRC into DESTDIR (/mnt/new1/... or /mnt/new2/...)
#   manifest-1.sha256, manifest-2.sha256  sha256sum -c lists, relative to /mnt/new1 and /mnt/new2
. /etc/vm-lib.sh
. "$VM_FILES/params.sh"

src=/dev/nbd0
dst=/dev/nbd1
mkdir -p /mnt/old /mnt/new1 /mnt/new2

# 512-byte sectors (nbd-client's default), like the disk the tables were written for: with a 4 KiB
# nbd block size the kernel reads the MBR's sector numbers as 4 KiB units and truncates the partition.
# REATTACH=1 (scenario 3): ioctl mode (-L), and the old ext4 is mounted from a dm-linear device over
# the source partition, not from the partition itself. Why: nbd-client 3.24's -persist does not
# reconnect in netlink mode, and a dead nbd device whose partition is still mounted cannot be
# re-attached in ioctl mode either. The mount holds a reference to the device's nbd config, so the
# config survives the dead connection with its dead socket and the old client's pid
# (/sys/block/nbdX/pid keeps it); a new nbd-client's NBD_SET_SOCK adds a second socket to it and its
# NBD_DO_IT fails with EBUSY (nbd_start_device: "if (nbd->pid) return -EBUSY"; the client has daemonized,
# so nothing is printed), and from then on every request to the device fails inside the guest kernel
# without reaching the server. (Seen on Linux 6.1 with nbd-client 3.24. -L -persist does not help: the
# client exits when the connection dies without connecting again, and the stale pid stays.)
# dm-linear is the way around it: the mounted filesystem sits on dm-0, whose table is re-pointed at a
# fresh nbd device attached to the restarted server (suspend, reload, resume). The filesystem's cached
# metadata stays valid, and its new reads reach the server.
attach() {
  if [ "${REATTACH:-0}" = 1 ]; then nbd_attach_with "$1" "$2" "$NBD_PORT" -L; else nbd_attach_with "$1" "$2" "$NBD_PORT"; fi
}

# The old ext4's device mapper device (REATTACH=1). No udev in the guest: libdevmapper makes the nodes.
dm() {
  DM_DISABLE_UDEV=1 dmsetup --noudevsync "$@"
}

status_line() {
  control GET /status "$CONTROL_PORT" | tr -d '\n'
}

mount_new() {
  mount -t ext4 "${dst}p1" /mnt/new1 || die "cannot mount the new ext4 (${dst}p1)"
  mount -t xfs "${dst}p2" /mnt/new2 || die "cannot mount the new xfs (${dst}p2)"
}

# The copier's promise: what it read so far is durably copied.
checkpoint() {
  sync
  control POST /checkpoint "$CONTROL_PORT" >/tmp/checkpoint.out || die "checkpoint failed: $(cat /tmp/checkpoint.out)"
}

copy_batch() { # SRC DESTDIR
  mkdir -p "$2"
  cp -a "/mnt/old/$1" "$2/" || die "cp -a /mnt/old/$1 $2/ failed"
}

step "attach source and destination"
attach source "$src"
attach destination "$dst"
report source_size "$(device_size "$src")"
report destination_size "$(device_size "$dst")"
# The partition scan at connect is asynchronous; ask for it outright.
blockdev --rereadpt "$src" || die "cannot read the partition table of $src"
wait_for_dev "${src}p1"
report old_partition_bytes "$(device_size "${src}p1")"

step "discard what the server's hint names: space outside the old partition"
# blkdiscard on the attached source sends TRIMs: the server counts those blocks as declared free (released at seal).
# Before the mount: blkdiscard opens the whole device exclusively, and a mounted partition makes that fail (EBUSY).
declared() { status_line | sed -n 's/.*"declaredFree":\([0-9]*\).*/\1/p'; }
before=$(declared)
for range in ${DISCARDS:-}; do
  blkdiscard -o "${range%%:*}" -l "${range##*:}" "$src" || die "blkdiscard -o ${range%%:*} -l ${range##*:} $src failed"
done
report declared_free_by_discard "$(( $(declared) - before ))"

step "mount the old ext4 from source, fstrim it, remount read-only"
old_dev="${src}p1"
if [ "${REATTACH:-0}" = 1 ]; then
  dm create oldsrc --table "0 $(blockdev --getsz "${src}p1") linear ${src}p1 0" || die "dmsetup create oldsrc over ${src}p1 failed"
  old_dev=/dev/mapper/oldsrc
  wait_for_dev "$old_dev"
fi
mount -t ext4 "$old_dev" /mnt/old || die "cannot mount the old ext4 from $old_dev"
trimmed=$(fstrim -v /mnt/old) || die "fstrim failed"
echo "$trimmed"
report fstrim "$trimmed"
mount -o remount,ro /mnt/old || die "cannot remount the old ext4 read-only"
sync
blockdev --flushbufs "$src"

step "destination refuses writes before sealing"
if dd if=/dev/zero of="$dst" bs=4096 count=1 oflag=direct 2>/tmp/dd.err; then
  die "a write to destination before sealing succeeded"
fi
report unsealed_write "$(tr '\n' ' ' </tmp/dd.err)"

step "seal"
control POST /seal "$CONTROL_PORT" >/tmp/seal.out || die "seal failed: $(cat /tmp/seal.out)"
report seal "$(tr -d '\n' </tmp/seal.out)"

step "new partition table on destination"
sfdisk --wipe always -q "$dst" <"$VM_FILES/new-table.sfdisk" || die "sfdisk on $dst failed"
blockdev --rereadpt "$dst" 2>/dev/null || true
wait_for_dev "${dst}p1"
wait_for_dev "${dst}p2"
report new_table "$(sfdisk -d "$dst" | tr '\n' ';')"

step "mkfs.ext4 ${dst}p1, mkfs.xfs ${dst}p2"
mkfs.ext4 -q -F -L newext4 "${dst}p1" || die "mkfs.ext4 failed"
mkfs.xfs -q -f -L newxfs "${dst}p2" || die "mkfs.xfs failed"
mount_new

n=0
checkpointed=0
while read -r from to; do
  [ -n "$from" ] || continue
  n=$((n + 1))
  if [ "$n" = "${CRASH_BATCH:-0}" ]; then
    step "batch $n: copy $from -> $to, and have the host kill the server part way"
    mkdir -p "$to"
    cp -a "/mnt/old/$from" "$to/" &
    copier=$!
    # Let the copy get going: wait until this batch's copy holds CRASH_AFTER_KIB ("$to" itself also
    # holds the earlier batches).
    copying="$to/$(basename "$from")"
    copied_kib() { du -sk "$copying" 2>/dev/null | cut -f1 | grep . || echo 0; }
    tries=0
    while [ "$(copied_kib)" -lt "${CRASH_AFTER_KIB:-4096}" ] && [ "$tries" -lt 600 ]; do
      sleep 0.1
      tries=$((tries + 1))
    done
    # Held still while the host kills the server: otherwise a fast enough copy finishes the batch in the
    # time the request takes, and nothing is interrupted. Let go, it needs data no longer served.
    kill -STOP "$copier"
    report crash_at_kib "$(copied_kib)"
    read_errors() { dmesg | grep -c "I/O error, dev ${src#/dev/}," || true; }
    errors_before=$(read_errors)
    control GET /crash "$CRASH_PORT" >/tmp/crash.out || die "the host could not crash and restart the server: $(cat /tmp/crash.out)"
    report crash "$(tr -d '\n' </tmp/crash.out)"
    kill -CONT "$copier"
    if wait "$copier"; then report crash_copy ok; else report crash_copy "failed $?"; fi
    # Reads of the dead source that failed. cp itself may still exit 0: ext4 skips a directory block it
    # cannot read when listing an htree directory (a warning in the kernel log, no error to readdir), so
    # cp copies fewer files and reports success. The batch is copied again below either way.
    report crash_read_errors "$(( $(read_errors) - errors_before ))"
    report crash_dmesg "$(dmesg | grep -i -E 'I/O error|EXT4-fs (error|warning)' | tail -4 | tr '\n' '|')"
    step "server restarted: treat the new filesystems as power-cut (shut down, remount = log replay)"
    # Acknowledged but unflushed writes may be gone, so nothing the kernel still holds for the new
    # filesystems may reach the disk: shut them down without flushing, then mount them afresh.
    # (A filesystem the I/O errors already shut down refuses the request; that is just as good.)
    xfs_io -x -c 'shutdown' /mnt/new1 || echo "VM: /mnt/new1 was already shut down"
    xfs_io -x -c 'shutdown' /mnt/new2 || echo "VM: /mnt/new2 was already shut down"
    umount /mnt/new1 || die "cannot unmount the shut-down /mnt/new1"
    umount /mnt/new2 || die "cannot unmount the shut-down /mnt/new2"
    step "re-attach both exports to the restarted server (the old ext4 stays mounted, the new ones are unmounted)"
    # The ioctl-mode clients return once their connection is gone; wait for that, then connect again.
    tries=0
    while pidof nbd-client >/dev/null && [ "$tries" -lt 300 ]; do sleep 0.1; tries=$((tries + 1)); done
    pidof nbd-client >/dev/null && die "nbd-client still running 30 s after the server died"
    report dead_source_pid "$(cat /sys/block/${src#/dev/}/pid 2>/dev/null || echo none)"
    # Source: a fresh nbd device under the mounted old ext4 (see attach() for why not the same one).
    old_src=$src
    src=/dev/nbd2
    attach source "$src"
    blockdev --rereadpt "$src" || die "cannot read the partition table of $src"
    wait_for_dev "${src}p1"
    [ "$(blockdev --getsz "${src}p1")" = "$(blockdev --getsz "${old_src}p1")" ] || die "${src}p1 and ${old_src}p1 differ in size"
    dm suspend --nolockfs oldsrc || die "dmsetup suspend oldsrc failed"
    dm reload oldsrc --table "0 $(blockdev --getsz "${src}p1") linear ${src}p1 0" || die "dmsetup reload oldsrc failed"
    dm resume oldsrc || die "dmsetup resume oldsrc failed"
    report old_ext4_table "$(dm table oldsrc)"
    # Nothing holds the dead device now: its config (and the stale pid) is gone.
    report dead_source_pid_after "$(cat /sys/block/${old_src#/dev/}/pid 2>/dev/null || echo none)"
    # Destination: nothing is mounted from it, so the same device takes a new connection.
    attach destination "$dst"
    # Forget every cached block of destination; the re-attach may also have dropped its partitions.
    blockdev --flushbufs "$dst"
    blockdev --rereadpt "$dst" || die "cannot re-read the partition table of $dst"
    wait_for_dev "${dst}p1"
    wait_for_dev "${dst}p2"
    # No drop_caches here: the old ext4's cached metadata (directories, inodes) is what lets the copy
    # run again; its blocks were confirmed by earlier checkpoints and may be overwritten by now, and a
    # re-read of such a block fails with EIO (the server's revisit cache died with it).
    mount_new
    report status_after_restart "$(status_line)"
    # Re-run the copy from the last checkpoint: the batches after it start over.
    step "re-run batches $((checkpointed + 1))..$n"
    m=0
    while read -r from2 to2; do
      [ -n "$from2" ] || continue
      m=$((m + 1))
      [ "$m" -gt "$checkpointed" ] || continue
      [ "$m" -le "$n" ] || break
      rm -rf "$to2/$(basename "$from2")"
      copy_batch "$from2" "$to2"
    done <"$VM_FILES/batches.txt"
  else
    step "batch $n: copy $from -> $to"
    copy_batch "$from" "$to"
  fi
  checkpoint
  checkpointed=$n
  report "checkpoint_$n" "$(tr -d '\n' </tmp/checkpoint.out)"
done <"$VM_FILES/batches.txt"
report batches "$n"

if [ "${READBACK:-0}" = 1 ]; then
  step "read every file back through destination"
  echo 3 >/proc/sys/vm/drop_caches
  (cd /mnt/new1 && sha256sum -c -s "$VM_FILES/manifest-1.sha256") || die "files on the new ext4 differ when read back through destination"
  (cd /mnt/new2 && sha256sum -c -s "$VM_FILES/manifest-2.sha256") || die "files on the new xfs differ when read back through destination"
  report readback ok
fi

step "unmount and detach"
report status_before_detach "$(status_line)"
umount /mnt/new1
umount /mnt/new2
umount /mnt/old
if [ "${REATTACH:-0}" = 1 ]; then dm remove oldsrc || die "dmsetup remove oldsrc failed"; fi
sync
nbd_detach "$dst"
nbd_detach "$src"
step "done"
