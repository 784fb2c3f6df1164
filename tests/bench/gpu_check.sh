#!/usr/bin/env bash
# One device check for issue 12, prepared by tests/bench/gpu_prepare.sh (carry .gpu): install
# alignkit over the image's torch/transformers/numba, build a random-weight model of the bundled
# shape, run the CUDA-path tests, then tests/bench/score.py --device cuda (GEMM FLOP/s against
# the card's roofline, cold/warm end to end, extraction tokens/s). Output: $OUT/*.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=python3
$py -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
$py -m pip install -q --no-index --no-deps --no-build-isolation -e . > "$OUT/install.txt" 2>&1 || {
  echo "install failed"; tail -20 "$OUT/install.txt"; exit 1; }
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$py tests/bench/random_model.py .gpu/model /tmp/e5-random 2>&1 | tee "$OUT/model.txt"
timeout 120 $py -m pytest -q -x -p no:cacheprovider -rs tests/test_metrics_spaces.py \
  "tests/test_metrics_retrieval.py::test_one_product_on_cuda_equals_the_cpu_path" 2>&1 | tail -5 | tee "$OUT/tests.txt"
timeout 420 $py tests/bench/score.py --device cuda --model /tmp/e5-random --pools .gpu/pools.json \
  --warm-reps 2 --sweep 20000,40000 2>&1 | tee "$OUT/score_cuda.txt"
