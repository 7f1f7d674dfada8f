#!/usr/bin/env bash
# Installs the Debian 12 packages Aviary needs on the host (idempotent; apt only when something
# is missing). Run as root. Used by scripts/bootstrap.sh and .ci/run.
set -euo pipefail

PACKAGES=(
  qemu-system-x86 qemu-utils          # VMs, overlays
  mmdebstrap fakeroot e2fsprogs gdisk # image builds without loop devices or mounts
  grub-pc-bin grub-common             # BIOS GRUB for the A/B images
  ignition                            # ignition-validate
  openssh-client                      # ssh-keygen for per-run keys
  libxml2-utils                       # xmllint: JUnit schema checks in tests
  chromium fonts-liberation           # headless Chromium loads report.html in tests (tests/html.rs);
                                      # fonts-liberation: readable text in its screenshots
  libssl-dev pkg-config               # ssh2's libssh2/openssl build
  zstd ca-certificates rauc squashfs-tools  # rauc bundle (update payloads)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# qemu-system 7.2 needs the matching qemu-utils; a backported qemu-utils blocks it.
if dpkg-query -W -f='${Version}\n' qemu-utils 2>/dev/null | grep -q bpo; then
  missing+=(qemu-utils)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all host packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
  exit 2
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
args=()
for p in "${missing[@]}"; do
  case "$p" in qemu-utils) args+=("qemu-utils/bookworm") ;; *) args+=("$p") ;; esac
done
apt-get install -y -q --allow-downgrades --no-install-recommends "${args[@]}" qemu-system-x86
