"""Bad input, faults and untrusted text, through the command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import as_in_the_foreground

from lorastudy.tasks import synthetic
from lorastudy.util.files import write_jsonl

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '<script>alert("owned")</script>'
IMAGE = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"


def lorastudy(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorastudy", *args], capture_output=True, text=True, timeout=timeout)


def write_hostile_data(directory: Path) -> None:
    """Synthetic items whose questions, passages and references carry markup."""
    math = synthetic.openmath_rows(12, 0)
    math[-1]["problem"] = f"{SCRIPT} {math[-1]['problem']} {LINK}"
    write_jsonl(directory / "openmath.jsonl", math)
    arc = synthetic.arc_rows(4, 0)
    arc[0]["question"] = f"{SCRIPT} {arc[0]['question']}"
    arc[0]["choices"]["text"][0] = IMAGE
    write_jsonl(directory / "arc_challenge.jsonl", arc)
    squad = synthetic.squad_rows(4, 0)
    squad[0]["question"] = f"{squad[0]['question']} {IMAGE} **bold**"
    squad[0]["answers"] = {"text": [SCRIPT, LINK], "answer_start": [0, 0]}
    write_jsonl(directory / "squad.jsonl", squad)


def small_study(root: Path, name: str = "faults") -> Path:
    data = root / "data"
    data.mkdir(exist_ok=True)
    write_hostile_data(data)
    params = root / f"{name}.yaml"
    params.write_text(f"""study: {name}
methods: [base]
model: {{name: builtin:tiny-qwen3, dtype: float32}}
data: {{source: local, local_dir: {data}, train_samples: 8, max_seq_len: 192}}
tasks:
  arc_challenge: {{n: 4}}
  openmath: {{n: 4, max_new_tokens: 16}}
  squad: {{n: 4, max_new_tokens: 8}}
