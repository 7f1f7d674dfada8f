#!/bin/bash
# Variant: a broken candidate on which Ignition never runs: the first-boot initramfs is
# rebuilt with Ignition's systemd generator disabled (a /dev/null link in
# /etc/systemd/system-generators), so ignition.firstboot on the kernel command line pulls in
# no ignition-* unit. The system boots normally to the login prompt, but is not provisioned:
# no `core` user, no authorized key, so SSH answers and refuses the run's key (and the
# first-boot flag stays: Ignition would "run" again, and again not).
# A harness must report that login was refused because provisioning never happened.
#   ignition-never-runs.sh ROOTDIR
set -euo pipefail
root=$1
die() { echo "ignition-never-runs.sh: $*" >&2; exit 1; }
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] && [ -f "${kernels[0]}" ] || die "expected one /boot/vmlinuz-*"
krel=${kernels[0]##*/vmlinuz-}
stage=/tmp/aviary-variant
install -d -m 0755 "$root$stage/system-generators"
ln -sfn /dev/null "$root$stage/system-generators/ignition-generator"
chroot "$root" dracut --quiet --force --include "$stage/system-generators" /etc/systemd/system-generators \
    --kver "$krel" "/boot/initrd.img-$krel"
listing=$(chroot "$root" lsinitrd "/boot/initrd.img-$krel")
grep -q 'etc/systemd/system-generators/ignition-generator -> /dev/null' <<< "$listing" \
    || die "the rebuilt initramfs does not disable ignition-generator: $(grep ignition-generator <<< "$listing")"
rm -rf "${root:?}$stage"
