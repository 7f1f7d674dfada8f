#!/bin/bash
# Customizes the root filesystem tree: called by build.sh as an mmdebstrap
# --customize-hook (mmdebstrap has /proc, /sys and /dev set up in the chroot).
#
#   customize.sh ROOTDIR RECIPEDIR KERNEL_PACKAGE CHANNEL VERSION OUTFILE [VARIANT_SCRIPT]
#
# Writes KERNEL_RELEASE=... and KERNEL_VERSION=... to OUTFILE. VARIANT_SCRIPT
# (build.sh --variant; empty for none) runs last on ROOTDIR, before the image
# manifest is written, and its name goes into os-release as AVIARY_VARIANT.
set -euo pipefail

die() { echo "customize.sh: error: $*" >&2; exit 1; }
log() { echo "customize.sh: $*" >&2; }

[ "$#" -eq 6 ] || [ "$#" -eq 7 ] \
    || die "usage: customize.sh ROOTDIR RECIPEDIR KERNEL_PACKAGE CHANNEL VERSION OUTFILE [VARIANT_SCRIPT]"
root=$1 recipe=$2 kpkg=$3 channel=$4 version=$5 outfile=$6 variant_script=${7:-}
[ -d "$root/etc" ] || die "$root does not look like a root filesystem"
in_root() { chroot "$root" "$@"; }

# --- kernel facts -----------------------------------------------------------
kver=$(in_root dpkg-query -W -f='${Version}' "$kpkg") \
    || die "kernel package $kpkg is not installed"
mapfile -t kernels < <(in_root dpkg-query -L "$kpkg" | sed -n 's#^/boot/vmlinuz-##p')
[ "${#kernels[@]}" -eq 1 ] || die "expected one /boot/vmlinuz-* in $kpkg, found ${#kernels[@]}"
krel=${kernels[0]}
[ -d "$root/usr/lib/modules/$krel" ] || die "no /usr/lib/modules/$krel in the image"
log "kernel $kpkg: release $krel, version $kver"

# --- overlay tree -----------------------------------------------------------
log "copying the overlay tree rootfs/"
# Owned by root, no group/other write bits whatever the checkout's umask;
# existing directories keep their metadata.
tar -C "$recipe/rootfs" --owner=0 --group=0 --numeric-owner --mode=go-w -cf - . \
    | tar -C "$root" --no-overwrite-dir -xpf -
chmod 0440 "$root/etc/sudoers.d/core"
install -d -m 0755 "$root/boot/grub" "$root/state"

