#!/bin/bash
# Variant: a broken candidate whose init exits at once, so the kernel panics on every boot
# ("Kernel panic - not syncing: Attempted to kill init!"), as when PID 1's binary is broken.
# systemd is replaced by a script that exits 1, both in the first-boot dracut initramfs
# (rebuilt: its /init is systemd, so it dies before Ignition writes anything and every
# first boot panics the same way) and in the root (the fast initramfs of later boots, and
# the slot B of an update, exec it). panic=1 resets the guest, which ends QEMU
# (-no-reboot); slot A is the only good slot, so every start panics again (every other
# start GRUB prints "no bootable slot" and resets the TRY flags).
# A harness must report a kernel panic before userspace, not wait for SSH.
#   panic-loop.sh ROOTDIR
set -euo pipefail
root=$1
die() { echo "panic-loop.sh: $*" >&2; exit 1; }
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] && [ -f "${kernels[0]}" ] || die "expected one /boot/vmlinuz-*"
krel=${kernels[0]##*/vmlinuz-}
systemd=/usr/lib/systemd/systemd
[ -f "$root$systemd" ] && [ ! -L "$root$systemd" ] || die "no $systemd"
[ "$(readlink "$root/sbin/init")" = /lib/systemd/systemd ] || die "/sbin/init is not systemd"
stage=/tmp/aviary-variant
install -d -m 0755 "$root$stage/systemd"
cat > "$root$stage/systemd/systemd" <<'INIT'
#!/bin/sh
echo "<2>aviary-variant panic-loop: init exits at once (broken on purpose)" > /dev/kmsg
exit 1
INIT
chmod 0755 "$root$stage/systemd/systemd"
# The first-boot initramfs, with the broken systemd copied over the real one (a directory
# --include is copied with cp -f, after dracut's modules installed the real systemd).
chroot "$root" dracut --quiet --force --include "$stage/systemd" /usr/lib/systemd \
    --kver "$krel" "/boot/initrd.img-$krel"
chroot "$root" lsinitrd -f "$systemd" "/boot/initrd.img-$krel" | grep -q 'aviary-variant panic-loop' \
    || die "the rebuilt initramfs still has the real systemd"
# The root's systemd (the fast initramfs execs /sbin/init -> /lib/systemd/systemd).
install -m 0755 "$root$stage/systemd/systemd" "$root$systemd"
rm -rf "${root:?}$stage"
