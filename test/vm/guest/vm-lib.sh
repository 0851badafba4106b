# Helpers for guest scenario scripts. A scenario starts with:  . /etc/vm-lib.sh
# Scenarios run under `sh -e` (busybox ash) with /vm as the working directory.

# Every host forward (runVmScenario's `forwards`) answers on this address, at its guestPort.
VM_FORWARD_HOST=10.0.2.100
# Files the host passed as extraFiles, by name.
VM_FILES=/vm/files

# Hands a value to the host: vm.ts collects "VM-REPORT key=value" lines into result.reports.
report() {
  echo "VM-REPORT $1=$2"
}

# Marks progress on the console with the guest's uptime, so a slow step shows in the log.
step() {
  echo "VM-STEP [$(cut -d' ' -f1 /proc/uptime)s] $*"
}

die() {
  echo "VM-ERROR: $*"
  exit 1
}

# nbd_attach EXPORT DEVICE [PORT]: the kernel client attaches a host export.
nbd_attach() {
  nbd-client -t 30 -N "$1" "$VM_FORWARD_HOST" "${3:-10809}" "$2" || die "nbd-client could not attach export '$1' to $2"
}

nbd_detach() {
  nbd-client -d "$1" || die "nbd-client -d $1 failed"
}

device_size() {
  blockdev --getsize64 "$1"
}

# Prints the hex digest alone; an unreadable file prints nothing, which no host check accepts.
sha256_of() {
  vm_lib_sum=$(sha256sum "$1") || die "sha256sum cannot read $1"
  echo "${vm_lib_sum%% *}"
}

# nbd_attach_with EXPORT DEVICE PORT [nbd-client flags...]: nbd_attach with more flags,
# e.g. -L (ioctl mode instead of netlink). Keep nbd-client's default 512-byte block size
# for disks with a partition table: with -b 4096 the kernel reads the table's sector
# numbers as 4 KiB units and misplaces the partitions.
nbd_attach_with() {
  vm_lib_export=$1 vm_lib_dev=$2 vm_lib_port=$3
  shift 3
  nbd-client -t 30 "$@" -N "$vm_lib_export" "$VM_FORWARD_HOST" "$vm_lib_port" "$vm_lib_dev" ||
    die "nbd-client $* could not attach export '$vm_lib_export' to $vm_lib_dev"
}

# wait_for_dev PATH: polls (30 s at most: emulated, on a loaded host) for a device node the kernel creates
# asynchronously, e.g. a partition. A partition that has not come after 2 s is asked for again (BLKRRPART)
# every 2 s, and the report says so: a re-read that raced the client's start of the device (capacity still
# 0) finds no table and nothing scans it again until the device is opened. If it never comes, what the
# kernel sees is printed before giving up: whether the table's sectors arrived, or the scan did not happen.
wait_for_dev() {
  vm_lib_tries=0
  vm_lib_parent=$(echo "$1" | sed 's/p[0-9]*$//')
  [ "$vm_lib_parent" != "$1" ] || vm_lib_parent=""
  while [ ! -b "$1" ]; do
    vm_lib_tries=$((vm_lib_tries + 1))
    if [ -n "$vm_lib_parent" ] && [ -b "$vm_lib_parent" ] && [ $((vm_lib_tries % 20)) -eq 0 ]; then
      [ "$vm_lib_tries" -eq 20 ] && echo "VM-REPORT reread_partitions=$1 had not appeared after 2 s; asking the kernel to read $vm_lib_parent's table again"
      blockdev --rereadpt "$vm_lib_parent" 2>&1
    fi
    if [ "$vm_lib_tries" -gt 300 ]; then
      echo "----- /proc/partitions"
      cat /proc/partitions
      if [ -n "$vm_lib_parent" ] && [ -b "$vm_lib_parent" ]; then
        echo "----- the first two sectors of $vm_lib_parent (a GPT header says 'EFI PART' at 512)"
        dd if="$vm_lib_parent" bs=512 count=2 2>/dev/null | od -A d -c | head -40
      fi
      die "$1 did not appear"
    fi
    sleep 0.1
  done
}

# control METHOD PATH [PORT]: calls the server's control plane (HTTP/JSON) through the forward
# at $VM_FORWARD_HOST:PORT (80 unless given) and prints the body; a non-2xx status fails.
control() {
  if [ "$1" = POST ]; then
    wget -q -O - --post-data '' "http://$VM_FORWARD_HOST:${3:-80}$2"
  else
    wget -q -O - "http://$VM_FORWARD_HOST:${3:-80}$2"
  fi
}