# --- identity ---------------------------------------------------------------
cat > "$root/usr/lib/os-release" <<EOF
NAME="Aviary Reference Linux"
ID=aviary
ID_LIKE=debian
VERSION_ID=$version
VERSION=$version
VERSION_CODENAME=bookworm
PRETTY_NAME="Aviary Reference Linux $version ($channel)"
AVIARY_CHANNEL=$channel
AVIARY_KERNEL=$krel
AVIARY_KERNEL_PACKAGE=$kpkg
AVIARY_KERNEL_VERSION=$kver
EOF
if [ -n "$variant_script" ]; then
    v=${variant_script##*/}
    echo "AVIARY_VARIANT=${v%.sh}" >> "$root/usr/lib/os-release"
fi
ln -sfn ../usr/lib/os-release "$root/etc/os-release"

# Unique per VM: empty machine-id (generated at boot), no host keys (generated
# on first boot), no hostname (Ignition may write /etc/hostname; it refuses to
# overwrite an existing file).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname" "$root"/etc/ssh/ssh_host_*
# No password logins: root stays locked.
in_root usermod -p '*' root

# --- units ------------------------------------------------------------------
# mark-good.service is started by mark-good-trigger.service once the boot has
# finished (its health checks wait for that); rauc.service by D-Bus activation.
in_root systemctl enable systemd-networkd.service aviary-firstboot-complete.service mark-good-trigger.service
# Not needed in a test VM, and slow under TCG.
in_root systemctl mask \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    getty@tty1.service systemd-firstboot.service systemd-pstore.service \
    systemd-networkd-wait-online.service \
    modprobe@drm.service modprobe@dm_mod.service modprobe@loop.service \
    sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
    dracut-shutdown.service dracut-shutdown-onfailure.service \
    modprobe@configfs.service sys-kernel-config.mount \
    modprobe@fuse.service sys-fs-fuse-connections.mount \
    systemd-network-generator.service

# Container runtimes as on Flatcar: docker.socket starts dockerd (and with it
# containerd) on first use; a machine that wants them at boot enables
# docker.service or containerd.service (Ignition units). etcd is configured by
# whoever runs a cluster; Debian's package would start a lone member at boot.
in_root systemctl disable docker.service containerd.service etcd.service
in_root systemctl enable docker.socket
# AppArmor stays enabled in the kernel, and dockerd loads its docker-default profile
# itself; the profiles Debian ships for other programs (dhclient, lsb_release, …) are
# not used here and compiling them took 8-24 s of every boot under TCG.
in_root systemctl mask apparmor.service
# Mount points for the STATE bind mounts (fstab).
# (etcd-server made /var/lib/etcd, owned by etcd; `install -d` would make it root's.)
install -d -m 0755 "$root/var/lib/docker" "$root/var/lib/containerd"
[ -d "$root/var/lib/etcd" ] || die "etcd-server made no /var/lib/etcd"
# CNI plugins where runtimes look for them (Debian installs them in /usr/lib/cni).
install -d -m 0755 "$root/opt/cni" "$root/etc/cni/net.d"
ln -sfn /usr/lib/cni "$root/opt/cni/bin"

# Generators for features the image does not use (each costs time under TCG
# when systemd starts in the real root); a /dev/null link disables one.
install -d -m 0755 "$root/etc/systemd/system-generators"
for gen in systemd-cryptsetup-generator systemd-integritysetup-generator \
    systemd-veritysetup-generator systemd-hibernate-resume-generator \
    systemd-gpt-auto-generator systemd-rc-local-generator \
    systemd-system-update-generator systemd-sysv-generator; do
    ln -sfn /dev/null "$root/etc/systemd/system-generators/$gen"
done

# --- initramfs --------------------------------------------------------------
# build.sh disabled Debian's automatic dracut run (a 38 MB generic initrd)
# while packages were installed; restore the hook and build ours once.
if in_root dpkg-divert --list /etc/kernel/postinst.d/dracut | grep -q aviary; then
    rm -f "$root/etc/kernel/postinst.d/dracut"
    in_root dpkg-divert --quiet --local --rename --remove /etc/kernel/postinst.d/dracut
fi
log "building the initramfs with dracut"
rm -f "$root"/boot/initrd.img-* "$root"/boot/initrd-fast.img-*
in_root dracut --quiet --force --kver "$krel" "/boot/initrd.img-$krel"
[ -s "$root/boot/initrd.img-$krel" ] || die "dracut produced no initrd"
in_root lsinitrd "/boot/initrd.img-$krel" > /dev/null || die "dracut produced an unreadable initrd"
# The small initramfs GRUB uses on boots without Ignition.
in_root /usr/libexec/aviary/mkinitrd-fast "$krel" >&2
ln -sfn "boot/vmlinuz-$krel" "$root/vmlinuz"
ln -sfn "boot/initrd.img-$krel" "$root/initrd.img"
ln -sfn "boot/initrd-fast.img-$krel" "$root/initrd-fast.img"
rm -f "$root/vmlinuz.old" "$root/initrd.img.old"

# --- variant: a deliberately broken candidate -----------------------------------
if [ -n "$variant_script" ]; then
    log "variant: running ${variant_script##*/}"
    bash "$variant_script" "$root" || die "variant script $variant_script failed"
fi

# --- image manifest of /etc directories a machine adds to ---------------------
# aviary-update-agent copies into the new slot what a machine added or changed
# there (Ignition's files and units), not the image's own files: it compares
# with this list (path, TAB, "f SHA256" or "l TARGET").
manifest=/usr/lib/aviary/image-etc.manifest
(
    cd "$root"
    find etc/aviary etc/sudoers.d etc/systemd/system etc/systemd/network -mindepth 1 \( -type f -o -type l \) -print0 \
        | LC_ALL=C sort -z | while IFS= read -r -d '' p; do
            if [ -L "$p" ]; then
                printf '/%s\tl %s\n' "$p" "$(readlink "$p")"
            else
                printf '/%s\tf %s\n' "$p" "$(sha256sum < "$p" | cut -d' ' -f1)"
            fi
        done
) > "$root$manifest"
log "image manifest: $(wc -l < "$root$manifest") files under /etc/{aviary,sudoers.d,systemd/system,systemd/network}"

# --- clean up ---------------------------------------------------------------
# What a slot holds, every update downloads and writes (under TCG about 30 ms a MiB):
# apt's package lists (51 MB; the image installs nothing, as Flatcar has no package
# manager), docker.io's libnetwork debugging tools dnet and ovrouter (28 MB), and
# containerd's v1 shims (18 MB: dockerd and ctr use containerd-shim-runc-v2).
rm -rf "$root"/var/lib/apt/lists/*
for f in usr/bin/dnet usr/sbin/ovrouter usr/bin/containerd-shim usr/bin/containerd-shim-runc-v1; do
    [ -e "$root/$f" ] || die "expected /$f to remove (package contents changed?)"
    rm -f "$root/$f"
done
[ -x "$root/usr/bin/containerd-shim-runc-v2" ] || die "no /usr/bin/containerd-shim-runc-v2"
# (build.sh has already synced the .debs out to its cache.)
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/tmp/* "$root"/var/tmp/*
# /etc and /var are up to date with /usr: skip ldconfig, hwdb and catalog
# updates on first boot (ConditionNeedsUpdate=).
touch "$root/usr"
touch "$root/etc/.updated" "$root/var/.updated"

printf 'KERNEL_RELEASE=%s\nKERNEL_VERSION=%s\n' "$krel" "$kver" > "$outfile"
