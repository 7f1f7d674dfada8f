#!/usr/bin/env bash
# Measures, on the same image and accelerator, alternating runs of:
#   raw:    QEMU started by hand (same command line Aviary uses) -> first successful `ssh core@ true`
#   aviary: `aviary run` started -> the first command answered over SSH (from summary.json)
# Usage: benches/first-command.sh [ROUNDS]   (default 3). Writes reports/bench-first-command.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
aviary=${AVIARY:-./target/release/aviary}
[ -x "$aviary" ] || cargo build --release --locked -q
disk=$("$aviary" images path stable)
accel=$("$aviary" probe | sed -n 's/.*"accel": "\(.*\)".*/\1/p' | head -1)
work=$(mktemp -d /tmp/aviary-bench.XXXXXX)
qpid=""
cleanup() { [ -n "$qpid" ] && kill -9 "$qpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ssh-keygen -q -t ed25519 -N "" -f "$work/key"
pub=$(cat "$work/key.pub")
cat > "$work/config.ign" <<IGN
{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["$pub"]}]}}
IGN
now_ms() { date +%s%3N; }

raw_once() {
  rm -f "$work/overlay.qcow2"
  qemu-img create -q -f qcow2 -F qcow2 -b "$disk" "$work/overlay.qcow2"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local t0; t0=$(now_ms)
  qemu-system-x86_64 -machine q35 -accel "$accel" -smp 1 -m 1024 -nodefaults -display none \
    -no-user-config -serial "file:$work/console.log" -device virtio-rng-pci \
    -drive "if=none,id=disk0,format=qcow2,file=$work/overlay.qcow2" \
    -device virtio-blk-pci,drive=disk0,bootindex=0 \
    -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=net0 \
    -fw_cfg "name=opt/com.coreos/config,file=$work/config.ign" -no-reboot &
  qpid=$!
  until ssh -q -i "$work/key" -p "$port" -o BatchMode=yes -o ConnectTimeout=2 \
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null core@127.0.0.1 true 2>/dev/null; do
    kill -0 "$qpid" 2>/dev/null || { echo "raw QEMU exited" >&2; exit 1; }
    [ $(( $(now_ms) - t0 )) -lt 300000 ] || { echo "raw boot timed out" >&2; exit 1; }
    sleep 0.2
  done
  local t1; t1=$(now_ms)
  kill -9 "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
  echo $(( t1 - t0 ))
}

aviary_once() {
  local out="$work/reports"; rm -rf "$out"
  local t0; t0=$(now_ms)
  "$aviary" run fixtures/suites/first-command.yaml -j 1 --reports "$out" 2>/dev/null
  local at
  at=$(python3 -c 'import json,sys,glob; s=json.load(open(glob.glob(sys.argv[1]+"/*/summary.json")[0])); print(s["tests"][0]["machines"][0]["first_command_at_ms"])' "$out")
  echo $(( at - t0 ))
}

raws=(); avs=()
for i in $(seq "$rounds"); do
  r=$(raw_once); a=$(aviary_once)
  echo "round $i: raw QEMU -> ssh true: ${r} ms; aviary run -> first command: ${a} ms" >&2
  raws+=("$r"); avs+=("$a")
done
python3 - "$accel" "${raws[*]}" "${avs[*]}" <<'PY'
import json, statistics, sys
accel, raws, avs = sys.argv[1], [int(x) for x in sys.argv[2].split()], [int(x) for x in sys.argv[3].split()]
r, a = statistics.median(raws), statistics.median(avs)
doc = {"accelerator": accel, "raw_qemu_to_ssh_ms": raws, "aviary_run_to_first_command_ms": avs,
       "median_raw_ms": r, "median_aviary_ms": a, "ratio": round(a / r, 3)}
json.dump(doc, open("reports/bench-first-command.json", "w"), indent=2)
print(f"accelerator {accel}: raw QEMU boot to SSH median {r/1000:.1f}s; aviary run to first command median {a/1000:.1f}s; ratio {a/r:.2f}")
PY
