#!/usr/bin/env bash
# On a CUDA machine without a network: the smoke study on the GPU, the memory benchmark at
# Qwen3-0.6B's size (random weights), and generation throughput at batch 32 and 128; one JSON.
#
#   benchmarks/gpu_check.sh [OUT_DIR]            (default: $OUT, else runs/gpu_check)
#
# Packages the machine lacks travel as wheels in .whl/ (see README, "An air-gapped GPU
# machine": python scripts/wheelhouse.py --python 3.12 --exclude-from benchmarks/device-packages.txt
# --max-mb 60 --out .whl); they are installed to /tmp/site, outside the machine's own Python.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD/lib"
else
  export PYTHONPATH="$PWD/lib"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import torch, sys; torch.cuda.is_available() or sys.exit('gpu_check: no CUDA device here')"
started=$(date +%s)

# 1. The smoke study on the GPU, in its own root (the built tiny model is reused if carried).
mkdir -p "$out/smoke/runs/_models"
[ -d runs/_models/tiny-qwen3-v3 ] && ln -sfn "$PWD/runs/_models/tiny-qwen3-v3" "$out/smoke/runs/_models/"
python3 -m lorastudy run params/smoke.yaml --root "$out/smoke" 2>&1 | tee "$out/smoke.log"
smoke_s=$(( $(date +%s) - started ))

# 2. Memory and step time at Qwen3-0.6B's size, bf16, the real study's LoRA (rank 64, every linear layer).
python3 benchmarks/memory.py params/qwen3-0.6b.yaml -p train.batch_size=4 -p data.max_seq_len=512 \
  --json "$out/memory.json" 2>&1 | tee "$out/memory.log"

# 3. Generation throughput of the 16-bit and the NF4 base at the real study's batch sizes.
python3 benchmarks/generation.py params/qwen3-0.6b.yaml --batch-sizes 32,128 --new-tokens 256 \
  --json "$out/generation.json" 2>&1 | tee "$out/generation.log"

python3 - "$out" "$smoke_s" "$started" <<'PY'
import json, subprocess, sys, time
from pathlib import Path
import pandas as pd
out, smoke_s, started = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
results = out / "smoke" / "runs" / "smoke" / "results"
report = {
    "device": subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout.strip(),
    "smoke": {"wall_s": smoke_s,
              "metrics": pd.read_csv(results / "metrics.csv").to_dict("records"),
              "resources": pd.read_csv(results / "resources.csv").to_dict("records")},
    "memory": json.loads((out / "memory.json").read_text()),
    "generation": json.loads((out / "generation.json").read_text()),
    "wall_s": time.time() - started,
}
(out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
print(f"gpu_check: wrote {out / 'gpu_check.json'} in {report['wall_s']:.0f} s")
PY
