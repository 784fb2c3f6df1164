#!/usr/bin/env bash
# Continue the rq-cpu study (issue 29), on this machine or a fresh one, from the run folders
# committed in docs/studies/rq-cpu/runs/. Idempotent: run it again after any interruption.
#
#   bash docs/studies/rq-cpu/continue.sh          # from the repository's main checkout
#
# 1. a git worktree at the study's code commit, beside the repository (the config's data
#    path ../../../shared/data must resolve from it), with its own virtual environment;
# 2. the committed run folders copied into the study's --out (finished runs are skipped);
# 3. the study in the background (nice 19, two single-thread runs at a time), log in $WORK/study.log;
# 4. a loop that copies each newly finished run folder into docs/studies/rq-cpu/runs/ and
#    commits that path alone (every 5 minutes), log in $WORK/sync.log.
# Stop both with: pkill -f 'rq-cpu.toml --out'; pkill -f rq-cpu/sync.sh
set -euo pipefail

CODE=1b571067f2fbcf7c709ec6c516d8c83b6bbd6628   # every run of the study is trained and scored by this commit
REPO=$(git rev-parse --show-toplevel)
WT=${STUDY_WORKTREE:-$(dirname "$REPO")/wt-study}
WORK=${STUDY_WORK:-$(dirname "$REPO")/study}
DEST=$REPO/docs/studies/rq-cpu/runs

if pgrep -f "rq-cpu.toml --out $WORK/out" >/dev/null; then
  echo "the study is already running (pgrep -f 'rq-cpu.toml --out')"; exit 0
fi
[ -d "$WT" ] || git -C "$REPO" worktree add --detach "$WT" "$CODE"
[ "$(git -C "$WT" rev-parse HEAD)" = "$CODE" ] || { echo "error: $WT is not at $CODE; remove it or set STUDY_WORKTREE" >&2; exit 2; }
if [ ! -x "$WT/.venv/bin/alignkit" ]; then
  python3 -m venv "$WT/.venv"
  "$WT/.venv/bin/pip" install -q torch==2.13.0
  "$WT/.venv/bin/pip" install -q -e "$WT"
fi
[ -f /usr/share/wordnet/data.noun ] || apt-get install -y -q wordnet-base >/dev/null   # RS-DA's synonyms
mkdir -p "$WORK/out/runs"
cp -rn "$DEST/." "$WORK/out/runs/"
# build the bundled model once before two workers need it
(cd "$WT" && .venv/bin/python -c "from alignkit.inputs.encoders import load_encoder; load_encoder()")

echo "=== start $(date -u) code $CODE" >> "$WORK/study.log"
setsid nohup bash -c "cd '$WT' && ALIGNKIT_WORDNET_DIR=/usr/share/wordnet nice -n 19 .venv/bin/alignkit study \
  docs/studies/rq-cpu.toml --out '$WORK/out' --quiet >> '$WORK/study.log' 2>&1; \
  echo \"exit \$? at \$(date -u)\" >> '$WORK/study.log'" >/dev/null 2>&1 < /dev/null &

pkill -f "rq-cpu/sync.sh" || true
setsid nohup bash "$REPO/docs/studies/rq-cpu/sync.sh" "$WORK" "$REPO" >> "$WORK/sync.log" 2>&1 < /dev/null &
echo "study running from $WT into $WORK/out (log $WORK/study.log); finished runs are committed to $DEST"
