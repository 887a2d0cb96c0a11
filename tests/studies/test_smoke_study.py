"""End to end: the smoke study through `lorastudy run`, its result files, both renderings, and the
notebooks opened on it with their defaults. The tests share one finished study (the `smoke`
fixture); pytest-xdist runs a file in one worker, so it runs once."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html import unescape as html_unescape
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lorastudy.evaluate.step import evaluate
from lorastudy.pipeline.execution import use_this_interpreter
from lorastudy.results.costs import RESOURCE_COLUMNS
from lorastudy.results.tables import COMPARISON_COLUMNS, METRIC_COLUMNS
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run
from lorastudy.train.loop import train
from lorastudy.util.files import read_json, read_jsonl

pytestmark = pytest.mark.slow  # runs studies end to end (minutes)

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, study_folder, run_study):
    root = study_folder(tmp_path_factory.mktemp("smoke"))
    start = time.perf_counter()
    result = run_study(SMOKE, root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"smoke study: {time.perf_counter() - start:.1f} s")
    return root, result


def test_result_files_follow_the_contracts(smoke):
    root, _ = smoke
    results = root / "runs" / "smoke" / "results"
    metrics = pd.read_csv(results / "metrics.csv")
    assert list(metrics.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    primary = {("arc_challenge", "acc_norm"), ("openmath", "exact_match"), ("squad", "f1")}
    for method in ("base", "lora", "qlora"):
        rows = metrics[metrics.method == method]
        assert primary <= set(zip(rows.task, rows.metric))
    fractions = metrics[metrics.metric != "median_abs_error"]
    assert fractions.value.between(0, 1).all() and (fractions.ci_low <= fractions.value).all()
    assert (fractions.value <= fractions.ci_high).all() and (fractions.n == 100).all()
    assert not metrics.loc[metrics.metric == "no_answer_rate", "higher_is_better"].any()

    comparisons = pd.read_csv(results / "comparisons.csv")
    assert list(comparisons.columns[: len(COMPARISON_COLUMNS)]) == COMPARISON_COLUMNS
    assert set(zip(comparisons.method_a, comparisons.method_b)) == {
        ("lora", "base"),
        ("qlora", "base"),
        ("qlora", "lora"),
    }
    assert comparisons.p_value.between(0, 1).all() and set(comparisons.test) <= {"mcnemar_exact", "paired_permutation"}

    predictions = read_jsonl(root / "runs" / "smoke" / "predictions" / "qlora" / "squad.jsonl")
    assert len(predictions) == 100
    assert set(predictions[0]) >= {"id", "prompt", "output", "extracted", "references", "scores"}


def test_every_resource_figure_is_measured(smoke):
    root, _ = smoke
    r = pd.read_csv(root / "runs" / "smoke" / "results" / "resources.csv")
    assert list(r.columns[: len(RESOURCE_COLUMNS)]) == RESOURCE_COLUMNS
    assert set(zip(r.method, r.phase)) == {
        ("base", "eval"),
        ("lora", "train"),
        ("lora", "eval"),
        ("qlora", "train"),
        ("qlora", "eval"),
    }
    assert (r.memory_kind == "cpu_rss").all()
    for column in ("total_params", "peak_memory_mb", "wall_s", "tokens_per_s"):
        assert (r[column] > 0).all(), column
    tuned = r[r.method != "base"]
    assert (tuned.trainable_params > 0).all() and tuned.trainable_params.nunique() == 1  # same adapter
    assert r[r.method == "base"].trainable_params.iloc[0] == 0  # the base is not fine-tuned
    train_rows = r[r.phase == "train"].set_index("method")
    assert train_rows.total_params["lora"] == train_rows.total_params["qlora"]  # logical, not packed
    assert train_rows.weights_mb["qlora"] < 0.5 * train_rows.weights_mb["lora"]
    assert (train_rows.tokens_seen > 0).all() and (train_rows.optimizer_steps > 0).all()
    assert train_rows.bits_per_quantized_weight["qlora"] == pytest.approx(4.127, abs=0.01)
    eval_rows = r[r.phase == "eval"]
    assert (eval_rows.latency_ms_p50 > 0).all() and (eval_rows.latency_ms_p50 <= eval_rows.latency_ms_p95).all()
    assert (eval_rows.latency_tokens == 32).all()
    for figure in ("ttft", "tpot"):
        p50, p95 = eval_rows[f"{figure}_ms_p50"], eval_rows[f"{figure}_ms_p95"]
        assert (p50 > 0).all() and (p50 <= p95).all(), figure
    assert r[r.phase == "train"][["ttft_ms_p50", "tpot_ms_p50", "latency_tokens"]].isna().all().all()
    assert (eval_rows.items_per_s > 0).all()
    losses = pd.read_csv(root / "runs" / "smoke" / "train" / "qlora.loss.csv")
    assert len(losses) > 1 and losses.loss.notna().all()


def test_every_method_generated_exactly_the_fixed_length_whatever_it_would_have_answered(smoke):
    root, _ = smoke
    natural = []
    for method in ("base", "lora", "qlora"):
        latency = read_json(root / "runs" / "smoke" / "eval" / f"{method}.json")["latency"]
        fixed = latency["fixed_length"]
        assert fixed["tokens"] == 32 and fixed["generated"] == [32] * latency["items"] == [32] * 8, method
        assert len(fixed["ttft_ms"]) == len(fixed["tpot_ms"]) == len(latency["ms"]) == 8
        natural += latency["item_tokens"]
    print(f"whole answers' lengths at the latency items: {natural}")
    assert min(natural) < 32  # some answers stop early on their own: the fixed length is forced, not natural
    md = (root / "rendered" / "smoke.md").read_text()
    costs = md[md.index("## Model configurations and costs") :]
    for row in (
        "time to first token (TTFT) p50 at batch 1 (ms; generating 32 tokens)",
        "time to first token (TTFT) p95 at batch 1 (ms; generating 32 tokens)",
        "time per output token (TPOT) p50 at batch 1 (ms; tokens 2 to 32)",
        "time per output token (TPOT) p95 at batch 1 (ms; tokens 2 to 32)",
    ):
        line = next(line for line in costs.splitlines() if line.startswith(f"| {row} |"))
        assert "not measured" not in line and "n/a" not in line, line
    assert "generating exactly 32 tokens" in md  # the chart's caption names the length too


def test_both_renderings_exist_and_stand_alone(smoke):
    root, _ = smoke
    html = (root / "rendered" / "smoke.html").read_text()
    md = (root / "rendered" / "smoke.md").read_text()
    for text in (html, md):
        for heading in (
            "Executive summary",
            "Performance by dataset",
            "Comparisons",
            "Model configurations",
            "Examples",
            "Provenance",
        ):
            assert heading in text
        assert "Recommendation." in text
        assert "def " not in text and "import " not in text  # no code cells
    # Nothing fetched from elsewhere: no external scripts or stylesheets.
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=\"http", html)
    assert html.count("data:image/png;base64") >= 4
    # Every chart's alternative text is its caption, in both renderings.
    alts = re.findall(r"<img [^>]*alt=\"([^\"]*)\"", html)
    assert len(alts) == html.count("<img ") and all(len(alt) > 40 for alt in alts), alts
    assert any(alt.startswith("Primary metric per task and method") for alt in alts)
    images = re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", md)
    assert len(images) >= 4 and all((root / "rendered" / img).is_file() for _, img in images)
    assert {alt for alt, _ in images} == {html_unescape(alt).replace("[", "(").replace("]", ")") for alt in alts}
    assert (root / "runs" / "smoke" / "notebooks" / "02_train-qlora.ipynb").is_file()


def words(markdown: str) -> list[str]:
    """What a reader reads as words: table rules and pipes are not."""
    return [w for w in markdown.split() if re.search(r"[A-Za-z0-9]", w)]


def test_the_report_opens_with_the_answer_and_keeps_every_explanation_once(smoke):
    root, _ = smoke
    md = (root / "rendered" / "smoke.md").read_text()
    assert md.startswith("# LoRA vs QLoRA") and "Warning" not in md  # no library's warning above the title
    before_tables = md[: md.index("\n### ")]
    summary = md[md.index("## Executive summary") : md.index("## Performance by dataset")]
    answer = next(line for line in summary.splitlines() if line.startswith("**The answer.**"))
    for needed in ("ARC-Challenge", "OpenMath", "SQuAD v1.1", "peak process memory", " MB vs ", " s vs "):
        assert needed in answer
    # The memory and time figures within the first 120 words, everything before the per-dataset
    # tables under 350.
    assert len(words(md[: md.index(answer) + answer.index(", time ") + len(", time ")])) < 120
    assert len(words(before_tables)) < 350, len(words(before_tables))
    assert not re.search(r"^- ", summary, re.M)  # the sentences are under Comparisons, each once
    comparisons = md[md.index("## Comparisons") : md.index("## The model and the methods")]
    for sentence in ("- LoRA vs the base model on ARC-Challenge", "- QLoRA vs LoRA on SQuAD v1.1"):
        assert md.count(sentence) == 1 and sentence in comparisons
    costs = md[md.index("## Model configurations and costs") :]
    assert "- Memory: QLoRA's peak process memory (RSS, CPU) during training was" in costs.split("### Training")[0]
    assert md.count("A seed sets the adapter's initialisation") == 1


def test_provenance_names_the_checkouts_commit_and_a_command_any_checkout_runs(smoke):
    """The study's folder is outside the checkout here (as with --root elsewhere): the commit is
    still the code's, and the params path is the one inside a checkout."""
    root, _ = smoke
    md = (root / "rendered" / "smoke.md").read_text()
    assert "<code>lorastudy run params/smoke\\.yaml</code>" in md
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (CI clones one); an exported tree says so instead
        assert f"| git commit | {head.stdout.strip()}" in md
    else:
        assert "| git commit | not a git checkout |" in md


