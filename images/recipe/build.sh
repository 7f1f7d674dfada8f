#!/bin/bash
# Builds an Aviary reference candidate disk image from Debian bookworm packages.
#
#   build.sh --channel CHANNEL --version VERSION --kernel-package PKG --out DIR [--variant NAME]
#
# Writes DIR/disk.qcow2, DIR/payload.raucb (the signed RAUC update bundle of
# the root filesystem) and DIR/image.json. Needs root (mmdebstrap in root
# mode, so that files keep their owners); uses no loop devices and mounts no
# filesystem image: mmdebstrap into a directory, mke2fs -d per filesystem
# straight into a plain disk file, sgdisk, grub-mkimage and dd for the boot
# sectors, then qemu-img convert. See images/README.md.
set -euo pipefail

PROG=build.sh
RECIPE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '%s: [%3ss] %s\n' "$PROG" "$SECONDS" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() {
    cat >&2 <<'EOF'
usage: build.sh --channel CHANNEL --version VERSION --kernel-package PKG --out DIR [--variant NAME]

  --channel CHANNEL       release channel, e.g. stable (lower-case, digits, '-')
  --version VERSION       image version, e.g. 1000.0.0
  --kernel-package PKG    Debian kernel package, e.g. linux-image-6.1.0-47-cloud-amd64
  --out DIR               output directory: DIR/disk.qcow2, DIR/payload.raucb, DIR/image.json
  --variant NAME          a deliberately broken candidate: variants/NAME.sh runs on the root
                          tree after customize.sh's own changes (it gets the tree as \$1)

environment:
  AVIARY_APT_CACHE        .deb cache shared between builds (default /var/cache/aviary/apt;
                          empty string disables it)
  AVIARY_MIRROR           Debian mirror (default http://deb.debian.org/debian)
  AVIARY_SECURITY_MIRROR  security mirror (default http://deb.debian.org/debian-security)
  AVIARY_KEY_DIR          RAUC test signing keys, made on first use (default
                          /var/cache/aviary/keys; never in git)
  AVIARY_KEEP_WORK=1      keep the work directory (for debugging)
EOF
}

# --- arguments ----------------------------------------------------------------
channel= version= kpkg= out= variant=
while [ "$#" -gt 0 ]; do
    case "$1" in
        --channel|--version|--kernel-package|--out|--variant)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            case "$1" in
                --channel) channel=$2 ;;
                --version) version=$2 ;;
                --kernel-package) kpkg=$2 ;;
                --out) out=$2 ;;
                --variant) variant=$2 ;;
            esac
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage; die "unknown argument: $1" ;;
    esac
