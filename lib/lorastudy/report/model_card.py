"""Model cards: each trained run's adapter folder gets a README.md that says what it is, how it was
trained, what the study measured of it and how to load it, with huggingface_hub's ModelCardData
metadata (`eval_results`, so the hub shows the scores; `lorastudy`, the intervals and costs that
the hub's schema has no field for). The report step writes them, since it holds the results; they
replace peft's stub, and a retrained adapter gets peft's stub back until the report reruns."""

from __future__ import annotations

from pathlib import Path

from .. import methods, tasks
from ..results.recorded import StudyResults
from ..study.schema import BUILTIN_MODEL, Run, is_local
from ..util.files import atomic_write_text
from . import markdown
from .format import integer, interval, number, p_value


def _hub_id(name: str) -> str | None:
    """The base's hub id for the metadata; a local folder or a built-in model has none."""
    return None if name.startswith(BUILTIN_MODEL.split(":")[0] + ":") or is_local(name) else name


def results_rows(res: StudyResults, method: str) -> list[dict]:
    """Each task's primary metric for the method, with its interval, as metrics.csv holds it."""
    m = res.metrics[(res.metrics.method == method) & res.metrics.primary]
    keys = ["task", "metric", "value", "ci_low", "ci_high", "n"]
    return [{k: (r[k] if k in ("task", "metric") else float(r[k])) for k in keys} for _, r in m.iterrows()]


def comparison_rows(res: StudyResults, method: str) -> list[dict]:
    """The primary comparisons its declaration makes (against the base; for a quantized method, LoRA)."""
    if res.comparisons.empty:
        return []
    c = res.comparisons[(res.comparisons.method_a == method) & res.comparisons.primary]
    keys = ["task", "metric", "method_b", "delta", "ci_low", "ci_high", "p_holm", "significant"]
    return [{k: r[k].item() if hasattr(r[k], "item") else r[k] for k in keys} for _, r in c.iterrows()]


def card_data(res: StudyResults, run: Run):
    from huggingface_hub import EvalResult, ModelCardData

    cfg, method = res.cfg, methods.get(run.method, res.cfg)
    record = res.train[run.name]
    evals = [
        EvalResult(
            task_type="text-generation",
            dataset_type=tasks.get(row["task"], res.cfg).hub.id if tasks.get(row["task"], res.cfg).hub else row["task"],
            dataset_name=tasks.get(row["task"], res.cfg).title,
            metric_type=row["metric"],
            metric_name=row["metric"],
            metric_value=row["value"],
        )
        for row in results_rows(res, run.method)
    ]
    costs = {k: record.get(k) for k in ("trainable_params", "total_params", "peak_memory_mb", "memory_kind", "wall_s")}
    return ModelCardData(
        model_name=f"{cfg.study}-{run.name}",
        base_model=_hub_id(cfg.model.name),
        library_name="transformers" if method.trains_every_weight else "peft",
        tags=["lorastudy", run.method, *(["4-bit", "bitsandbytes"] if method.quantize else [])],
        eval_results=evals or None,
        lorastudy={
            "study": cfg.study,
            "run": run.name,
            "method": run.method,
            "seed": run.seed,
            "params_hash": record.get("params_hash"),
            "confidence": cfg.report.confidence,
            "results": results_rows(res, run.method),
            "comparisons": comparison_rows(res, run.method),
            "costs": costs,
        },
    )


def _settings_lines(res: StudyResults, run: Run) -> list[str]:
    method = methods.get(run.method, res.cfg)
    s = method.settings(res.cfg)
    t, lines = s.train, [f"- Trains: {method.builds_text(res.cfg)}."]
    if not method.trains_every_weight:
        targets = s.lora.target_modules if isinstance(s.lora.target_modules, str) else ", ".join(s.lora.target_modules)
        lines.append(f"- LoRA: rank {s.lora.r}, alpha {s.lora.alpha}, dropout {s.lora.dropout}, on {targets}.")
    length = f"{t.max_steps} steps" if t.max_steps > 0 else f"{number(t.epochs, 2)} epochs"
    lines.append(
        f"- Optimisation: {length}, batch {t.batch_size} x {t.grad_accum} accumulation, learning rate "
        f"{t.learning_rate:g} ({t.lr_scheduler}, warm-up {t.warmup_ratio:g}), max grad norm {t.max_grad_norm:g}, "
        f"optimizer {res.train[run.name].get('optim')}, precision {res.train[run.name].get('precision')}, "
        f"seed {run.seed}."
    )
    return lines


def _data_lines(res: StudyResults, run: Run) -> list[str]:
    cfg, record = res.cfg, res.train[run.name]
    task = tasks.get(cfg.data.train_task, cfg)
    info = res.data_summary.get("datasets", {}).get(task.name, {})
    revision = (info.get("revision") or {}).get("resolved")
    source = {"synthetic": "synthetic rows in its schema", "local": "local files", "hub": "the hub"}[cfg.data.source]
    return [
        f"- {task.title} ({source}{f', {task.hub.id}' if cfg.data.source == 'hub' and task.hub else ''}): "
        f"{integer(record['train_examples'])} training examples of at most {cfg.data.max_seq_len} tokens, loss "
        "on the answer tokens only"
        + (
            f"; validation loss on {integer(record['validation_examples'])} held-out items"
            if record.get("validation_examples")
            else ""
        )
        + (f"; data revision `{revision}`" if revision else "")
        + "."
    ]


