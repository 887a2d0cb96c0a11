#!/usr/bin/env bash
# The check for a CUDA machine without a network: the smoke study on the GPU, the memory
# benchmark at Qwen3-0.6B's shape (random weights; LoRA against QLoRA with the study's
# optimizer, peak and per stage), and generation throughput of the 16-bit and NF4 bases at
# batch 32 and 128. One JSON file of figures, and the logs.
#
#   benchmarks/gpu_check.sh [OUT_DIR]            (default: $OUT, else runs/gpu_check)
#   GPU_CHECK_CPU=1 benchmarks/gpu_check.sh OUT  the rehearsal: the same steps, install path and
#                                                output on a CPU, at small sizes (CI runs it)
#
# OUT_DIR receives only plain files, no folders or links (a device call brings back at most 8):
# gpu_check.json, versions.txt, smoke.log, memory.log, generation.log. Everything else (the
# carried wheels' install, the smoke study's folder) is written under a scratch folder
# ($GPU_CHECK_WORK, default a new folder in /tmp) that the script removes when it ends.
#
# Packages the machine lacks travel as wheels in .whl/ (README, "An air-gapped GPU machine":
# python scripts/wheelhouse.py --python 3.12 --exclude-from benchmarks/device-packages.txt
# --max-mb 60 --out .whl); they are installed into the scratch folder, outside the machine's own
# Python. The built tiny model travels with `carry: runs/_models/tiny-qwen3-v3` (else it is built).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$work"
[ -n "${GPU_CHECK_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
cpu=${GPU_CHECK_CPU:-0}

if compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl
  export PYTHONPATH="$work/site:$PWD/lib"
  export PATH="$work/site/bin:$PATH"
else
  export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
if [ "$cpu" = 1 ]; then
  # The rehearsal: small sizes; the same study, benchmarks and output.
  smoke_args=(-p tasks.arc_challenge.n=8 -p tasks.openmath.n=8 -p tasks.squad.n=8 -p data.train_samples=32)
  memory_args=(params/smoke.yaml -p train.batch_size=2 -p data.max_seq_len=64 -p train.optim=paged_adamw_32bit)
  generation_args=(params/smoke.yaml --batch-sizes 2,4 --new-tokens 8 --prompt-tokens 16)
else
  "$python" -c "import torch, sys; torch.cuda.is_available() or sys.exit('gpu_check: no CUDA device here (GPU_CHECK_CPU=1 rehearses on a CPU)')"
  smoke_args=()
  memory_args=(params/qwen3-0.6b.yaml -p train.batch_size=4 -p data.max_seq_len=512)
  generation_args=(params/qwen3-0.6b.yaml --batch-sizes 32,128 --new-tokens 256)
fi
started=$(date +%s)
"$python" - > "$out/versions.txt" <<'PY'
import platform
from importlib import metadata
print("python", platform.python_version())
for name in ["torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets", "huggingface_hub",
             "safetensors", "tokenizers", "papermill", "nbconvert", "ipykernel", "numpy", "pandas", "scipy"]:
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "missing")
PY

# 1. The smoke study on the GPU, in its own root (the built tiny model is reused if carried).
mkdir -p "$work/smoke/runs/_models"
[ -d runs/_models/tiny-qwen3-v3 ] && ln -sfn "$PWD/runs/_models/tiny-qwen3-v3" "$work/smoke/runs/_models/"
smoke_started=$(date +%s)
"$python" -m lorastudy run params/smoke.yaml --root "$work/smoke" "${smoke_args[@]}" > "$out/smoke.log" 2>&1 \
  || { tail -n 40 "$out/smoke.log"; exit 1; }
smoke_s=$(( $(date +%s) - smoke_started ))
tail -n 3 "$out/smoke.log"

# 2. Memory and step time, LoRA against QLoRA, as the study trains them.
"$python" benchmarks/memory.py "${memory_args[@]}" --json "$work/memory.json" > "$out/memory.log" 2>&1 \
  || { tail -n 40 "$out/memory.log"; exit 1; }

# 3. Generation throughput of the 16-bit and the NF4 base.
"$python" benchmarks/generation.py "${generation_args[@]}" --json "$work/generation.json" > "$out/generation.log" 2>&1 \
  || { tail -n 40 "$out/generation.log"; exit 1; }

"$python" benchmarks/gpu_summary.py "$work" "$out" "$smoke_s" "$started"
