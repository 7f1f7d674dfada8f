#!/usr/bin/env bash
# From a fresh Debian 12 machine (as root, with a Rust toolchain): install the host packages,
# build Aviary, build the reference images (stable, beta, alpha, with their update payloads),
# run every suite in suites/ on them, then the canary's mixed cluster: the Kubernetes
# networking suite with node-c on beta and the others on stable. Extra arguments go to both
# `aviary run`s (e.g. -j 2). Exits 0 when both pass, else the first failing run's code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
command -v cargo >/dev/null || { echo "bootstrap: cargo not found; install Rust (rustup) first" >&2; exit 2; }
cargo build --release --locked
./target/release/aviary images build stable beta alpha
rc=0
./target/release/aviary run "$@" || rc=$?
[ "$rc" -eq 130 ] && exit 130   # interrupted: stop here
mixed=0
./target/release/aviary run suites/kubernetes-networking.yaml --image node-c=beta "$@" || mixed=$?
[ "$rc" -ne 0 ] && exit "$rc"
exit "$mixed"