done
[ -n "$channel" ] || { usage; die "--channel is required"; }
[ -n "$version" ] || { usage; die "--version is required"; }
[ -n "$kpkg" ] || { usage; die "--kernel-package is required"; }
[ -n "$out" ] || { usage; die "--out is required"; }
[[ $channel =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "bad --channel '$channel' (want [a-z0-9-]+)"
[[ $version =~ ^[0-9A-Za-z][0-9A-Za-z._~+-]*$ ]] || die "bad --version '$version' (want e.g. 1000.0.0)"
[[ $kpkg =~ ^linux-image-[0-9a-z][0-9a-z.+-]*$ ]] || die "bad --kernel-package '$kpkg' (want linux-image-...)"
if [ -n "$variant" ]; then
    [[ $variant =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "bad --variant '$variant' (want [a-z0-9-]+)"
fi

# --- environment checks -------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root keeps file owners for mke2fs -d)"
for tool in mmdebstrap sgdisk mke2fs e2fsck grub-mkimage grub-editenv \
    qemu-img dd truncate tar openssl rauc mksquashfs flock sha256sum mkfs.fat mmd mcopy; do
    command -v "$tool" > /dev/null || die "missing tool: $tool"
done
MERGED_USR_HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
[ -d "$MERGED_USR_HOOKS" ] || die "missing $MERGED_USR_HOOKS (mmdebstrap too old?)"
GRUB_DIR=/usr/lib/grub/i386-pc
[ -f "$GRUB_DIR/boot.img" ] || die "missing $GRUB_DIR/boot.img (install grub-pc-bin)"
GRUB_EFI_DIR=/usr/lib/grub/x86_64-efi
[ -f "$GRUB_EFI_DIR/linux.mod" ] || die "missing $GRUB_EFI_DIR (install grub-efi-amd64-bin)"
for f in packages.txt kernel-args.txt grub.cfg.in customize.sh rootfs; do
    [ -e "$RECIPE/$f" ] || die "recipe file missing: $RECIPE/$f"
done
VARIANT_SCRIPT=
if [ -n "$variant" ]; then
    VARIANT_SCRIPT=$RECIPE/variants/$variant.sh
    [ -f "$VARIANT_SCRIPT" ] || die "unknown --variant '$variant': no $VARIANT_SCRIPT (have: $(cd "$RECIPE/variants" 2> /dev/null && ls -- *.sh 2> /dev/null | sed 's/\.sh$//' | tr '\n' ' '))"
fi

APT_CACHE=${AVIARY_APT_CACHE-/var/cache/aviary/apt}
[[ $APT_CACHE != *[[:space:]]* ]] || die "AVIARY_APT_CACHE must not contain spaces"
MIRROR=${AVIARY_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${AVIARY_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KEY_DIR=${AVIARY_KEY_DIR:-/var/cache/aviary/keys}
# RAUC: the image's compatible string (rootfs/etc/rauc/system.conf); the
# payload's image goes to slot class "rootfs" (slot.rootfs.0 / slot.rootfs.1).
RAUC_COMPATIBLE=$(sed -n 's/^compatible=//p' "$RECIPE/rootfs/etc/rauc/system.conf")
[ "$RAUC_COMPATIBLE" = aviary-reference ] || die "rootfs/etc/rauc/system.conf: compatible is '$RAUC_COMPATIBLE'"

# --- disk layout (512-byte sectors, 1 MiB aligned) -----------------------------
MiB=2048   # sectors
# The ESP comes last so the BIOS layout keeps its numbers (GRUB's prefix is (hd0,gpt2)).
P_NAME=(""  BIOS-BOOT BOOT    ROOT-A  ROOT-B  STATE  ESP)
P_SIZE=(0   2         64      1800    1800    1024   16)  # MiB
P_TYPE=(""  EF02      8300    8300    8300    8300   EF00)
P_FS=(""    none      ext2    ext4    none    ext4   vfat)
declare -a P_FIRST P_LAST
lba=$MiB
for i in 1 2 3 4 5 6; do
    P_FIRST[i]=$lba
    P_LAST[i]=$((lba + P_SIZE[i] * MiB - 1))
    lba=$((P_LAST[i] + 1))
done
DISK_BYTES=$(( (lba + MiB) * 512 ))   # 1 MiB at the end for the backup GPT

# --- work directory -------------------------------------------------------------
mkdir -p "$out" || die "cannot create --out directory $out"
out=$(cd "$out" && pwd)
WORK=$(mktemp -d /var/tmp/aviary-build.XXXXXX)
cleanup() {
    local rc=$?
    if [ "${AVIARY_KEEP_WORK:-0}" = 1 ]; then
        log "keeping work directory $WORK"
    elif grep -q " $WORK/" /proc/self/mountinfo 2>/dev/null; then
        echo "$PROG: warning: something is still mounted under $WORK; not removing it" >&2
    else
        rm -rf --one-file-system "$WORK"
    fi
    [ "$rc" -eq 0 ] || echo "$PROG: build FAILED (exit $rc)" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ROOT=$WORK/root BOOT=$WORK/boot RAW=$WORK/disk.raw

log "building $channel $version${variant:+ (variant $variant)} with $kpkg into $out (work dir $WORK)"

# --- 0. RAUC signing keys (test keys of this build host) ----------------------------
# A CA and a signing certificate issued by it, made once per host and kept
# outside git. The CA certificate is every image's RAUC keyring, so each
# release built on this host accepts the payloads of every other. The signing
# certificate has no extendedKeyUsage (RAUC 1.8 refuses codeSigning).
ensure_keys() {
    install -d -m 0700 "$KEY_DIR" || die "cannot create $KEY_DIR"
    exec 7> "$KEY_DIR/.lock"
    flock 7
    if [ -s "$KEY_DIR/ca.cert.pem" ] && [ -s "$KEY_DIR/signing.cert.pem" ] && [ -s "$KEY_DIR/signing.key.pem" ]; then
        exec 7>&-
        return 0
    fi
    log "making RAUC test keys in $KEY_DIR"
    local k
    k=$(mktemp -d "$KEY_DIR/.new.XXXXXX")
    (
        set -e
        cd "$k"
        umask 077
        openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key.pem -out ca.cert.pem -days 7300 \
            -subj "/O=Aviary test keys/CN=Aviary update CA ($(hostname))" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash"
        openssl req -newkey rsa:3072 -nodes -keyout signing.key.pem -out signing.csr.pem \
            -subj "/O=Aviary test keys/CN=Aviary update signing ($(hostname))"
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
            "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" > signing.ext
        openssl x509 -req -in signing.csr.pem -CA ca.cert.pem -CAkey ca.key.pem \
            -set_serial "0x$(openssl rand -hex 16)" -days 7300 -extfile signing.ext -out signing.cert.pem
        openssl verify -CAfile ca.cert.pem signing.cert.pem > /dev/null
        chmod 0644 ca.cert.pem signing.cert.pem
        rm -f signing.csr.pem signing.ext
    ) > "$WORK/openssl.log" 2>&1 || { cat "$WORK/openssl.log" >&2; rm -rf "$k"; die "making the RAUC test keys failed"; }
    mv -f "$k"/* "$KEY_DIR"/ && rmdir "$k"
    exec 7>&-
}
ensure_keys
openssl verify -CAfile "$KEY_DIR/ca.cert.pem" "$KEY_DIR/signing.cert.pem" > /dev/null 2>&1 \
    || die "$KEY_DIR/signing.cert.pem is not signed by $KEY_DIR/ca.cert.pem (remove $KEY_DIR to make new keys)"

# --- 1. root filesystem tree ----------------------------------------------------
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$RECIPE/packages.txt" | grep -v '^$')
[ "${#packages[@]}" -gt 0 ] || die "packages.txt lists no packages"
include=$(IFS=,; echo "${packages[*]},$kpkg")

cache_hooks=()
if [ -n "$APT_CACHE" ]; then
    mkdir -p "$APT_CACHE"
    cache_hooks=(
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
        --setup-hook="sync-in $APT_CACHE /var/cache/apt/archives/"
        --customize-hook="sync-out /var/cache/apt/archives $APT_CACHE"
    )
    log "using the .deb cache $APT_CACHE ($(find "$APT_CACHE" -maxdepth 1 -name '*.deb' | wc -l) files)"
fi
# Debian's kernel hook would build a generic 38 MB initrd while packages are
# installed: replace it by a no-op (customize.sh restores it and runs dracut).
no_dracut_hook='chroot "$1" dpkg-divert --quiet --local --rename --divert /etc/kernel/postinst.d/dracut.aviary --add /etc/kernel/postinst.d/dracut && mkdir -p "$1"/etc/kernel/postinst.d && printf "#!/bin/sh\nexit 0\n" > "$1"/etc/kernel/postinst.d/dracut && chmod 755 "$1"/etc/kernel/postinst.d/dracut'
customize=$(printf '%q ' "$RECIPE/customize.sh")'"$1" '$(printf '%q ' "$RECIPE" "$kpkg" "$channel" "$version" "$WORK/kernel.env" "$VARIANT_SCRIPT")

log "mmdebstrap: bookworm + ${#packages[@]} packages + $kpkg"
mmdebstrap --mode=root --variant=minbase --components=main \
    --hook-dir="$MERGED_USR_HOOKS" \
    --skip=essential/unlink \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    "${cache_hooks[@]}" \
    --essential-hook="$no_dracut_hook" \
    --customize-hook="$customize" \
    --include="$include" \
    bookworm "$ROOT" \
    "deb $MIRROR bookworm main" \
    "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY_MIRROR bookworm-security main" \
    || die "mmdebstrap failed: see its messages above (apt: is '$kpkg' in bookworm or bookworm-security, is the mirror reachable? customize.sh: its own error line)"
[ -s "$WORK/kernel.env" ] || die "customize.sh did not report the kernel"
# shellcheck disable=SC1091
. "$WORK/kernel.env"
log "root filesystem: $(du -sh --apparent-size "$ROOT" | cut -f1), kernel $KERNEL_RELEASE ($KERNEL_VERSION)"
# RAUC trusts payloads signed under this host's test CA.
install -D -m 0644 "$KEY_DIR/ca.cert.pem" "$ROOT/etc/rauc/keyring.pem"

# --- 2. BOOT filesystem tree ----------------------------------------------------
mkdir -p "$BOOT"
kernel_args=$(sed -e 's/#.*//' "$RECIPE/kernel-args.txt" | tr -s '[:space:]' ' ' | sed 's/^ //; s/ $//')
kernel_args_sed=$(printf '%s' "$kernel_args" | sed 's/[&|\\]/\\&/g')
sed -e "s|@KERNEL_ARGS@|$kernel_args_sed|g" "$RECIPE/grub.cfg.in" > "$BOOT/grub.cfg"
! grep -q '@[A-Z_][A-Z_]*@' "$BOOT/grub.cfg" || die "unsubstituted @VARIABLE@ left in grub.cfg"
grub-editenv "$BOOT/grubenv" create
grub-editenv "$BOOT/grubenv" set "ORDER=A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
[ "$(stat -c %s "$BOOT/grubenv")" -eq 1024 ] || die "grubenv is not 1024 bytes"
echo "Ignition runs on the next boot while this file exists (removed by aviary-firstboot-complete.service)." \
    > "$BOOT/ignition.firstboot"

# --- 3. disk image --------------------------------------------------------------
log "partitioning $((DISK_BYTES / 1024 / 1024)) MiB disk"
truncate -s "$DISK_BYTES" "$RAW"
sgdisk_args=(--clear)
for i in 1 2 3 4 5 6; do
    sgdisk_args+=(--new="$i:${P_FIRST[i]}:${P_LAST[i]}" --typecode="$i:${P_TYPE[i]}" --change-name="$i:${P_NAME[i]}")
done
sgdisk "${sgdisk_args[@]}" "$RAW" > "$WORK/sgdisk.log" 2>&1 || { cat "$WORK/sgdisk.log" >&2; die "sgdisk failed"; }
for i in 1 2 3 4 5 6; do
    got=$(sgdisk --info="$i" "$RAW" | sed -n "s/^Partition name: '\(.*\)'$/\1/p")
    [ "$got" = "${P_NAME[i]}" ] || die "partition $i is '$got', expected ${P_NAME[i]} (sgdisk wrote no table?)"
done

mkfs_tree() {  # TYPE LABEL SRCDIR FILE BLOCKS [extra mke2fs args...]: a filesystem of SRCDIR
    local type=$1 label=$2 src=$3 file=$4 blocks=$5; shift 5
    # As root, not under fakeroot: mke2fs -d copies the tree's owners (under fakeroot every
    # file became root:root: /etc/shadow lost group shadow, /var/lib/etcd its owner etcd).
    mke2fs -q -F -t "$type" -b 4096 -L "$label" -d "$src" "$@" "$file" "$blocks"
}
mkfs_at() {  # PARTNO TYPE LABEL SRCDIR [extra mke2fs args...]
    local i=$1 type=$2 label=$3 src=$4; shift 4
    local blocks=$(( (P_LAST[i] - P_FIRST[i] + 1) / 8 ))   # 4 KiB blocks
    log "mke2fs $type '$label' on partition $i (${P_NAME[i]}, ${P_SIZE[i]} MiB)"
    mkfs_tree "$type" "$label" "$src" "$RAW" "$blocks" -E "offset=$((P_FIRST[i] * 512))" "$@" \
        || die "mke2fs failed for ${P_NAME[i]} (does the tree fit in ${P_SIZE[i]} MiB?)"
}
# STATE is shared by both slots, as Flatcar's ROOT partition: RAUC's data, and what
# containers and cluster members keep across updates (bind-mounted over /var/lib/docker,
# /var/lib/containerd and /var/lib/etcd by the image's fstab).
install -d -m 0755 "$WORK/state/lib" "$WORK/state/lib/docker" "$WORK/state/lib/containerd"
etcd_ids=$(awk -F: '$1 == "etcd" { print $3 ":" $4 }' "$ROOT/etc/passwd")
[ -n "$etcd_ids" ] || die "the root filesystem has no etcd user (etcd-server not installed?)"
install -d -m 0700 -o "${etcd_ids%:*}" -g "${etcd_ids#*:}" "$WORK/state/lib/etcd"
mkfs_at 2 ext2 BOOT "$BOOT"
mkfs_at 3 ext4 ROOT "$ROOT"
mkfs_at 5 ext4 STATE "$WORK/state"
# ROOT-B (4) stays zeroed: a later A/B update fills it.

# --- 4. GRUB (BIOS): core.img in BIOS-BOOT, boot.img in the MBR -------------------
log "installing GRUB (core.img at LBA ${P_FIRST[1]})"
grub-mkimage -O i386-pc -d "$GRUB_DIR" -o "$WORK/core.img" -p '(hd0,gpt2)/' \
    biosdisk part_gpt ext2 normal configfile loadenv test echo linux serial terminal boot reboot
core_bytes=$(stat -c %s "$WORK/core.img")
[ "$core_bytes" -le $((P_SIZE[1] * 1024 * 1024)) ] || die "core.img ($core_bytes bytes) does not fit BIOS-BOOT"
le64() {  # print N as 8 little-endian bytes
    local n=$1 i s=
    for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\%03o' $(( (n >> (8 * i)) & 255 ))); done
    printf "$s"
}
dd if="$WORK/core.img" of="$RAW" bs=512 seek="${P_FIRST[1]}" conv=notrunc status=none
# Only the boot code (440 bytes): the protective MBR's partition table stays.
dd if="$GRUB_DIR/boot.img" of="$RAW" bs=440 count=1 conv=notrunc status=none
# What grub-bios-setup would do: boot.img's kernel sector (0x5c) = core.img's
# LBA; core.img's first blocklist start (0x1f4 in its first sector) = LBA + 1.
le64 "${P_FIRST[1]}" | dd of="$RAW" bs=1 seek=$((0x5c)) conv=notrunc status=none
le64 "$((P_FIRST[1] + 1))" | dd of="$RAW" bs=1 seek=$((P_FIRST[1] * 512 + 0x1f4)) conv=notrunc status=none

# --- 4b. GRUB (UEFI): the same GRUB for firmware: uefi, as the ESP's removable-media loader ---
# One GRUB image with the modules built in and the same prefix, so both firmwares read the
# one grub.cfg and grubenv on BOOT. The FAT is made in place on the disk file (no mount).
log "installing GRUB for UEFI on the ESP (partition 6)"
grub-mkimage -O x86_64-efi -d "$GRUB_EFI_DIR" -o "$WORK/BOOTX64.EFI" -p '(hd0,gpt2)/' \
    part_gpt ext2 fat normal configfile loadenv test echo linux serial terminal boot reboot efi_gop
esp_off=$((P_FIRST[6] * 512))
mkfs.fat -F 16 -n ESP --offset="${P_FIRST[6]}" "$RAW" $(( P_SIZE[6] * 1024 )) > /dev/null \
    || die "mkfs.fat failed for the ESP"
MTOOLS_SKIP_CHECK=1 mmd -i "$RAW@@$esp_off" ::/EFI ::/EFI/BOOT || die "mmd failed on the ESP"
MTOOLS_SKIP_CHECK=1 mcopy -i "$RAW@@$esp_off" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI \
    || die "mcopy failed on the ESP"

# --- 5. update payload: a RAUC bundle of the root filesystem ---------------------------
# The root tree made into its own ext4 image (label ROOT, as ROOT-A) just large
# enough for it: every block of the image is written, and the bundle's slot-install
# hook (rauc-install-hook: 1 MiB direct writes, a third faster than RAUC's own ext4
# handler here) grows it to the slot afterwards. (Shrinking a copy of ROOT-A with
# resize2fs -M left 1338 MiB for 820 MiB in use: its estimate is far from tight
# on a flex_bg filesystem.) Then a signed dm-verity bundle (squashfs, zstd level
# 9: 6 s here, 133 MiB; the default level 15 took 54 s for 126 MiB).
PAYLOAD_DIR=$WORK/payload
mkdir -p "$PAYLOAD_DIR"
# The tree's blocks, a tenth more for directories and extent blocks, the 32 MiB journal
# ROOT-A has, and inode tables at mke2fs's default ratio (256 bytes per 16 KiB): then
# a fifth more on each try that does not fit.
tree_blocks=$(du -s -x --block-size=4096 "$ROOT" | cut -f1)
fs_blocks=$(( tree_blocks * 11 / 10 + 8192 + tree_blocks / 64 + 4096 ))
for try in 1 2 3 4; do
    rm -f "$PAYLOAD_DIR/rootfs.ext4"
    log "update payload: mke2fs ext4 'ROOT' from the root tree, $((fs_blocks / 256)) MiB (try $try)"
    if mkfs_tree ext4 ROOT "$ROOT" "$PAYLOAD_DIR/rootfs.ext4" "$fs_blocks" -J size=32 \
        > "$WORK/mke2fs-payload.log" 2>&1; then
        break
    fi
    [ "$try" -lt 4 ] || { cat "$WORK/mke2fs-payload.log" >&2; die "mke2fs of the update payload failed"; }
    fs_blocks=$(( fs_blocks * 6 / 5 ))
done
e2fsck -f -n "$PAYLOAD_DIR/rootfs.ext4" > "$WORK/e2fsck.log" 2>&1 \
    || { cat "$WORK/e2fsck.log" >&2; die "e2fsck found problems in the update payload's filesystem"; }
[ "$fs_blocks" -le $((P_SIZE[4] * 256)) ] \
    || die "the update payload's filesystem ($((fs_blocks / 256)) MiB) does not fit ROOT-B (${P_SIZE[4]} MiB)"
log "update payload: root filesystem image $((fs_blocks / 256)) MiB; bundling (rauc, verity, zstd)"
cat > "$PAYLOAD_DIR/manifest.raucm" <<EOF
[update]
compatible=$RAUC_COMPATIBLE
version=$version
description=Aviary Reference Linux $version ($channel, $KERNEL_RELEASE)

[bundle]
format=verity

[hooks]
filename=rauc-install-hook

[image.rootfs]
filename=rootfs.ext4
hooks=install
EOF
install -m 0755 "$RECIPE/rauc-install-hook" "$PAYLOAD_DIR/rauc-install-hook"
rauc bundle --cert="$KEY_DIR/signing.cert.pem" --key="$KEY_DIR/signing.key.pem" \
    --keyring="$KEY_DIR/ca.cert.pem" --mksquashfs-args="-comp zstd -Xcompression-level 9" \
    "$PAYLOAD_DIR" "$WORK/payload.raucb" > "$WORK/rauc-bundle.log" 2>&1 \
    || { cat "$WORK/rauc-bundle.log" >&2; die "rauc bundle failed"; }
rm -rf "$PAYLOAD_DIR"
payload_size=$(stat -c %s "$WORK/payload.raucb")
payload_sha256=$(sha256sum "$WORK/payload.raucb" | cut -d' ' -f1)
log "update payload: $((payload_size / 1024 / 1024)) MiB, sha256 $payload_sha256"

# --- 6. outputs -------------------------------------------------------------------
log "converting to qcow2"
qemu-img convert -f raw -O qcow2 "$RAW" "$WORK/disk.qcow2"
{
    printf '{\n'
    printf '  "channel": "%s",\n' "$channel"
    printf '  "version": "%s",\n' "$version"
    printf '  "kernel_package": "%s",\n' "$kpkg"
    printf '  "kernel_release": "%s",\n' "$KERNEL_RELEASE"
    printf '  "kernel_version": "%s",\n' "$KERNEL_VERSION"
    printf '  "disk_virtual_size": %s,\n' "$DISK_BYTES"
    printf '  "payload": {"file": "payload.raucb", "size": %s, "sha256": "%s", "compatible": "%s", "format": "verity", "slot_class": "rootfs"},\n' \
        "$payload_size" "$payload_sha256" "$RAUC_COMPATIBLE"
    printf '  "partitions": [\n'
    for i in 1 2 3 4 5 6; do
        printf '    {"number": %s, "label": "%s", "first_lba": %s, "last_lba": %s, "fs": "%s"}%s\n' \
            "$i" "${P_NAME[i]}" "${P_FIRST[i]}" "${P_LAST[i]}" "${P_FS[i]}" "$([ "$i" -lt 6 ] && echo ,)"
    done
    printf '  ]\n}\n'
} > "$WORK/image.json"
mv -f "$WORK/disk.qcow2" "$out/disk.qcow2"
mv -f "$WORK/payload.raucb" "$out/payload.raucb"
mv -f "$WORK/image.json" "$out/image.json"
log "done: $out/disk.qcow2 ($(du -h --apparent-size "$out/disk.qcow2" | cut -f1)), $out/payload.raucb ($(du -h --apparent-size "$out/payload.raucb" | cut -f1)), $out/image.json"
