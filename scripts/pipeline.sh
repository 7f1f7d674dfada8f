#!/usr/bin/env bash
# The release pipeline as CI runs it: `aviary qualify beta --promote` on a copy of the manifest.
#
#   scripts/pipeline.sh [--manifest FILE] [--work DIR] [--in-place] [--fail-fast]
#                       [-- AVIARY-QUALIFY-ARGS…]
#
# `aviary qualify` builds what is missing, runs every test images/promotion.yaml requires of beta
# the way the policy counts it (suites that test a release alone boot beta; upgrade-rollback and
# canary update stable nodes into it), gates, and on a promote verdict copies beta into stable and
# appends to promotions.log beside the manifest. This script only chooses which manifest that is:
# by default a copy in WORK (default reports/pipeline-<time>/), so a promotion rewrites the copy;
# --in-place promotes the manifest itself (what a release CI job that commits the result does).
# --manifest selects another manifest (a seeded bad candidate, which must be held). --fail-fast
# starts no test after the first failure (the release is held anyway).
#
# Exit: qualify's code (0 promoted, 1 held, 2 bad input or no verdict, 130 interrupted).
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=images/channels.yaml
work=
in_place=0
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --manifest) manifest=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --in-place) in_place=1; shift ;;
    --fail-fast) extra+=(--fail-fast); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "pipeline: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$manifest" ] || { echo "pipeline: no manifest at $manifest" >&2; exit 2; }
work=${work:-reports/pipeline-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$work/runs"
if [ "$in_place" -eq 1 ]; then
  export AVIARY_MANIFEST=$manifest
else
  cp "$manifest" "$work/channels.yaml"
  export AVIARY_MANIFEST=$work/channels.yaml
fi
aviary=${AVIARY_BIN:-./target/release/aviary}
[ -x "$aviary" ] || cargo build --release --locked
echo "pipeline: manifest $AVIARY_MANIFEST, work folder $work"
rc=0
"$aviary" qualify beta --promote --reports "$work/runs" "${extra[@]}" "$@" || rc=$?
verdict=$(ls -t "$work"/runs/*/verdict.json 2> /dev/null | head -n 1 || true)
[ -n "$verdict" ] && cp "$verdict" "$work/verdict.json"
exit "$rc"
