#!/bin/bash
# Smoke test for a built image: boots DIR/disk.qcow2 (through a qcow2 overlay)
# twice with the harness's QEMU command line and checks first-boot
# provisioning by Ignition, the A/B boot facts and that Ignition does not run
# again on the second boot.
#
#   smoke.sh DIR            (DIR holds disk.qcow2 and image.json)
#
# environment: SMOKE_KEEP=1 keeps the temp dir (console logs, overlay);
#              SMOKE_BOOT_TIMEOUT (default 240 s) per boot.
set -euo pipefail

PROG=smoke.sh
die() { printf '%s: FAIL: %s\n' "$PROG" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
[ "$#" -eq 1 ] || { echo "usage: smoke.sh DIR" >&2; exit 2; }
DIR=$(cd "$1" && pwd) || die "no directory $1"
DISK=$DIR/disk.qcow2
[ -f "$DISK" ] || die "no $DISK"
[ -f "$DIR/image.json" ] || die "no $DIR/image.json"
for tool in qemu-system-x86_64 qemu-img ssh ssh-keygen ignition-validate sha256sum ss; do
    command -v "$tool" > /dev/null || die "missing tool: $tool"
done
BOOT_TIMEOUT=${SMOKE_BOOT_TIMEOUT:-240}
expected_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$DIR/image.json")
[ -n "$expected_version" ] || die "no version in $DIR/image.json"

T=$(mktemp -d /tmp/aviary-smoke.XXXXXX)
QEMU_PID= BUSY=
cleanup() {
    local rc=$?
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2> /dev/null; then
        kill "$QEMU_PID" 2> /dev/null || true
        wait "$QEMU_PID" 2> /dev/null || true
    fi
    if [ "$rc" -ne 0 ]; then
        for f in "$T"/console-*.log; do
            [ -f "$f" ] || continue
            echo "----- last lines of $f -----" >&2
            tail -n 40 "$f" >&2 || true
        done
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        log "logs kept in $T"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- Ignition config ------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C aviary-smoke -f "$T/id_ed25519"
pubkey=$(cat "$T/id_ed25519.pub")
# /etc/hostname and /etc/aviary-smoke as data URLs; modes are decimal (0640 = 416).
cat > "$T/config.ign" <<EOF
{
  "ignition": { "version": "3.3.0" },
  "passwd": {
    "users": [ { "name": "core", "sshAuthorizedKeys": [ "$pubkey" ] } ]
  },
  "storage": {
    "files": [
      { "path": "/etc/hostname", "mode": 420,
        "contents": { "source": "data:,smoke%0A" } },
      { "path": "/etc/aviary-smoke", "mode": 416,
        "contents": { "source": "data:,hello%20from%20aviary%0A" } }
    ]
  },
  "systemd": {
    "units": [ {
      "name": "aviary-smoke.service",
      "enabled": true,
      "contents": "[Unit]\nDescription=Aviary smoke test unit (enabled by Ignition)\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    } ]
  }
}
EOF
ignition-validate "$T/config.ign" || die "ignition-validate rejected the config"

sha_before=$(sha256sum "$DISK" | cut -d' ' -f1)
qemu-img create -q -f qcow2 -F qcow2 -b "$DISK" "$T/overlay.qcow2"

PORT=
for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if [ -z "$(ss -Htln "sport = :$p")" ]; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free TCP port found"

SSH=(ssh -i "$T/id_ed25519" -p "$PORT" -o BatchMode=yes -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 core@127.0.0.1)
guest() { timeout 120 "${SSH[@]}" "$@"; }

# boot N: starts QEMU on the overlay, waits for the SSH banner; sets BOOT_SECS.
boot() {
    local n=$1 console="$T/console-$1.log" t0 deadline banner
    : > "$console"
    t0=$(now)
    qemu-system-x86_64 -machine q35 -accel tcg -smp 2 -m 1024 -nodefaults -display none \
        -serial "file:$console" -device virtio-rng-pci \
        -drive "if=none,id=d0,file=$T/overlay.qcow2,format=qcow2" \
        -device virtio-blk-pci,drive=d0,bootindex=0 \
        -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" \
        -device virtio-net-pci,netdev=n0 \
        -fw_cfg "name=opt/com.coreos/config,file=$T/config.ign" \
        -no-reboot > "$T/qemu-$n.log" 2>&1 &
    QEMU_PID=$!
    deadline=$((SECONDS + BOOT_TIMEOUT))
    while :; do
        kill -0 "$QEMU_PID" 2> /dev/null || die "boot $n: QEMU exited before SSH came up ($(cat "$T/qemu-$n.log"))"
        grep -q -a -E 'Kernel panic|aviary-emergency|aviary-initrd: FATAL|emergency mode|no bootable slot' "$console" \
            && die "boot $n: panic, emergency or no bootable slot on the console"
        # user-mode networking accepts the connection before the guest is up:
        # only a banner means sshd is answering.
        banner=$(timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && head -c 4 <&3" 2> /dev/null || true)
        [ "$banner" = "SSH-" ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "boot $n: no SSH banner after ${BOOT_TIMEOUT}s"
        sleep 0.2
    done
    BOOT_SECS=$(elapsed "$t0" "$(now)")
    log "boot $n: QEMU start -> SSH banner ${BOOT_SECS}s"
    others=$(( $(pgrep -c -f '^qemu-system' || true) - 1 ))
    if [ "$others" -gt 0 ]; then
        BUSY="$BUSY boot$n"
        log "note: $others other QEMU process(es) running on this host: timings are inflated"
    fi
}

# wait_exit N: waits (deadline) for QEMU to exit after a guest reboot.
wait_exit() {
    local deadline=$((SECONDS + 90))
    while kill -0 "$QEMU_PID" 2> /dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "boot $1: QEMU did not exit after the guest rebooted"
        sleep 0.2
    done
    wait "$QEMU_PID" 2> /dev/null || true
    QEMU_PID=
}

check() {  # DESCRIPTION COMMAND... (run in the guest; must succeed)
    local what=$1; shift
    if out=$(guest "$@" 2>&1); then
        log "ok: $what"
    else
        die "$what: '$*' failed: $out"
    fi
}

# --- first boot -------------------------------------------------------------------
boot 1
first_boot=$BOOT_SECS
grep -q 'aviary: booting slot A' "$T/console-1.log" || die "console does not show 'aviary: booting slot A'"
[ "$(guest hostname)" = smoke ] || die "hostname is '$(guest hostname)', expected smoke"
log "ok: hostname smoke"
got=$(guest '. /etc/os-release && echo "$VERSION_ID"')
[ "$got" = "$expected_version" ] || die "os-release VERSION_ID is '$got', expected $expected_version"
log "ok: os-release VERSION_ID=$got"
check "kernel command line has rauc.slot=A and ignition.firstboot" \
    'grep -qw rauc.slot=A /proc/cmdline && grep -qw ignition.firstboot /proc/cmdline'
check "/state is mounted read-write" 'findmnt -n -o OPTIONS /state | grep -qE "(^|,)rw(,|$)"'
check "/boot/grub (BOOT) is mounted" 'findmnt -n /boot/grub > /dev/null'
state=$(guest 'systemctl is-system-running --wait' || true)
[ "$state" = running ] || die "systemctl is-system-running says '$state'; failed units: $(guest 'systemctl --failed --no-legend' || true)"
log "ok: system running, no failed units"
check "/etc/aviary-smoke exists with mode 640" '[ "$(stat -c %a /etc/aviary-smoke)" = 640 ]'
check "Ignition-enabled unit aviary-smoke.service ran" 'systemctl is-active -q aviary-smoke.service'
check "Ignition ran on first boot (journal)" '[ -n "$(sudo journalctl -b 0 -q -t ignition -n 1)" ]'
check "first-boot flag removed" '! test -e /boot/grub/ignition.firstboot'
# mark-good.service starts once the boot has finished (its health checks wait
# for is-system-running): wait for it before reading the slot state.
check "mark-good.service active (health checks passed)" \
    'timeout 120 sh -c "until systemctl is-active -q mark-good.service; do systemctl is-failed -q mark-good.service && exit 1; sleep 0.2; done"'
check "slot A marked good (A_OK=1 A_TRY=0)" \
    'grub-editenv /boot/grub/grubenv list | grep -qx A_OK=1 && grub-editenv /boot/grub/grubenv list | grep -qx A_TRY=0'
check "ed25519 host key only" \
    '[ "$(ls /etc/ssh/ssh_host_*_key)" = /etc/ssh/ssh_host_ed25519_key ]'

t_reboot=$(now)
guest 'sudo systemctl reboot' > /dev/null 2>&1 || true
wait_exit 1
reboot_secs=$(elapsed "$t_reboot" "$(now)")
log "ok: guest rebooted, QEMU exited after ${reboot_secs}s"

# --- second boot ------------------------------------------------------------------
boot 2
second_boot=$BOOT_SECS
grep -q 'aviary: booting slot A' "$T/console-2.log" || die "second boot: console does not show 'aviary: booting slot A'"
check "second boot: no ignition.firstboot on the kernel command line" '! grep -qw ignition.firstboot /proc/cmdline'
check "second boot: flag file still gone" '! test -e /boot/grub/ignition.firstboot'
check "second boot: GRUB used the fast initramfs" 'sudo journalctl -b 0 -k -q | grep -q "aviary-initrd: root"'
check "second boot: no Ignition entries in this boot's journal" \
    '[ -z "$(sudo journalctl -b 0 -q -t ignition)" ] && [ -z "$(sudo journalctl -b 0 -q -u "ignition-*.service")" ]'
check "second boot: still provisioned" '[ "$(hostname)" = smoke ] && test -f /etc/aviary-smoke'
state=$(guest 'systemctl is-system-running --wait' || true)
[ "$state" = running ] || die "second boot: is-system-running says '$state'"
log "ok: second boot running"
check "second boot: mark-good.service active" \
    'timeout 120 sh -c "until systemctl is-active -q mark-good.service; do systemctl is-failed -q mark-good.service && exit 1; sleep 0.2; done"'
check "second boot: rauc status works" 'sudo rauc status > /dev/null'
guest 'sudo systemctl poweroff' > /dev/null 2>&1 || true
wait_exit 2

sha_after=$(sha256sum "$DISK" | cut -d' ' -f1)
[ "$sha_before" = "$sha_after" ] || die "base image changed: $sha_before -> $sha_after"
log "ok: base image unchanged (sha256 $sha_after)"

echo "PASS  image $DIR"
echo "  qcow2 size:            $(du -h --apparent-size "$DISK" | cut -f1) ($(stat -c %s "$DISK") bytes)"
echo "  first boot  -> SSH:    ${first_boot}s"
echo "  second boot -> SSH:    ${second_boot}s"
echo "  reboot -> QEMU exit:   ${reboot_secs}s"
echo "  host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)${BUSY:+; other QEMU processes during:$BUSY}"
