#!/usr/bin/env bash
# From a fresh Debian 12 machine (as root, with a Rust toolchain): install the host packages,
# build Aviary, then qualify the reference beta for stable: `aviary qualify beta` builds the
# reference images (stable, beta, alpha, with their update payloads), runs every test the
# promotion policy requires of beta the way it counts them (beta's own boots, updates into it
# from stable, and the regression budgets against stable), gates, and prints the verdict with
# every reason. Extra arguments go to `aviary qualify` (e.g. -j 1, --fail-fast).
# Exit: 0 promote, 1 hold, 2 bad input or no verdict, 130 interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
command -v cargo >/dev/null || { echo "bootstrap: cargo not found; install Rust (rustup) first" >&2; exit 2; }
cargo build --release --locked
exec ./target/release/aviary qualify beta "$@"
