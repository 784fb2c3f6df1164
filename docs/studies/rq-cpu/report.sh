#!/usr/bin/env bash
# Write the rq-cpu report with this checkout's code from the committed run folders (an interim
# report while runs are missing), and the reproduction check of the committed re-run, into
# docs/studies/rq-cpu/. Trains nothing.
#   bash docs/studies/rq-cpu/report.sh        (with alignkit installed from this checkout)
set -euo pipefail
REPO=$(git rev-parse --show-toplevel)
D=$REPO/docs/studies/rq-cpu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp -r "$D/runs" "$TMP/runs"
cd "$REPO"
if [ -f "$D/reproduce/runs/rt/seed1/results.csv" ]; then   # the committed from-scratch re-run: compare only
  cp -r "$D/reproduce" "$TMP/reproduce"
  alignkit study docs/studies/rq-cpu.toml --out "$TMP" --reproduce rt/seed1 --quiet || true
  sed -i "s#$TMP#<a copy of docs/studies/rq-cpu>#g" "$TMP/reproduction.json"
fi
alignkit study docs/studies/rq-cpu.toml --out "$TMP" --report-only --quiet
for f in report.md results.csv comparison.csv alignment_vs_accuracy.csv alignment_vs_accuracy_summary.csv \
         study.json reproduction.json "$TMP"/*.png; do
  [ -f "$TMP/$(basename "$f")" ] && cp "$TMP/$(basename "$f")" "$D/"
done
echo "report written to $D/report.md"
