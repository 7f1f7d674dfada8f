#!/bin/bash
# Variant: a healthy candidate that only boots slower: a oneshot unit, enabled in
# multi-user.target and ordered before ssh.service (and after what ssh.service waits for),
# sleeps 12 s on every boot, so SSH answers about 12 s later than on the normal image.
# Everything else passes.
# A harness must pass it, and its boot timings must show the extra ~12 s (boot-time regression).
#   slow-boot.sh ROOTDIR
set -euo pipefail
root=$1
cat > "$root/etc/systemd/system/aviary-variant-slow-boot.service" <<'UNIT'
# variant slow-boot: 12 s more before sshd starts, on every boot.
[Unit]
Description=Aviary variant slow-boot: sleep 12 s before sshd
# After what ssh.service itself waits for, so that the 12 s add to boot-to-SSH in full.
After=network.target aviary-sshd-keygen.service aviary-firstboot-complete.service
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sleep 12

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 "$root/etc/systemd/system/aviary-variant-slow-boot.service"
chroot "$root" systemctl enable aviary-variant-slow-boot.service