def _results_lines(res: StudyResults, run: Run) -> list[str]:
    level = f"{res.cfg.report.confidence:.0%}"
    rows = [
        [
            markdown.escape(tasks.get(r["task"], res.cfg).title),
            r["metric"],
            number(r["value"]),
            interval(r["ci_low"], r["ci_high"], signed=False),
            integer(r["n"]),
        ]
        for r in results_rows(res, run.method)
    ]
    lines = [markdown.table(["task", "metric", "value", f"{level} interval", "n"], rows), ""]
    compared = [
        [
            markdown.escape(tasks.get(r["task"], res.cfg).title),
            methods.get(r["method_b"], res.cfg).title,
            number(r["delta"], signed=True),
            interval(r["ci_low"], r["ci_high"]),
            p_value(r["p_holm"], bare=True),
            "yes" if r["significant"] else "no",
        ]
        for r in comparison_rows(res, run.method)
    ]
    if compared:
        header = ["task", "against", "difference", f"{level} interval", "Holm p", "significant"]
        lines += [
            "Against the methods its declaration compares it with (this minus that):",
            "",
            markdown.table(header, compared),
            "",
        ]
    return lines


def _load_lines(res: StudyResults, run: Run, folder: Path) -> list[str]:
    method = methods.get(run.method, res.cfg)
    base = res.cfg.model.name if _hub_id(res.cfg.model.name) else str(res.train[run.name]["model"])
    resolved = (res.data_summary.get("model") or {}).get("resolved")
    pinned = f', revision="{resolved}"' if _hub_id(res.cfg.model.name) and resolved else ""
    if method.trains_every_weight:
        code = (
            f'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("{folder}")'
        )
        return ["```python", code, "```"]
    lines = ["from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer"]
    if method.quantize:
        q = method.settings(res.cfg).quant
        lines += [
            "from transformers import BitsAndBytesConfig",
            f'quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="{q.quant_type}", '
            f'bnb_4bit_use_double_quant={q.double_quant}, bnb_4bit_compute_dtype="{q.compute_dtype}")'
            if q.bits == 4
            else "quant = BitsAndBytesConfig(load_in_8bit=True)",
            f'base = AutoModelForCausalLM.from_pretrained("{base}"{pinned}, quantization_config=quant)',
        ]
    else:
        lines.append(f'base = AutoModelForCausalLM.from_pretrained("{base}"{pinned}, dtype="{res.cfg.model.dtype}")')
    lines += [
        f'model = PeftModel.from_pretrained(base, "{folder}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{base}")',
    ]
    return ["```python", *lines, "```"]


def _cost_lines(res: StudyResults, run: Run) -> list[str]:
    r = res.train[run.name]
    memory = "peak process memory (RSS)" if r.get("memory_kind") == "cpu_rss" else "peak GPU memory"
    return [
        f"- {integer(r['trainable_params'])} trainable of {integer(r['total_params'])} parameters "
        f"({number(r['pct_trainable'], 2)}%); adapter folder {number(r['adapter_bytes'] / 1e6, 1)} MB.",
        f"- Training: {number(r['wall_s'], 1)} s on {markdown.escape(r['device'])}, {memory} "
        f"{number(r['peak_memory_mb'], 0)} MB, {integer(r['tokens_seen'])} tokens.",
    ]


def card_text(res: StudyResults, run: Run, folder: Path) -> str:
    """The card's body (the metadata goes above it)."""
    cfg, method = res.cfg, methods.get(run.method, res.cfg)
    model = res.data_summary.get("model") or {}
    revision = model.get("resolved") or cfg.model.revision or "not resolved"
    seeds = f" (averaged over {len(cfg.seeds)} seeds' runs)" if len(cfg.seeds) > 1 else ""
    return "\n".join(
        [
            f"# {method.title} · {cfg.study} · seed {run.seed}",
            "",
            method.describe(cfg),
            "",
            "## Base model",
            "",
            f"- {markdown.code(cfg.model.name)} ({cfg.model.dtype}), revision {markdown.code(revision)} "
            f"({model.get('kind', 'as named')}).",
            "",
            "## Method and settings",
            "",
            *_settings_lines(res, run),
            "",
            "## Training data",
            "",
            *_data_lines(res, run),
            "",
            f"## Results in study {markdown.code(cfg.study)}{seeds}",
            "",
            *_results_lines(res, run),
            "## Costs",
            "",
            *_cost_lines(res, run),
            "",
            "## How to load it",
            "",
            *_load_lines(res, run, folder),
            "",
            f"Written by lorastudy's report step from `runs/{cfg.study}/results/`; parameters hash "
            f"`{res.train[run.name].get('params_hash')}`.",
            "",
        ]
    )


def write_cards(res: StudyResults) -> list[Path]:
    """A model card in each trained run's adapter folder."""
    from huggingface_hub import ModelCard

    written = []
    for run in res.runs:
        folder = res.paths.adapter(run.name)
        if run.name not in res.train or not folder.is_dir():
            continue
        card = ModelCard.from_template(
            card_data(res, run),
            template_str="---\n{{ card_data }}\n---\n\n{{ body }}",
            body=card_text(res, run, folder),
        )
        atomic_write_text(folder / "README.md", str(card))
        written.append(folder / "README.md")
    return written
