#!/usr/bin/env bash
# The package as a user gets it: `python -m build` makes the wheel (through the sdist, as from a
# fresh clone), a fresh venv outside the checkout installs it, `lorastudy init` starts a smoke
# study in a new folder and `lorastudy run` renders its report there. A file missing from the
# sdist or the wheel (a notebook, a params template, a report template) fails here.
#   scripts/wheel_smoke.sh            # PYTHON (default .venv/bin/python) needs `build` (the dev extra)
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
python=${PYTHON:-.venv/bin/python}
torch=${TORCH:-torch==2.13.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/lorastudy-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Nothing of this checkout may leak into the fresh venv's imports.
unset PYTHONPATH
start=$(date +%s)

"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/*.whl)
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KB"

"${VENV_PYTHON:-python3}" -m venv "$work/venv"
# torch first: this pins the build that lies on local disk rather than a multi-GB CUDA download.
{ "$work/venv/bin/pip" install --quiet "$torch" && "$work/venv/bin/pip" install --quiet "$wheel"; } \
    >"$work/pip.log" 2>&1 || { tail -30 "$work/pip.log"; exit 1; }
installed=$(date +%s)
echo "installed into a fresh venv in $((installed - start)) s"

cd "$work"
venv/bin/lorastudy --version
venv/bin/lorastudy init study --template smoke --notebooks
# The tiny model, as the checkout built it (`make install`), cached as a download would be:
# building it again takes minutes of pretraining.
model=$(venv/bin/python -c "from pathlib import Path; from lorastudy.models.builtin import tiny_model_dir; print(tiny_model_dir(Path('.')).name)")
mkdir -p study/runs/_models
cp -r "$checkout/runs/_models/$model" study/runs/_models/
cd study
../venv/bin/lorastudy run params/smoke.yaml \
    -p tasks.arc_challenge.n=20 -p tasks.openmath.n=20 -p tasks.squad.n=20 \
    -p train.max_steps=6 -p eval.latency_items=4
test -s rendered/smoke.html && test -s rendered/smoke.md
grep -q "installed as a package" rendered/smoke.md || { echo "the report does not say the code was an installed package"; exit 1; }
echo "wheel smoke study: rendered in $work/study/rendered; $(($(date +%s) - installed)) s after the install, $(($(date +%s) - start)) s in all"