def test_the_report_counts_outputs_that_hit_the_token_limit(smoke):
    root, _ = smoke
    generation = pd.read_csv(root / "runs" / "smoke" / "results" / "generation.csv")
    assert set(zip(generation.method, generation.task)) == {
        (m, t) for m in ("base", "lora", "qlora") for t in ("openmath", "squad")
    }
    md = (root / "rendered" / "smoke.md").read_text()
    for row in generation.itertuples():
        items = read_jsonl(root / "runs" / "smoke" / "predictions" / row.method / f"{row.task}.jsonl")
        hits = [it for it in items if it["hit_token_limit"]]
        assert row.hit_token_limit == len(hits) and row.outputs == len(items) == 100
        # An output that hit the limit ran to it; one that did not stopped before or at it.
        assert all(it["generated_tokens"] == row.max_new_tokens for it in hits)
        assert all(it["generated_tokens"] <= row.max_new_tokens for it in items)
        assert f"{row.hit_token_limit} of {row.outputs}" in md
    assert "outputs that hit the 48-token limit" in md and "Outputs that hit the token limit" in md


def test_a_finished_study_reruns_in_seconds(smoke, run_study):
    root, _ = smoke
    start = time.perf_counter()
    result = run_study(SMOKE, root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("skipped") == 8  # data, quantization, 2 trainings, 3 evaluations, report
    assert time.perf_counter() - start < 60


def test_each_step_ran_in_a_kernel_of_its_own_some_started_ahead(smoke):
    """The local executor starts the next step's kernel while a step's own is importing: the data
    step's kernel starts with it (nothing runs before it), the quantization step's while the data
    step's imports. A kernel started ahead ran nothing but its imports (silently): every executed
    notebook's first cell is its first execution."""
    root, _ = smoke
    run = root / "runs" / "smoke"
    ahead = dict(pd.read_csv(run / "results" / "steps.csv")[["step", "kernel_ahead"]].dropna().values)
    assert len(ahead) == 8 and not ahead["01_data"] and ahead["01_quantization"]
    for step in ahead:
        cells = [
            c for c in nbformat.read(run / "notebooks" / f"{step}.ipynb", as_version=4).cells if c.cell_type == "code"
        ]
        assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), step


