#!/usr/bin/env bash
# Regression check: a quick reproduce (synthetic scenes, and the real data when present) compared
# metric by metric with the baselines committed under results/baseline/.
#
#   scripts/ci_regression.sh [WORK_DIR]            check; exit 1 on a regression, 2 on incompatible runs
#   scripts/ci_regression.sh --update [WORK_DIR]   rerun and overwrite the committed baselines
#
# Environment: SAM_BENCH (the command, default: sam-bench), SAM_BENCH_DATA (real data root, default
# ../shared/data; skipped when absent), TOLERANCES (default results/baseline/tolerances.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
work="${1:-$(mktemp -d)}"
sb="${SAM_BENCH:-sam-bench}"
data="${SAM_BENCH_DATA:-../shared/data}"
base=results/baseline
tolerances="${TOLERANCES:-$base/tolerances.toml}"

run_synthetic() {
  $sb reproduce --quick --no-progress --out "$1"
}
run_real() {
  $sb reproduce --quick --no-progress --data-root "$data" \
    --substitute COCO=COCO_tiny --substitute LVIS=LVIS_v0.5_val100 --substitute sa23=LVIS_v0.5_val100 \
    --out "$1"
}

# Keep results.json, the manifest and the summary tables (text); drop per-item records and images.
keep_small() {
  local src="$1" dst="$2"
  rm -rf "$dst" && mkdir -p "$dst"
  cp "$src/reproduce.json" "$src"/*.md "$dst/"
  rm -f "$dst/report.md"
  for f in "$src"/*/results.json; do
    mkdir -p "$dst/$(basename "$(dirname "$f")")"
    cp "$f" "$dst/$(basename "$(dirname "$f")")/"
  done
}

status=0
for kind in synthetic real; do
  if [ "$kind" = real ] && [ ! -d "$data" ]; then
    echo "regression: no real data at $data; real-data check skipped"
    continue
  fi
  "run_$kind" "$work/$kind"
  if [ "$update" = 1 ]; then
    keep_small "$work/$kind" "$base/$kind"
    echo "regression: baseline $base/$kind updated from $work/$kind"
  else
    rc=0
    $sb compare "$base/$kind" "$work/$kind" --tolerance-file "$tolerances" --show changed \
      --out "$work/$kind-compare" || rc=$?
    if [ "$rc" -gt "$status" ]; then status=$rc; fi
  fi
done
exit "$status"
