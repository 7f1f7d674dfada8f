#!/bin/bash
# Variant: a healthy candidate that only boots slower: a oneshot unit, enabled in
# multi-user.target and ordered before ssh.service (and after what ssh.service waits for),
# sleeps 25 s on every boot, so SSH answers about 20 s later than on the normal image (the rest of
# the boot overlaps the first seconds of the sleep: with 12 s it was only ~9 s later). Everything else passes.
# A harness must pass every test on it, and the boot-time budget must hold it.
#   slow-boot.sh ROOTDIR
set -euo pipefail
root=$1
cat > "$root/etc/systemd/system/aviary-variant-slow-boot.service" <<'UNIT'
# variant slow-boot: 25 s more before sshd starts, on every boot.
[Unit]
Description=Aviary variant slow-boot: sleep 25 s before sshd
# After what ssh.service itself waits for, so that the 25 s add to boot-to-SSH.
After=network.target aviary-sshd-keygen.service aviary-firstboot-complete.service
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sleep 25

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 "$root/etc/systemd/system/aviary-variant-slow-boot.service"
chroot "$root" systemctl enable aviary-variant-slow-boot.service
