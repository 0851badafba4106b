#!/usr/bin/env bash
# Builds the test VM's boot files from Debian packages and prints the directory
# that holds them (vmlinux, initramfs.cpio, manifest.txt) as the last line of stdout.
#
# The result is cached under test/vm/.build/<key>/, where the key covers the
# kernel package version, the versions of every host package copied into the
# initramfs, and the contents of this script and of guest/. A second run with
# nothing changed only computes the key (about a second, mostly apt-cache).
#
# Why these choices (measured on the CI machines; see README.md):
# - apt-get download + dpkg-deb -x instead of installing linux-image-amd64,
#   whose hooks take over a minute;
# - an uncompressed ELF vmlinux booted directly (PVH) and an uncompressed cpio:
#   under TCG, decompressing the bzImage and a compressed initramfs costs
#   seconds on every boot.
set -euo pipefail
export LC_ALL=C
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_root=${VM_BUILD_DIR:-$here/.build}

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: ERROR: %s\n' "$*" >&2; exit 1; }

# Every host tool this script runs, with the Debian package that provides it.
require_tools() {
  local missing=() pair tool package
  for pair in apt-get:apt apt-cache:apt dpkg-deb:dpkg dpkg-query:dpkg depmod:kmod modprobe:kmod \
    cpio:cpio xz:xz-utils ldd:libc-bin flock:util-linux sha256sum:coreutils \
    busybox:busybox-static nbd-client:nbd-client mke2fs:e2fsprogs e2fsck:e2fsprogs \
    mkfs.xfs:xfsprogs xfs_io:xfsprogs sfdisk:fdisk fstrim:util-linux dmsetup:dmsetup; do
    tool=${pair%%:*} package=${pair#*:}
    command -v "$tool" >/dev/null 2>&1 || missing+=("$package (for $tool)")
  done
  if ((${#missing[@]})); then
    die "missing host tools; install with apt-get install -y --no-install-recommends: ${missing[*]}"
  fi
  # A dynamically linked busybox (package "busybox") would need its libraries in the guest.
  if ldd "$(command -v busybox)" >/dev/null 2>&1; then
    die "$(command -v busybox) is dynamically linked; install busybox-static"
  fi
}

# Binaries the guest scenarios need beyond busybox. Optional ones are copied when the host has them.
REQUIRED_BINARIES=(nbd-client mke2fs e2fsck mkfs.xfs xfs_io sfdisk fstrim dmsetup)
OPTIONAL_BINARIES=(rsync xfs_repair blkdiscard wipefs blockdev dumpe2fs tune2fs)
# Debian packages whose versions decide what lands in the initramfs.
CONTENT_PACKAGES=(busybox-static nbd-client e2fsprogs xfsprogs fdisk util-linux libc6 rsync dmsetup)
# Kernel modules, in the order the guest wants them; dependencies come from modprobe.
# dm_mod: the crash-mid-copy scenario keeps the old ext4 mounted on a dm-linear device whose table is
# re-pointed at a fresh nbd connection after the server restarts (see scenarios/relayout.sh).
MODULES=(qemu_fw_cfg virtio_pci virtio_net nbd crc32c_generic ext4 xfs dm_mod)

package_versions() {
  local p
  for p in "${CONTENT_PACKAGES[@]}"; do
    printf '%s=%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo absent)"
  done
}

# Prints "<package> <version>" of the kernel behind linux-image-amd64 (or $VM_KERNEL_PACKAGE).
resolve_kernel_package() {
  local meta=${VM_KERNEL_PACKAGE:-linux-image-amd64} found
  # One apt-cache call (each costs most of a second): the meta package pins its kernel with "(= version)".
  found=$(apt-cache show --no-all-versions "$meta" 2>/dev/null | awk '
    $1 == "Version:" && !version { version = $2 }
    $1 == "Depends:" && !depends { depends = $0 }
    END {
      if (match(depends, /linux-image-[0-9][^ ,]* \(= [^)]+\)/)) {
        split(substr(depends, RSTART, RLENGTH), part, /[ ()=]+/)
        print part[1], part[2]
      } else if (version) print "'"$meta"'", version
    }')
  [[ -n $found ]] || die "apt-cache knows no package $meta (run apt-get update?)"
  printf '%s\n' "$found"
}

fetch_kernel_deb() {
  local pkg=$1 version=$2 debs=$build_root/debs
  mkdir -p "$debs"
  local file=$debs/${pkg}_${version//:/%3a}_amd64.deb
  if [[ ! -s $file ]]; then
    log "downloading $pkg $version"
    # apt drops privileges to _apt, which cannot write into most work trees: download in a temp dir it can use.
    local tmp
    tmp=$(mktemp -d)
    chmod 0777 "$tmp"
    (cd "$tmp" && apt-get download -q "$pkg=$version" >&2) || die "apt-get download $pkg=$version failed"
    mv "$tmp"/*.deb "$file"
    rm -rf "$tmp"
  fi
  find "$debs" -maxdepth 1 -name '*.deb' ! -path "$file" -delete
  printf '%s\n' "$file"
}

# The bzImage carries the kernel as an xz stream; its payload is an ELF vmlinux with a PVH entry note.
extract_vmlinux() {
  local vmlinuz=$1 out=$2 offset
  offset=$(grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
  [[ -n $offset ]] || die "no xz stream in $vmlinuz (kernel no longer xz-compressed?)"
  # xz stops after the first stream, so tail may die of SIGPIPE: only xz's status counts.
  xz -dc --single-stream <(tail -c "+$((offset + 1))" "$vmlinuz") >"$out" || die "xz could not unpack the kernel in $vmlinuz"
  [[ $(head -c4 "$out" | od -An -c | tr -d ' ') == '177ELF' ]] || die "the unpacked kernel is not an ELF file"
}

# Copies a host binary and every library ldd lists into the initramfs tree, keeping library paths.
copy_with_libraries() {
  local binary=$1 root=$2 dest_dir=$3 lib
  install -D -m0755 "$binary" "$root$dest_dir/$(basename "$binary")"
  while read -r lib; do
    [[ -e $root$lib ]] || install -D -m0755 "$(readlink -f "$lib")" "$root$lib"
  done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# Writes one line per module file in load order: "<file> <required|optional> [params]".
collect_modules() {
  local kroot=$1 kver=$2 root=$3 list=$4 module path name params kind
  local -A seen=()
  : >"$list"
  for module in "${MODULES[@]}"; do
    # -C /dev/null: the host's /etc/modprobe.d must not leak options into the guest.
    while read -r verb path _; do
      [[ $verb == insmod ]] || continue
      name=$(basename "$path")
      [[ -z ${seen[$name]:-} ]] || continue
      seen[$name]=1
      install -D -m0644 "$path" "$root/lib/modules/$name"
      params='' kind=required
      case $name in
        nbd.ko) params='nbds_max=4 max_part=15' ;;
        # Needs SSE4.2; crc32c_generic covers a CPU without it.
        crc32c-intel.ko) kind=optional ;;
      esac
      printf '%s %s %s\n' "$name" "$kind" "$params" >>"$list"
    done < <(modprobe -C /dev/null -d "$kroot" -S "$kver" --show-depends "$module" || die "modprobe cannot resolve module $module")
  done
}

build_initramfs_tree() {
  local kroot=$1 kver=$2 root=$3 dir tool path applet
  for dir in bin sbin usr/bin usr/sbin usr/local/sbin lib/modules etc dev proc sys run tmp mnt vm; do
    mkdir -p "$root/$dir"
  done
  install -m0755 "$(command -v busybox)" "$root/bin/busybox"
  while read -r applet; do
    [[ -e $root/$applet || -L $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
  done < <(busybox --list-full)

  for tool in "${REQUIRED_BINARIES[@]}"; do
    path=$(command -v "$tool") || die "$tool not found on the host"
    copy_with_libraries "$path" "$root" /usr/local/sbin
  done
  for tool in "${OPTIONAL_BINARIES[@]}"; do
    if path=$(command -v "$tool"); then copy_with_libraries "$path" "$root" /usr/local/sbin; fi
  done
  # mke2fs picks its defaults from the name it is called by.
  for tool in mkfs.ext4 mkfs.ext3 mkfs.ext2; do ln -sf mke2fs "$root/usr/local/sbin/$tool"; done
  ln -sf e2fsck "$root/usr/local/sbin/fsck.ext4"
  [[ -f /etc/mke2fs.conf ]] && install -m0644 /etc/mke2fs.conf "$root/etc/mke2fs.conf"
  printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"

  collect_modules "$kroot" "$kver" "$root" "$root/etc/vm-modules"
  install -m0755 "$here/guest/init" "$root/init"
  install -m0644 "$here/guest/vm-lib.sh" "$root/etc/vm-lib.sh"
  # The kernel opens /dev/console for init before /init can mount devtmpfs.
  mknod -m0600 "$root/dev/console" c 5 1 2>/dev/null || true
}

main() {
  require_tools
  mkdir -p "$build_root"
  exec 9>"$build_root/.lock"
  # Parallel test files build once: the others wait here and then find the cache.
  flock 9
  # Left behind by a build that was killed (the test's build timeout sends SIGKILL).
  rm -rf "$build_root"/work.*

  local kernel_pkg kernel_version key
  read -r kernel_pkg kernel_version < <(resolve_kernel_package)
  key=$({
    printf 'kernel=%s=%s\n' "$kernel_pkg" "$kernel_version"
    package_versions
    cat "$here/build-image.sh" "$here/guest/init" "$here/guest/vm-lib.sh"
  } | sha256sum | cut -c1-16)
  local out=$build_root/image-$key
  if [[ -f $out/complete ]]; then
    printf '%s\n' "$out"
    return
  fi

  local started=$SECONDS deb
  deb=$(fetch_kernel_deb "$kernel_pkg" "$kernel_version")
  # Global on purpose: the EXIT trap runs after main has returned.
  work=$(mktemp -d "$build_root/work.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "unpacking $(basename "$deb")"
  dpkg-deb -x "$deb" "$work/kernel"
  local kver
  kver=$(basename "$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
  [[ -n $kver ]] || die "$deb holds no modules directory"
  depmod -b "$work/kernel" "$kver"

  mkdir -p "$work/out"
  extract_vmlinux "$work/kernel/boot/vmlinuz-$kver" "$work/out/vmlinux"
  build_initramfs_tree "$work/kernel" "$kver" "$work/root"
  # Uncompressed on purpose (see the top of this file); sorted so equal inputs give equal bytes.
  (cd "$work/root" && find . -mindepth 1 -print0 | sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$work/out/initramfs.cpio"
  {
    printf 'kernel %s %s (%s)\n' "$kernel_pkg" "$kernel_version" "$kver"
    package_versions
    printf 'modules:\n'
    cat "$work/root/etc/vm-modules"
  } >"$work/out/manifest.txt"

  rm -rf "$out"
  mv "$work/out" "$out"
  touch "$out/complete"
  # Older images are dead weight once their key is gone.
  find "$build_root" -mindepth 1 -maxdepth 1 -type d -name 'image-*' ! -path "$out" -exec rm -rf {} +
  log "built $out in $((SECONDS - started)) s ($(du -sh "$out" | cut -f1))"
  printf '%s\n' "$out"
}

main "$@"
