#!/usr/bin/env bash
# Boots an image built by oci2ext4 as the root disk of a QEMU VM: the guest kernel mounts it
# read-write and runs tests/vm/guest-check.sh, the image's own binaries doing the work. Then
# e2fsck checks what the guest left behind.
#
# Usage: tests/vm/boot.sh ROOTFS.tar KERNEL [OUT_DIR]
#   ROOTFS.tar  a root filesystem tar (e.g. from debootstrap: tar --xattrs -C rootfs -cf r.tar .)
#   KERNEL      a kernel with NVMe, ext4 and the 8250 serial console built in (Debian's cloud
#               kernel is one: apt-get download linux-image-cloud-amd64; dpkg-deb -x ...)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rootfs=$1
kernel=$2
out=${3:-$(mktemp -d)}
bin=${OCI2EXT4:-$here/../../target/release/oci2ext4}

# The check script goes in as a layer of its own, on top of the distribution.
layer="$out/check-layer"
mkdir -p "$layer"
install -m 0755 "$here/guest-check.sh" "$layer/oci2ext4-check"
tar -C "$layer" --owner=0 --group=0 -cf "$out/check.tar" oci2ext4-check

# Each block size the tool writes gets its own boot: 1 KiB images (block 0 outside every
# group) as well as 4 KiB ones. The 4 KiB image is built with default options, as users build
# them; the others with 512 MiB of headroom.
for bs in ${OCI2EXT4_VM_BLOCK_SIZES:-1024 4096}; do
    echo "== $bs-byte blocks"
    image="$out/vm-$bs.ext4"
    opts=(--block-size "$bs" --headroom 512M)
    [ "$bs" = 4096 ] && opts=()
    "$bin" build --layer "$rootfs" --layer "$out/check.tar" -o "$image" "${opts[@]}" --quiet
    e2fsck -fn "$image" >/dev/null

    log="$out/console-$bs.log"
    timeout 600 qemu-system-x86_64 -machine q35 -m 1024 -smp 2 -nographic -no-reboot \
        -kernel "$kernel" \
        -append "root=/dev/nvme0n1 rw rootfstype=ext4 console=ttyS0 init=/oci2ext4-check panic=-1" \
        -drive "file=$image,if=none,id=root,format=raw" -device nvme,drive=root,serial=oci2ext4 \
        >"$log" 2>&1 || true
    grep 'OCI2EXT4:' "$log" || true
    if ! grep -q 'OCI2EXT4: OK' "$log"; then
        echo "the guest did not finish its checks; console log: $log" >&2
        tail -40 "$log" >&2
        exit 1
    fi
    if grep -qE 'EXT4-fs (error|warning)' "$log"; then
        grep -E 'EXT4-fs' "$log" >&2
        echo "the guest kernel complained about the filesystem" >&2
        exit 1
    fi
    # The guest unmounted cleanly: no journal to replay, nothing for e2fsck to find.
    e2fsck -fn "$image" | tee "$out/e2fsck-$bs.log"
    if grep -qE 'recovery|wrong|Fix\?' "$out/e2fsck-$bs.log"; then
        echo "e2fsck found something after the guest's session" >&2
        exit 1
    fi
    echo "boot test passed: $image"
done