eval: {{batch_size: 8, latency_items: 2}}
report: {{examples: 4}}
""")
    return params


@pytest.fixture(scope="module")
def finished(tmp_path_factory, study_folder):
    root = study_folder(tmp_path_factory.mktemp("faults"))
    params = small_study(root)
    result = lorastudy("run", str(params), "--root", str(root))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, params


# ------------------------------------------------------------------------- untrusted text


@pytest.mark.slow
def test_markup_in_data_and_outputs_comes_out_escaped(finished):
    root, _ = finished
    html = (root / "rendered" / "faults.html").read_text()
    md = (root / "rendered" / "faults.md").read_text()
    for text in (html, md):
        assert "<script>alert" not in text and "<img src=x" not in text
    assert 'href="javascript:' not in html and "<strong>bold" not in html
    assert "](javascript:" not in md and " **bold**" not in md  # escaped as \](javascript and \*\*bold
    # The text is still there for the reader, as text.
    assert "&lt;script&gt;alert" in md and "&lt;img src=x onerror=alert" in md
    assert "&lt;script&gt;alert" in html


# ------------------------------------------------------------------------- resume and force


@pytest.mark.slow
def test_rerun_skips_finished_steps_and_redoes_changed_ones(finished):
    root, params = finished
    start = time.perf_counter()
    again = lorastudy("run", str(params), "--root", str(root))
    assert again.returncode == 0 and again.stdout.count("skipped") == 3
    assert time.perf_counter() - start < 60
    # A report setting changed: only the report step depends on it.
    changed = lorastudy("run", str(params), "--root", str(root), "-p", "report.examples=2")
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert changed.stdout.count("skipped") == 2 and "[3/3] 04_report: running" in changed.stdout


@pytest.mark.slow
def test_force_redoes_every_step(finished):
    root, params = finished
    forced = lorastudy("run", str(params), "--root", str(root), "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "skipped" not in forced.stdout and forced.stdout.count(": finished in") == 3


@pytest.mark.slow
def test_an_interrupted_step_leaves_nothing_that_looks_complete(study_root):
    tmp_path = study_root
    params = small_study(tmp_path, "interrupted")
    study = tmp_path / "runs" / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lorastudy", "run", str(params), "--root", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_the_foreground,
    )
    running = study / "notebooks" / ".03_evaluate-base.running.ipynb"
    deadline = time.time() + 300
    while not running.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert running.exists(), "the evaluation step never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "finished steps are kept" in err
    assert (study / "steps" / "01_data.json").is_file()  # the finished step is kept
    assert not (study / "steps" / "03_evaluate-base.json").exists()
    assert not (study / "eval" / "base.json").exists() and not (study / "predictions").exists()
    assert (study / "notebooks" / "03_evaluate-base.failed.ipynb").is_file()
    resumed = lorastudy("run", str(params), "--root", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "01_data: done already" in resumed.stdout and "03_evaluate-base: running" in resumed.stdout


@pytest.mark.slow
def test_a_failing_notebook_stops_the_run_with_its_error(study_root):
    tmp_path = study_root
    params = small_study(tmp_path, "failing")
    bad = [
        {"id": f"x{i}", "question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "Z"}
        for i in range(4)
    ]
    write_jsonl(tmp_path / "data" / "arc_challenge.jsonl", bad)
    result = lorastudy("run", str(params), "--root", str(tmp_path), "-p", "tasks.arc_challenge.n=null")
    assert result.returncode == 1
    assert "step 01_data failed" in result.stderr and "tasks.arc_challenge: no usable items" in result.stderr
    assert (tmp_path / "runs" / "failing" / "notebooks" / "01_data.failed.ipynb").is_file()
    assert not (tmp_path / "runs" / "failing" / "data" / "summary.json").exists()
    assert "02_train" not in result.stdout and "03_evaluate" not in result.stdout


# ------------------------------------------------------------------------- bad parameters

BAD_INPUTS = [
    ("lora:\n  rnak: 8\n", "lora.rnak: unknown parameter"),
    ("lora:\n  r: sixty\n", "lora.r: expected an integer"),
    ("lora:\n  r: 0\n", "lora.r: must be positive"),
    ("methods: [base, vera]\n", "methods: unknown method 'vera'"),
    ("tasks:\n  mmlu: {n: 3}\n", "tasks.mmlu: unknown task"),
    ("quant:\n  quant_type: nf2\n", "quant.quant_type: expected one of"),
    ("model:\n  name: ./no/such/model\n", "model.name: local model folder"),
    ("data:\n  source: local\n  local_dir: /no/such/data\n", "data.local_dir: folder /no/such/data does not exist"),
    ("tasks:\n  squad: {n: 999}\ndata: {source: local, local_dir: DATA}\n", "tasks.squad.n: asked for 999 items"),
    ("study: ../escape\n", "study: '../escape' is not a safe folder name"),
    ("eval:\n  latency_tokens: 1\n", "eval.latency_tokens: must be at least 2"),
    ("eval:\n  latency_tokens: many\n", "eval.latency_tokens: expected an integer"),
]


@pytest.mark.parametrize("text, message", BAD_INPUTS)
def test_bad_parameters_exit_2_naming_the_key(tmp_path, text, message):
    (tmp_path / "data").mkdir()
    write_hostile_data(tmp_path / "data")
    base = {"study": "bad", "tasks": "tasks:\n  squad: {n: 2}\n"}
    body = text.replace("DATA", str(tmp_path / "data"))
    if not body.startswith("study"):
        body = f"study: {base['study']}\n" + body
    if "tasks:" not in body:
        body += base["tasks"]
    params = tmp_path / "bad.yaml"
    params.write_text(body)
    for command in ("check", "run"):
        start = time.perf_counter()
        result = lorastudy(command, str(params), "--root", str(tmp_path), timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert any(line.startswith(f"error: {message}") for line in result.stderr.splitlines()), result.stderr
        assert "Traceback" not in result.stderr
        assert time.perf_counter() - start < 20
    assert not (tmp_path / "runs").exists()  # nothing started


def test_command_line_overrides_are_validated(tmp_path):
    result = lorastudy(
        "check", str(ROOT / "params" / "smoke.yaml"), "-p", "train.learning_rate=fast", "-p", "lora.r=-2", timeout=60
    )
    assert result.returncode == 2
    assert "error: train.learning_rate: expected a number" in result.stderr
    assert "error: lora.r: must be positive" in result.stderr
    ok = lorastudy("check", str(ROOT / "params" / "smoke.yaml"), "-p", "lora.r=8", timeout=60)
    assert ok.returncode == 0 and ": ok" in ok.stdout
