#!/bin/bash
# Variant: a healthy candidate that only boots slower: a oneshot unit, enabled in
# multi-user.target and ordered before ssh.service (and after what ssh.service waits for),
# waits on every boot as long as the boot has taken so far (the guest's uptime), so SSH answers
# about twice as late after the kernel. The regression scales with the machine, as a boot that does
# more work would: a fixed 25-s sleep was +90 % on this host at 27 s to SSH but only +21 % when
# the host ran 2.5x slower (65-72 s to SSH, 2026-12-07), inside a +25 % budget. Everything else passes.
# A harness must pass every test on it, and the boot-time budget must hold it.
#   slow-boot.sh ROOTDIR
set -euo pipefail
root=$1
cat > "$root/etc/systemd/system/aviary-variant-slow-boot.service" <<'UNIT'
# variant slow-boot: before sshd starts, wait as long as the boot took so far, on every boot.
[Unit]
Description=Aviary variant slow-boot: wait as long as the boot took before sshd
# After what ssh.service itself waits for, so that the wait adds to boot-to-SSH.
After=network.target aviary-sshd-keygen.service aviary-firstboot-complete.service
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'read up idle < /proc/uptime; exec sleep "$${up%%.*}"'

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 "$root/etc/systemd/system/aviary-variant-slow-boot.service"
chroot "$root" systemctl enable aviary-variant-slow-boot.service
