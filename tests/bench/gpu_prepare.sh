#!/usr/bin/env bash
# Stage what the GPU check (tests/bench/gpu_check.sh) needs into .gpu/ (git-ignored locally),
# on a machine where alignkit is installed: the bundled model's config and tokenizer files
# (not its 470 MB of weights: the device builds random ones of the same shape), the
# frequent-word lists of en/tr/de (wordfreq is not on the device image), and the wheels the
# image lacks (faiss-cpu). About 40 MB, under the 64 MiB a device call can carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/model .gpu/whl
model=$(python -c "from alignkit.inputs.bundled import ensure_bundled_model; print(ensure_bundled_model(progress=False))")
for f in "$model"/*; do
  case "$f" in *.safetensors|*.bin) ;; *) cp "$f" .gpu/model/ ;; esac
done
python tests/bench/score.py --dump-pools .gpu/pools.json
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  -d .gpu/whl "faiss-cpu==$(python -c 'import importlib.metadata as m; print(m.version("faiss-cpu"))')"
du -sh .gpu
echo "now run, with the device tool: carry ['.gpu'], command 'bash tests/bench/gpu_check.sh', timeout_s 540"
