#!/bin/bash
# Variant: a broken candidate whose docker daemon is masked (as when a packaging change drops
# or disables the runtime's units). The machine boots, updates and is marked good; every test
# that runs a container must fail, and the promotion gate must hold the release.
#   docker-masked.sh ROOTDIR
set -euo pipefail
root=$1
install -d -m 0755 "$root/etc/systemd/system"
for unit in docker.service docker.socket; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
