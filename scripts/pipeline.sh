#!/usr/bin/env bash
# The release pipeline as CI runs it: build the releases, run every suite against beta, gate
# beta -> stable with images/promotion.yaml, and promote on a pass.
#
#   scripts/pipeline.sh [--manifest FILE] [--work DIR] [--in-place] [--fail-fast]
#                       [-- AVIARY-RUN-ARGS…]
#
# Each suite is one `aviary run`, all of whose reports go to the gate together: the suites that
# test a release on its own (provisioning, containers, cluster, kubernetes-networking) boot beta
# (`--image beta`); the suites that test the move to beta (upgrade-rollback, canary) run as
# written, from stable to beta. --fail-fast stops after the first suite with a failed test (the
# release is held anyway: the gate names the failed tests and the required suites not run), which
# saves a CI machine the hour the rest would take under TCG.
#
# By default the pipeline works on a copy of the manifest in WORK (default
# reports/pipeline-<time>/), so a promotion rewrites that copy and appends to WORK/promotions.log;
# --in-place promotes the manifest itself (what a release CI job that commits the result does).
# --manifest selects another manifest: a seeded bad candidate, which the gate must hold.
#
# Exit: the gate's code (0 promoted, 1 held, 2 bad input), or a run's code 2/130 when a run
# could not produce a verdict at all.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=images/channels.yaml
work=
in_place=0
fail_fast=0
while [ $# -gt 0 ]; do
  case $1 in
    --manifest) manifest=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --in-place) in_place=1; shift ;;
    --fail-fast) fail_fast=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
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

"$aviary" images build stable beta alpha
release=$("$aviary" images list | awk '$1 == "beta" {print $2}')
[ -n "$release" ] || { echo "pipeline: the manifest has no beta" >&2; exit 2; }
echo "pipeline: gating beta $release -> stable"

runs=()
failed=0
run() {
  local rc=0
  if [ "$fail_fast" -eq 1 ] && [ "$failed" -eq 1 ]; then
    echo "pipeline: --fail-fast: not running $1"
    return
  fi
  echo "pipeline: $(date -u +%H:%M:%S) aviary run $*"
  "$aviary" run --reports "$work/runs" "$@" || rc=$?
  # 0 passed, 1 tests failed: either way the reports are evidence for the gate.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    echo "pipeline: aviary run $* exited $rc: no verdict" >&2
    exit "$rc"
  fi
  [ "$rc" -eq 1 ] && failed=1
  runs+=("$work/runs/$(readlink "$work/runs/latest")")
}
for suite in provisioning containers cluster kubernetes-networking; do
  run "suites/$suite.yaml" --image beta "$@"
done
for suite in upgrade-rollback canary; do
  run "suites/$suite.yaml" "$@"
done

rc=0
"$aviary" gate --from beta --to stable --release "$release" \
  --verdict "$work/verdict.json" --promote "${runs[@]}" || rc=$?
echo "pipeline: $(date -u +%H:%M:%S) verdict $work/verdict.json; runs: ${runs[*]}"
exit "$rc"
