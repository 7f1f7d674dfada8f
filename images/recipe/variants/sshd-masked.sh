#!/bin/bash
# Variant: a broken candidate whose SSH daemon is masked (ssh.service and ssh.socket), as when
# a packaging change drops or disables it. The machine boots, is provisioned by Ignition and
# prints its login prompt, but nothing listens on port 22.
# A harness must report that the system booted (login prompt seen) but SSH never answered.
#   sshd-masked.sh ROOTDIR
set -euo pipefail
root=$1
chroot "$root" systemctl mask ssh.service ssh.socket
