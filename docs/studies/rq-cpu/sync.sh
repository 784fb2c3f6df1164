#!/usr/bin/env bash
# Every 5 minutes: copy each newly finished run folder of the study in WORK/out into
# REPO/docs/studies/rq-cpu/runs/ and commit that path alone (started by continue.sh).
#   bash docs/studies/rq-cpu/sync.sh WORK REPO
WORK=$1 REPO=$2
DEST=$REPO/docs/studies/rq-cpu/runs
while true; do
  for f in "$WORK"/out/runs/*/results.csv "$WORK"/out/runs/*/*/results.csv; do
    [ -f "$f" ] || continue
    d=$(dirname "$f"); rel=${d#"$WORK"/out/runs/}
    [ -f "$DEST/$rel/results.csv" ] && continue
    mkdir -p "$DEST/$rel" && cp -r "$d/." "$DEST/$rel/"
    for i in 1 2 3 4 5; do   # another commit may hold the index lock: retry
      (cd "$REPO" && git add "docs/studies/rq-cpu/runs/$rel" \
        && git commit -q -m "rq-cpu study: run $rel finished ($(tr -d '\n ' < "$d/cost.json"))" \
           -- "docs/studies/rq-cpu/runs/$rel") && break
      sleep 7
    done
  done
  sleep 300
done
