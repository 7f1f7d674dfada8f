#!/usr/bin/env bash
# Installs the Debian 12 packages Aviary needs on the host (idempotent; apt only when something
# is missing). Run as root. Used by scripts/bootstrap.sh and .ci/run.
set -euo pipefail

PACKAGES=(
  mmdebstrap fakeroot e2fsprogs gdisk # image builds without loop devices or mounts
  grub-pc-bin grub-common             # BIOS GRUB for the A/B images
  grub-efi-amd64-bin dosfstools mtools # UEFI GRUB on the images' ESP (FAT made without mounts)
  ovmf swtpm                          # UEFI firmware and a TPM per machine (firmware:, tpm:)
  ignition                            # ignition-validate
  openssh-client                      # ssh-keygen for per-run keys
  libxml2-utils                       # xmllint: JUnit schema checks in tests
  chromium fonts-liberation           # headless Chromium loads report.html in tests (tests/html.rs);
                                      # fonts-liberation: readable text in its screenshots
  libssl-dev pkg-config               # ssh2's libssh2/openssl build
  zstd ca-certificates rauc squashfs-tools  # rauc bundle (update payloads)
)

# QEMU comes from bookworm-backports (10.0), not bookworm (7.2): under TCG the same boot costs
# about a tenth less host CPU there (docs/benchmarks.md), and machines of this kind ship a
# backported qemu-utils already. Aviary itself also runs on 7.2.
BACKPORTS_LIST=/etc/apt/sources.list.d/aviary-bookworm-backports.list
# VMs and overlays: installed, or kept, only at their backported version.
QEMU_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data qemu-utils)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
old_qemu=()
for p in "${QEMU_PACKAGES[@]}"; do
  dpkg-query -W -f='${Version}\n' "$p" 2>/dev/null | grep -q bpo || old_qemu+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#old_qemu[@]} -eq 0 ]; then
  echo "install-deps: all host packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} ${old_qemu[*]}; run this script as root" >&2
  exit 2
fi
echo "install-deps: installing ${missing[*]} ${old_qemu[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! grep -rqsE "^[^#]*bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$BACKPORTS_LIST"
fi
apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
apt-get install -y -q --no-install-recommends -t bookworm-backports "${QEMU_PACKAGES[@]}"