def test_same_params_same_machine_same_metrics(smoke, study_root):
    """Retrain and re-evaluate LoRA from the same data: identical metrics and outputs."""
    root, _ = smoke
    cfg = load_config(SMOKE, root=study_root)
    paths = StudyPaths(study_root, cfg.study)
    shutil.copytree(root / "runs" / "smoke" / "data", paths.data)
    first = StudyPaths(root, "smoke")
    again = train(cfg, find_run(cfg, "lora", 0), paths, log=lambda _: None)
    assert again["final_loss"] == read_json(first.train_json("lora"))["final_loss"]
    record = evaluate(cfg, find_run(cfg, "lora", 0), paths, log=lambda _: None)
    before = read_json(first.eval_json("lora"))
    for task, result in record["tasks"].items():
        assert result["metrics"] == before["tasks"][task]["metrics"], task
        outputs = [it["output"] for it in read_jsonl(paths.predictions("lora", task))]
        assert outputs == [it["output"] for it in read_jsonl(first.predictions("lora", task))]


def test_the_report_shows_validation_loss_and_judges_convergence(smoke):
    root, _ = smoke
    results = root / "runs" / "smoke" / "results"
    losses = pd.read_csv(results / "losses.csv")
    for method in ("lora", "qlora"):
        measured = losses[(losses.method == method) & losses.validation_loss.notna()]
        assert list(measured.step) == [20, 40, 60, 80] and (measured.validation_loss > 0).all()
    convergence = pd.read_csv(results / "convergence.csv").set_index("method")
    assert set(convergence.index) == {"lora", "qlora"} and (convergence.from_step == 60).all()
    drop = convergence.loc["qlora", "drop"]
    q = losses[(losses.method == "qlora") & losses.step.isin([60, 80])].validation_loss.tolist()
    assert drop == pytest.approx((q[0] - q[1]) / q[0])
    md = (root / "rendered" / "smoke.md").read_text()
    assert "the validation loss on 64 held-out training-task items" in md
    verdict = "QLoRA may be under-trained" if convergence.loc["qlora", "under_trained"] else "levelled off"
    assert verdict in md
    if convergence.loc["qlora", "under_trained"]:
        assert f"fell {100 * drop:.1f}% over the last quarter" in md


