#!/bin/bash
# Aviary dracut module: closes the gaps of Debian's Ignition packaging.
#  - /etc/selinux/config (SELINUX=disabled) and a no-op setfiles: Debian's
#    Ignition build always relabels and fails without them.
#  - aviary-ignition-preset.service: Ignition's "enabled: true" only writes a
#    preset file, which systemd does not apply with an empty /etc/machine-id;
#    apply it to /sysroot right after the files stage.
#  - qemu_fw_cfg (Ignition's qemu platform reads opt/com.coreos/config).
#  - emergency.service: without it (dracut-systemd is left out) a failed
#    Ignition stage would not stop the boot; ours reports and powers off.

check() {
    return 0
}

depends() {
    # network-legacy first: dracut's "network" module (pulled in by ignition)
    # picks the first network handler already included, else falls back to
    # systemd-networkd, which would also pull dbus into the initrd and start
    # networkd there. network-legacy stays idle: its dracut hooks never run
    # (dracut-systemd is left out).
    # (This module sorts before 30ignition so this runs first.)
    echo network-legacy ignition
}

installkernel() {
    hostonly='' instmods qemu_fw_cfg virtio_rng virtio_pci virtio_blk virtio_net ext4
}

install() {
    inst_simple "$moddir/selinux-config" /etc/selinux/config
    inst_script "$moddir/setfiles" /usr/sbin/setfiles
    inst_multiple systemctl journalctl sed grep tail
    inst_script "$moddir/aviary-emergency.sh" /usr/libexec/aviary-emergency
    inst_simple "$moddir/emergency.service" "$systemdsystemunitdir/emergency.service"
    inst_script "$moddir/aviary-ignition-preset.sh" /usr/libexec/aviary-ignition-preset
    inst_simple "$moddir/aviary-ignition-preset.service" \
        "$systemdsystemunitdir/aviary-ignition-preset.service"
    mkdir -p "$initdir/$systemdsystemunitdir/ignition-complete.target.requires"
    ln_r "$systemdsystemunitdir/aviary-ignition-preset.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/aviary-ignition-preset.service"
}
