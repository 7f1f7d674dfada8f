#!/bin/bash
# Variant: a candidate provisioned by cloud-init, as Debian's and Ubuntu's cloud images are,
# not by Ignition. cloud-init (Debian's package) reads a NoCloud seed (a disk labelled CIDATA
# with user-data and meta-data, which Aviary attaches); its default user is `core`, who gets
# the meta-data's public keys and passwordless sudo. Ignition's generator is disabled in the
# first-boot initramfs, so only cloud-init provisions. Profile: aviary-rauc-cloud-init.
#   cloud-init.sh ROOTDIR
set -euo pipefail
root=$1
die() { echo "cloud-init.sh: $*" >&2; exit 1; }
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] && [ -f "${kernels[0]}" ] || die "expected one /boot/vmlinuz-*"
krel=${kernels[0]##*/vmlinuz-}

DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends \
    cloud-init > /dev/null || die "apt-get install cloud-init failed"
install -d -m 0755 "$root/etc/cloud/cloud.cfg.d"
cat > "$root/etc/cloud/cloud.cfg.d/90-aviary.cfg" <<'CFG'
# Aviary: only the NoCloud seed Aviary attaches (never a network metadata service: the guest
# is sealed), and `core` as the default user, as on Flatcar.
datasource_list: [ NoCloud, None ]
system_info:
  default_user:
    name: core
    lock_passwd: true
    gecos: Core
    groups: [sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
CFG

stage=/tmp/aviary-variant
install -d -m 0755 "$root$stage/system-generators"
ln -sfn /dev/null "$root$stage/system-generators/ignition-generator"
chroot "$root" dracut --quiet --force --include "$stage/system-generators" /etc/systemd/system-generators \
    --kver "$krel" "/boot/initrd.img-$krel"
listing=$(chroot "$root" lsinitrd "/boot/initrd.img-$krel")
grep -q 'ignition-generator -> /dev/null' <<< "$listing" \
    || die "the rebuilt initramfs does not disable ignition-generator"
rm -rf "${root:?}$stage"
chroot "$root" cloud-init --version >&2
