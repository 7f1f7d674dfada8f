#!/bin/bash
# Variant: a broken candidate whose first-boot initramfs cannot mount the root filesystem:
# its dracut initramfs is rebuilt with a sysroot.mount drop-in that adds a mount option
# ext4 rejects at once. Ignition fetches its config, then /sysroot fails to mount, the
# initramfs reaches emergency.target before switching root, and (as every first-boot
# emergency here) aviary-emergency reports the failed units and powers off.
# A harness must report that the boot stopped in the initramfs (root mount), not wait for SSH.
#   initramfs-emergency.sh ROOTDIR
set -euo pipefail
root=$1
die() { echo "initramfs-emergency.sh: $*" >&2; exit 1; }
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] && [ -f "${kernels[0]}" ] || die "expected one /boot/vmlinuz-*"
krel=${kernels[0]##*/vmlinuz-}
stage=/tmp/aviary-variant
install -d -m 0755 "$root$stage/sysroot.mount.d"
cat > "$root$stage/sysroot.mount.d/50-aviary-variant.conf" <<'UNIT'
# variant initramfs-emergency: ext4 refuses this option, so /sysroot never mounts.
[Mount]
Options=rw,aviary_variant_bad_option
UNIT
chroot "$root" dracut --quiet --force --include "$stage/sysroot.mount.d" /etc/systemd/system/sysroot.mount.d \
    --kver "$krel" "/boot/initrd.img-$krel"
chroot "$root" lsinitrd -f /etc/systemd/system/sysroot.mount.d/50-aviary-variant.conf "/boot/initrd.img-$krel" \
    | grep -q aviary_variant_bad_option || die "the rebuilt initramfs lacks the sysroot.mount drop-in"
rm -rf "${root:?}$stage"
