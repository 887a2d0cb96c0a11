"""`lorastudy export PARAMS METHOD --out DIR [--merge]`: a trained run's adapter with its model card,
or (--merge) a model with the adapter merged in (peft's merge_and_unload), loadable with
transformers alone.

A quantized method's adapter is merged into its dequantized base: the 4-bit weights it trained on,
dequantized to the model's dtype (transformers' `dequantize`), so the merged model computes what
the adapter computed on its 4-bit base. This is how a QLoRA model is usually deployed in 16 bits;
merging into the original 16-bit weights instead is what the cross-evaluation `qlora-on-16bit`
measures, and a study that lists it reports what that costs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from . import methods
from .data.datasets import run_settings
from .models.loading import load_model, load_tokenizer, torch_dtype
from .study.paths import StudyPaths
from .study.runs import runs_of
from .study.schema import ConfigError, Run, StudyConfig
from .util.files import atomic_path, read_json


def find_trained(cfg: StudyConfig, method: str, seed: int | None) -> Run:
    """The run of `method` (and `seed`, default the study's first) that trained an adapter."""
    runs = [r for r in runs_of(cfg) if r.method == method and (seed is None or r.seed == seed)]
    if method not in cfg.methods:
        raise ConfigError([f"export: {method!r} is not a method of study {cfg.study} ({', '.join(cfg.methods)})"])
    if not methods.get(method, cfg).trains:
        raise ConfigError([f"export: {method!r} trains nothing, so there is no adapter to export"])
    if not runs:
        raise ConfigError([f"export: no run of {method} with seed {seed} (seeds: {list(cfg.seeds)})"])
    return runs[0]


def export(
    cfg: StudyConfig,
    method: str,
    out: Path,
    merge: bool = False,
    seed: int | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the run's adapter and card (or the merged model and card) to `out`, replaced whole."""
    paths = StudyPaths(Path(cfg.root), cfg.study)
    run = find_trained(cfg, method, seed)
    adapter = paths.adapter(run.name)
    card = adapter / "README.md"
    if not paths.train_json(run.name).is_file() or not adapter.is_dir():
        raise ConfigError([f"export: {run.name} has not been trained; run `lorastudy run` on the study first"])
    if "lorastudy:" not in (card.read_text() if card.is_file() else ""):
        raise ConfigError([f"export: {adapter} has no model card yet; the study's report step writes it"])
    declared = methods.get(method, cfg)
    if merge and declared.trains_every_weight:
        raise ConfigError([f"export --merge: {method} trains every weight; its folder is already the whole model"])
    with atomic_path(Path(out)) as tmp:
        if merge:
            _merge(cfg, run, paths, tmp, log)
            shutil.copy2(card, tmp / "README.md")
            _note_merged(tmp / "README.md", declared.quantize)
        else:
            shutil.copytree(adapter, tmp)
        # The card's loading code names the folder it is in.
        readme = tmp / "README.md"
        readme.write_text(readme.read_text().replace(f'"{adapter}"', f'"{Path(out).resolve()}"'))
    log(f"exported {run.name} of study {cfg.study} to {out}" + (" (merged)" if merge else ""))
    return Path(out)


def _merge(cfg: StudyConfig, run: Run, paths: StudyPaths, out: Path, log: Callable[[str], None]) -> None:
    from peft import PeftModel

    method = methods.get(run.method, cfg)
    settings = run_settings(cfg, method, paths.data)
    path = read_json(paths.train_json(run.name))["model"]
    quant = method.quant(settings)
    base = load_model(path, settings.model, quant)
    if quant is not None:
        log(f"dequantizing {run.name}'s {quant.bits}-bit base to {settings.model.dtype} before merging")
        base = _dequantized(base, torch_dtype(settings.model.dtype))
    merged = PeftModel.from_pretrained(base, str(paths.adapter(run.name))).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(path, settings.model).save_pretrained(out)


def _dequantized(model, dtype):
    try:
        return model.dequantize(dtype=dtype)
    except TypeError:  # transformers before `dequantize` took a dtype
        return model.dequantize().to(dtype)


def _note_merged(card: Path, quantized: bool) -> None:
    """The card of a merged export: loaded with transformers, and for a quantized base, into what."""
    text = card.read_text().replace("library_name: peft", "library_name: transformers")
    into = (
        "its dequantized 4-bit base (the weights it trained on, in 16 bits)"
        if quantized
        else "the 16-bit base it trained on"
    )
    note = (
        f"\n## This export\n\nThe adapter is merged into {into} with peft's `merge_and_unload`: load the folder "
        "with `AutoModelForCausalLM.from_pretrained`, no peft needed.\n"
    )
    card.write_text(text + note)
