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
