#!/usr/bin/env bash
# From a fresh Debian 12 machine (as root, with a Rust toolchain): install the host packages,
# build Aviary, build the reference images (stable, beta, alpha, with their update payloads),
# and run every suite in suites/ on them. Extra arguments go to `aviary run` (e.g. -j 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
command -v cargo >/dev/null || { echo "bootstrap: cargo not found; install Rust (rustup) first" >&2; exit 2; }
cargo build --release --locked
./target/release/aviary images build stable beta alpha
exec ./target/release/aviary run "$@"