def test_each_adapter_folder_holds_a_model_card_with_the_studys_numbers(smoke):
    from huggingface_hub import ModelCard

    root, _ = smoke
    results = root / "runs" / "smoke" / "results"
    metrics = pd.read_csv(results / "metrics.csv")
    comparisons = pd.read_csv(results / "comparisons.csv")
    for method in ("lora", "qlora"):
        card = ModelCard.load(root / "runs" / "smoke" / "adapters" / method / "README.md")
        primary = metrics[(metrics.method == method) & metrics.primary].set_index("task")
        shown = {r.dataset_type: r.metric_value for r in card.data.eval_results}
        assert len(shown) == 3 and shown["allenai/ai2_arc"] == pytest.approx(primary.value["arc_challenge"])
        meta = card.data.to_dict()["lorastudy"]
        for row in meta["results"]:
            assert row["ci_low"] == pytest.approx(primary.ci_low[row["task"]])
            assert row["ci_high"] == pytest.approx(primary.ci_high[row["task"]])
        record = read_json(root / "runs" / "smoke" / "train" / f"{method}.json")
        assert meta["costs"]["trainable_params"] == record["trainable_params"] > 0
        assert card.data.library_name == "peft" and "PeftModel.from_pretrained" in card.text
    qlora = ModelCard.load(root / "runs" / "smoke" / "adapters" / "qlora" / "README.md")
    against = [c for c in qlora.data.to_dict()["lorastudy"]["comparisons"] if c["method_b"] == "lora"]
    expected = comparisons[(comparisons.method_a == "qlora") & (comparisons.method_b == "lora") & comparisons.primary]
    assert sorted(c["delta"] for c in against) == pytest.approx(sorted(expected.delta))
    assert "BitsAndBytesConfig(load_in_4bit=True" in qlora.text and "| LoRA |" in qlora.text


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_export_copies_the_adapter_or_merges_it_into_its_base(smoke, tmp_path, method):
    """The merged model computes what the adapter computed on the base it trained on (for QLoRA,
    its 4-bit base, dequantized), and loads with transformers alone."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lorastudy import methods
    from lorastudy.cli import main
    from lorastudy.models.loading import load_model

    root, _ = smoke
    args = ["export", str(SMOKE), method, "--root", str(root)]
    assert main([*args, "--out", str(tmp_path / "adapter")]) == 0
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert str(tmp_path / "adapter") in (tmp_path / "adapter" / "README.md").read_text()
    assert main([*args, "--out", str(tmp_path / "merged"), "--merge"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert getattr(merged.config, "quantization_config", None) is None
    assert "merged into" in (tmp_path / "merged" / "README.md").read_text()
    cfg = load_config(SMOKE, root=root)
    record = read_json(root / "runs" / "smoke" / "train" / f"{method}.json")
    base = load_model(record["model"], cfg.model, methods.get(method, cfg).quant(cfg))
    for module in base.modules():  # the layout it trained in (train.loop._keep_4bit_layout)
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    adapted = PeftModel.from_pretrained(base, str(root / "runs" / "smoke" / "adapters" / method)).eval()
    ids = torch.tensor([[1, 5, 9, 14, 2, 7, 3, 11]])
    with torch.no_grad():
        want, got = adapted(ids).logits, merged.eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-4 * want.abs().max().item()), (got - want).abs().max()


NOTEBOOKS = ["01_data", "01_quantization", "02_train", "03_evaluate", "04_report"]
HEADING = re.compile(r"^(#{1,3}) (.+)$", re.M)


def headings(markdown: str) -> list[str]:
    return [f"{hashes} {text.strip()}" for hashes, text in HEADING.findall(markdown)]


def test_every_notebook_runs_top_to_bottom_with_its_defaults(smoke, tmp_path, study_folder):
    """Each notebook as a user opens it in JupyterLab: with its default parameters, run top to
    bottom from the notebooks folder, against the finished smoke study for the report."""
    import papermill as pm

    # A checkout with the finished study copied in, since the notebooks redo what they run.
    finished, _ = smoke
    root = study_folder(tmp_path / "checkout")
    shutil.copytree(ROOT / "params", root / "params")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(finished / "runs" / "smoke", root / "runs" / "smoke", symlinks=True)
    shutil.copytree(finished / "rendered", root / "rendered")
    rendered = (root / "rendered" / "smoke.md").read_text()
    use_this_interpreter(tmp_path / "kernels")
    for name in NOTEBOOKS:
        notebook = root / "notebooks" / f"{name}.ipynb"
        out = tmp_path / f"{name}.out.ipynb"
        # No parameters injected: the defaults in the notebook's parameters cell, as JupyterLab runs it.
        pm.execute_notebook(
            str(notebook), str(out), kernel_name="python3", cwd=str(notebook.parent), progress_bar=False
        )
        executed = nbformat.read(out, as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[:1]}"
    shown = "\n".join(
        o["data"]["text/markdown"]
        for c in nbformat.read(tmp_path / "04_report.out.ipynb", as_version=4).cells
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    )
    # The same sections, in the same order, as the rendered report.
    assert headings(shown) == headings(rendered) and len(headings(rendered)) >= 8
