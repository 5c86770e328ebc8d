#!/usr/bin/env bash
# The checks and benchmarks that need CUDA, in one bounded run, for a machine with a GPU.
#
#   scripts/gpu_check.sh OUT_DIR            # PYTHON=... to use another interpreter
#
# Each step has its own time limit and writes OUT_DIR/<step>.log (the benches' JSON lines);
# a failing or timed-out step does not stop the others, and the exit status is 1 if any
# failed. The tests are the `gpu`-marked ones (they skip without CUDA in `make test`); the
# benches print their figures against same-run baselines (DESIGN.md's output convention).
set -u
out=${1:?usage: scripts/gpu_check.sh OUT_DIR}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
failed=()

step() {
  local name=$1 limit=$2
  shift 2
  local began=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - began)) s"
  tail -n "${TAIL_LINES:-25}" "$out/$name.log" | cut -c1-400
  [ "$rc" -eq 0 ] || failed+=("$name")
}

gpu_tests=(
  tests/unit/models/test_encoder.py
  tests/unit/models/dual/test_trainer.py
  tests/unit/models/gr/test_model.py
  tests/unit/models/gr/test_train.py
  tests/unit/index_store/backends/test_torch_scan.py
)

step device 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
# -W: pytest-asyncio may be absent there, and its ini options then warn (an error here)
step tests "${TESTS_LIMIT:-240}" "$py" -m pytest -q -rA -p no:cacheprovider \
  -W ignore::pytest.PytestConfigWarning -m gpu "${gpu_tests[@]}"
step embed "${EMBED_LIMIT:-150}" "$py" -m bench.embed_throughput --posts 4096 --members 2048
step embed_budget "${EMBED_LIMIT:-150}" "$py" -m bench.embed_throughput --posts 4096 \
  --members 2048 --backends torch,torch-fp16 --batch-max-tokens 65536
step torch_scan "${SCAN_LIMIT:-120}" "$py" -m bench.torch_scan --sizes 1000000,4000000 \
  --dtype float16 --hbm-gbps 4800
step gr_scoring "${GR_LIMIT:-120}" "$py" -m bench.gr_scoring --device cuda --attention flex
step gr_attention "${GR_LIMIT:-120}" "$py" -m bench.gr_attention

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all GPU steps passed"
