#!/bin/bash
# Variant: a broken candidate whose real root reaches emergency mode: /etc/fstab gains a
# required mount (no nofail) that fails at once (a tmpfs with an invalid size=; no device to
# wait for), so local-fs.target fails and systemd isolates emergency.target ("You are in
# emergency mode"). The root account is locked, so nobody can log in there and sshd never
# starts. The first boot's initramfs and Ignition are unaffected.
# A harness must report emergency mode in the booted system, not wait for SSH.
#   rootfs-emergency.sh ROOTDIR
set -euo pipefail
root=$1
grep -q '^LABEL=STATE' "$root/etc/fstab" || { echo "rootfs-emergency.sh: unexpected /etc/fstab" >&2; exit 1; }
cat >> "$root/etc/fstab" <<'FSTAB'
# variant rootfs-emergency: a required mount that always fails (invalid tmpfs size=).
tmpfs             /srv/aviary-variant  tmpfs  size=aviary-variant-invalid  0  0
FSTAB
