#!/bin/bash
# Variant: a broken candidate on which Ignition runs on first boot and fails: the first-boot
# initramfs is rebuilt with a system base config (/usr/lib/ignition/base.d, merged into every
# user config) that writes a file the image already has, without overwrite, so Ignition's
# files stage fails ("A file exists there already and overwrite is false"). Ignition logs
# "Ignition failed: ..." at crit level (printed on the console), then aviary-emergency lists
# the failed unit and Ignition's errors and powers off; the first-boot flag stays.
# A harness must report that Ignition failed (with its error), not wait for SSH.
#   ignition-fails.sh ROOTDIR
set -euo pipefail
root=$1
die() { echo "ignition-fails.sh: $*" >&2; exit 1; }
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] && [ -f "${kernels[0]}" ] || die "expected one /boot/vmlinuz-*"
krel=${kernels[0]##*/vmlinuz-}
echo "variant ignition-fails: shipped in the image; Ignition's base config must not overwrite it" \
    > "$root/etc/aviary-variant-ignition-fails"
stage=/tmp/aviary-variant
install -d -m 0755 "$root$stage"
cat > "$root$stage/50-aviary-variant.ign" <<'IGN'
{"ignition": {"version": "3.3.0"},
 "storage": {"files": [{"path": "/etc/aviary-variant-ignition-fails", "mode": 420,
   "contents": {"source": "data:,written%20by%20Ignition%0A"}}]}}
IGN
chroot "$root" dracut --quiet --force --include "$stage/50-aviary-variant.ign" /usr/lib/ignition/base.d/50-aviary-variant.ign \
    --kver "$krel" "/boot/initrd.img-$krel"
chroot "$root" lsinitrd -f /usr/lib/ignition/base.d/50-aviary-variant.ign "/boot/initrd.img-$krel" \
    | grep -q aviary-variant-ignition-fails || die "the rebuilt initramfs lacks the Ignition base config"
rm -rf "${root:?}$stage"
