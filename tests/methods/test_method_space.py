"""The method space: each method's model is what its declaration claims (real bitsandbytes
layers on the built tiny model), the per-layer quantization error against a direct
computation, the grid's derived runs, cross-evaluation's inputs, the decompositions and the
Pareto front."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import bitsandbytes as bnb
import bitsandbytes.functional as F
import pandas as pd
import pytest
import torch

from lorastudy import methods, pipeline, resources, results
from lorastudy.data.datasets import prepare
from lorastudy.models.loading import load_model, quantizable_linears
from lorastudy.pipeline.checks import study_problems
from lorastudy.quantization import formats
from lorastudy.quantization.errors import layer_rows, measure_formats
from lorastudy.results import method_space
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run, runs_of, trained_run
from lorastudy.study.schema import ConfigError
from lorastudy.train.loop import prepare_model

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
METHODS = ROOT / "params" / "smoke-methods.yaml"


@pytest.fixture(scope="module")
def bf16():
    """The smoke study on a bfloat16 base, so fp32 upcasts are visible."""
    return load_config(SMOKE, {"model.dtype": "bfloat16", "quant.compute_dtype": "bfloat16"})


def linears(model) -> dict[str, torch.nn.Module]:
    """The seven projections of each block of a loaded (not adapted) model."""
    return {n: m for n, m in model.named_modules() if n.endswith("_proj")}


# ------------------------------------------------------------------------- each method's model


@pytest.mark.parametrize(
    "name, quant_type, nested, bits",
    [("qlora", "nf4", True, 4.127), ("qlora-fp4", "fp4", True, 4.127), ("qlora-nf4-nodq", "nf4", False, 4.5)],
)
def test_4bit_bases_hold_linear4bit_layers_of_their_type(tiny_model, bf16, name, quant_type, nested, bits):
    method = methods.get(name)
    model = load_model(str(tiny_model), bf16.model, method.quant(bf16))
    layers = linears(model)
    assert len(layers) == 14
    for layer in layers.values():
        assert isinstance(layer, bnb.nn.Linear4bit)
        assert layer.weight.quant_state.quant_type == quant_type
        assert layer.weight.quant_state.nested is nested
    assert resources.quantized_weights(model)["bits_per_quantized_weight"] == pytest.approx(bits, abs=0.01)


def test_the_8bit_base_holds_linear8bitlt_layers_with_int8_weights(tiny_model, bf16):
    model = load_model(str(tiny_model), bf16.model, methods.get("lora-8bit").quant(bf16))
    layers = linears(model)
    assert len(layers) == 14 and all(isinstance(layer, bnb.nn.Linear8bitLt) for layer in layers.values())
    weight = layers["model.layers.0.mlp.up_proj"].weight
    assert weight.dtype == torch.int8 and weight.SCB.shape == (weight.shape[0],)
    # 8 bits a weight plus one float32 scale per row of 128 (up_proj) or 384 (down_proj) inputs.
    assert 8.0 < resources.quantized_weights(model)["bits_per_quantized_weight"] < 8.3


def test_dora_has_magnitude_vectors_and_they_train(tiny_model, bf16):
    model, _ = prepare_model(bf16, methods.get("dora"), str(tiny_model))
    magnitudes = {n: p for n, p in model.named_parameters() if "lora_magnitude_vector" in n}
    assert len(magnitudes) == 14 and all(p.requires_grad for p in magnitudes.values())
    up = next(p for n, p in magnitudes.items() if "layers.0.mlp.up_proj" in n)
    assert up.shape == (384,)  # one magnitude per output feature
    before = {n: p.detach().clone() for n, p in magnitudes.items()}
    step(model)
    assert all(not torch.equal(before[n], p) for n, p in magnitudes.items())
    assert not methods.get("lora").decomposes_weights and methods.get("dora").decomposes_weights


def step(model, lr: float = 1e-2) -> None:
    """One AdamW step on a batch of random tokens."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    ids = torch.randint(0, 900, (2, 24), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()


def test_full_fine_tuning_trains_every_weight(tiny_model, bf16):
    model, _ = prepare_model(bf16, methods.get("full"), str(tiny_model))
    counts = resources.count_parameters(model)
    assert counts["trainable_params"] == counts["total_params"] == 520_576
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step(model)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p)]
    assert not unchanged
    assert methods.get("full").settings(bf16).train.learning_rate == pytest.approx(bf16.train.learning_rate / 10)


def test_the_upcast_ablation_has_k_bit_preparations_precision_without_its_quantization(tiny_model, bf16):
    upcast, stages = prepare_model(bf16, methods.get("lora-upcast"), str(tiny_model))
    qlora, _ = prepare_model(bf16, methods.get("qlora"), str(tiny_model))
    noprep, _ = prepare_model(bf16, methods.get("qlora-noprep"), str(tiny_model))

    def fp32(model) -> set[str]:
        return {n for n, p in model.named_parameters() if p.dtype == torch.float32 and "lora_" not in n}

    # The same weights in fp32 as k-bit preparation leaves on the 4-bit base: embeddings and norms.
    assert fp32(upcast) == fp32(qlora)
    assert any("embed_tokens" in n for n in fp32(upcast)) and any("norm" in n for n in fp32(upcast))
    base = upcast.get_base_model()
    assert base.model.layers[0].mlp.up_proj.base_layer.weight.dtype == torch.bfloat16  # not quantized, still 16-bit
    assert stages["prepare"]["fp32_params"] == sum(p.numel() for n, p in upcast.named_parameters() if n in fp32(upcast))
    # Without k-bit preparation the 4-bit base keeps its embeddings in bfloat16.
    assert not any("embed_tokens" in n for n in fp32(noprep))
    # The residual stream is fp32 in both, as bitsandbytes' layers return their input's dtype.
    ids = torch.randint(0, 900, (1, 8))
    with torch.no_grad():
        hidden = [m(input_ids=ids, output_hidden_states=True).hidden_states[1].dtype for m in (upcast, qlora)]
    assert hidden == [torch.float32, torch.float32]


def test_quantizable_linears_are_what_the_quantizer_converts(tiny_model, bf16):
    plain = load_model(str(tiny_model), bf16.model)
    quantized = load_model(str(tiny_model), bf16.model, bf16.quant)
    converted = [n for n, m in quantized.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantizable_linears(plain) == converted and "lm_head" not in converted


# ------------------------------------------------------------------------- quantization error


def test_layer_rows_agree_with_a_direct_computation():
    torch.manual_seed(0)
    weight = torch.randn(256, 512) * 0.02
    rows = {r["format"]: r for r in layer_rows([("model.layers.3.mlp.up_proj", weight)])}
    assert set(rows) == {"nf4-dq", "nf4", "fp4-dq", "fp4", "int8"}
    assert all(r["depth"] == 3 and r["type"] == "up_proj" and r["weights"] == 256 * 512 for r in rows.values())
    n = weight.numel()
    for quant_type in ("nf4", "fp4"):
        for double in (True, False):
            packed, state = F.quantize_4bit(weight, blocksize=64, compress_statistics=double, quant_type=quant_type)
            direct = float((weight - F.dequantize_4bit(packed, state)).norm() / weight.norm())
            row = rows[f"{quant_type}-dq" if double else quant_type]
            assert row["relative_error"] == pytest.approx(direct, rel=1e-5)
            blocks = n // 64
            # Packed 4-bit values, then the block absmax: fp32, or 8-bit codes with an fp32 absmax per
            # 256 blocks and one fp32 offset.
            constants = blocks + 4 * math.ceil(blocks / 256) + 4 if double else 4 * blocks
            assert row["stored_bytes"] == n // 2 + constants
    codes, scales, _ = F.int8_vectorwise_quant(weight.half())
    direct = float((weight - codes.float() * scales[:, None] / 127).norm() / weight.norm())
    assert rows["int8"]["relative_error"] == pytest.approx(direct, rel=1e-3)
    assert rows["int8"]["stored_bytes"] == n + 4 * 256
    # NF4 fits normally distributed weights better than FP4 (the QLoRA paper's premise).
    assert rows["nf4"]["relative_error"] < rows["fp4"]["relative_error"]
    assert rows["int8"]["relative_error"] < rows["nf4"]["relative_error"] / 5


def test_pooled_error_weighs_layers_by_size():
    rows = [
        {"error_sq": 1.0, "norm_sq": 100.0, "weights": 10, "stored_bytes": 5},
        {"error_sq": 8.0, "norm_sq": 100.0, "weights": 30, "stored_bytes": 15},
    ]
    pooled = formats.pooled(rows)
    assert pooled["relative_error"] == pytest.approx(math.sqrt(9 / 200)) and pooled["bits_per_weight"] == 4.0


def test_the_step_measures_every_format_and_training_measures_the_same(study_root, tiny_model, bf16):
    cfg = dataclasses.replace(bf16, root=str(study_root))
    paths = StudyPaths(study_root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    summary = measure_formats(cfg, paths, log=lambda _: None)
    layers = pd.read_csv(paths.quantization / "layers.csv")
    assert len(layers) == 14 * 5 and set(layers.depth) == {0, 1}
    measured = summary["formats"]
    assert measured["nf4-dq"]["bits_per_weight"] == pytest.approx(4.127, abs=0.01)
    assert measured["nf4"]["bits_per_weight"] == pytest.approx(4.5)
    assert measured["fp4"]["relative_error"] > measured["nf4"]["relative_error"] > measured["int8"]["relative_error"]
    # The error a quantized method's training records on the model it loads is the step's, format by format.
    for name, fmt in (("qlora", "nf4-dq"), ("qlora-fp4", "fp4-dq"), ("lora-8bit", "int8")):
        _, stages = prepare_model(cfg, methods.get(name), str(tiny_model))
        recorded = stages["quantized"]["reconstruction"]
        assert recorded["layers"] == 14
        assert recorded["relative_error"] == pytest.approx(measured[fmt]["relative_error"], rel=1e-4), name


# ------------------------------------------------------------------------- the grid


def test_the_grid_derives_ordinary_runs_with_their_own_declarations():
    registered = methods.METHODS.names()
    cfg = load_config(METHODS)
    assert methods.METHODS.names() == registered  # loading a config changes no global state
    assert cfg.methods[:4] == ("base", "lora", "lora-r8", "lora-r64")
    assert {"qlora-r8", "qlora-r64"} <= set(cfg.methods) and "lora-r16" not in cfg.methods  # r16 is lora itself
    cell = methods.get("qlora-r8", cfg)
    assert cell.grid_of == "qlora" and dict(cell.grid_point) == {"lora.r": 8} and cell.quantize
    assert cell.settings(cfg).lora.r == 8 and cell.title == "QLoRA r8"
    assert [c.method for c in cell.comparisons()] == ["qlora", "lora-r8"]
    assert "at lora.r = 8" in cell.comparisons()[1].reason
    # A cell is the study's own: another study's grid does not know it.
    with pytest.raises(KeyError, match="unknown method 'qlora-r8'"):
        methods.get("qlora-r8", load_config(METHODS, {"grid.settings": {"lora.r": [4]}}))
    # Deterministic: loading again (as every notebook kernel does) derives the same declaration.
    again = load_config(METHODS)

    def declared(method: methods.Method) -> methods.Method:
        return dataclasses.replace(method, describe=None)  # a function: compared by what it says below

    assert again.methods == cfg.methods and declared(methods.get("qlora-r8", again)) == declared(cell)
    assert methods.get("qlora-r8", again).describe(cfg) == cell.describe(cfg)
    steps = {s.id: s for s in pipeline.plan(cfg, StudyPaths(ROOT, cfg.study))}
    assert steps["02_train-qlora-r8"].params["lora"]["r"] == 8 and steps["02_train-qlora"].params["lora"]["r"] == 16
    assert steps["02_train-lora-r64"].params["method"] == "lora-r64"


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"settings": {"lora.r": [8]}}, "grid.methods: name the methods crossed with grid.settings"),
        ({"methods": ["lora"], "settings": {"lora.rank": [8]}}, "grid.settings.lora.rank: not a model, lora"),
        (
            {"methods": ["lora"], "settings": {"lora.r": ["eight"]}},
            "grid.settings.lora.r: expected a list of an integer",
        ),
        ({"methods": ["base"], "settings": {"lora.r": [8]}}, "grid.methods: 'base' trains nothing"),
        ({"methods": ["dora"], "settings": {"lora.r": [8]}}, "grid.methods: 'dora' is not one of the study's methods"),
        ({"methods": ["lora"], "settings": {"lora.r": [8, 8]}}, "grid.settings.lora.r: a value is listed twice"),
    ],
)
def test_a_bad_grid_is_a_config_error_naming_the_key(grid, message):
    with pytest.raises(ConfigError) as err:
        load_config(SMOKE, {"grid": grid})
    assert message in str(err.value)


# ------------------------------------------------------------------------- cross-evaluation


def test_a_cross_evaluation_reads_the_training_whose_adapter_it_runs():
    cfg = load_config(SMOKE, {"methods": ["base", "lora", "qlora", "qlora-on-16bit", "lora-on-nf4"], "seeds": [0, 1]})
    steps = {s.id: s for s in pipeline.plan(cfg, StudyPaths(ROOT, cfg.study))}
    assert "02_train-qlora-on-16bit_seed0" not in steps  # it trains nothing
    assert steps["03_evaluate-qlora-on-16bit_seed1"].inputs == ["01_data", "02_train-qlora_seed1"]
    assert steps["03_evaluate-lora-on-nf4_seed0"].inputs == ["01_data", "02_train-lora_seed0"]
    assert steps["03_evaluate-lora-on-nf4_seed0"].params["quant"]["quant_type"] == "nf4"
    assert steps["03_evaluate-qlora-on-16bit_seed0"].params["quant"] is None
    assert trained_run(cfg, find_run(cfg, "qlora-on-16bit", 1)) == find_run(cfg, "qlora", 1)
    assert trained_run(cfg, find_run(cfg, "base", 1)) is None
    with pytest.raises(ConfigError, match="'qlora-on-16bit' evaluates what 'qlora' trains; add 'qlora' to methods"):
        load_config(SMOKE, {"methods": ["base", "lora", "qlora-on-16bit"]})


def test_full_fine_tuning_is_refused_at_check_for_a_model_over_its_size(tmp_path):
    cfg = load_config(ROOT / "params" / "qwen3-0.6b.yaml", {"methods": ["base", "lora", "full"]}, root=tmp_path)
    assert study_problems(cfg) == []  # 0.6B parameters, under the 1B the declaration allows
    smaller = dataclasses.replace(methods.FULL, max_params=100_000_000)
    with methods.METHODS.registered(smaller):
        assert study_problems(cfg) == [
            "methods: full is offered for models up to 100,000,000 parameters; Qwen/Qwen3-0.6B has about "
            "595,984,384 (drop full, or use a smaller model)"
        ]


# ------------------------------------------------------------------------- decompositions and the front


def factorial_study(tmp_path: Path) -> results.StudyResults:
    """Per-item scores with known effects: quantization costs 10 of 200 OpenMath items, the upcasts 4."""
    names = ["base", "lora", "qlora", "qlora-noprep", "lora-upcast"]
    cfg = load_config(SMOKE, {"methods": names, "tasks": {"openmath": {"n": 200}}}, root=tmp_path)
    right = {"base": 20, "lora": 120, "lora-upcast": 116, "qlora-noprep": 110, "qlora": 106}
    items = {
        (m, "openmath"): [
            {"id": f"o{i}", "scores": {"exact_match": float(i < right[m]), "no_answer_rate": 0.0, "abs_error": 0.0}}
            for i in range(200)
        ]
        for m in names
    }
    res = results.StudyResults(cfg, StudyPaths(tmp_path, cfg.study), runs_of(cfg), {}, {}, items, {})
    res.metrics, res.metrics_by_seed = results.metric_table(res)
    res.comparisons = results.comparison_table(res)
    memory = {"lora": 1000.0, "lora-upcast": 1300.0, "qlora-noprep": 600.0, "qlora": 900.0}
    res.resources = pd.DataFrame(
        [
            {"method": m, "phase": "train", "peak_memory_mb": mb, "weights_mb": mb / 2, "wall_s": 10.0}
            for m, mb in memory.items()
        ]
    )
    return res


def test_a_decompositions_parts_add_up_to_its_total(tmp_path):
    res = factorial_study(tmp_path)
    table = method_space.decomposition_table(res)
    assert set(table.decomposition) == {"precision"}  # the cross-evaluations are not in this study
    scores = table[table.kind == "score"]
    for _, path in scores.groupby("path"):
        assert path.delta.sum() == pytest.approx(-0.07) and list(path.total) == pytest.approx([-0.07] * len(path))
    parts = scores.set_index(["path", "part"]).delta
    assert parts[(1, "fp32 upcasts")] == pytest.approx(-0.02) and parts[(2, "quantization")] == pytest.approx(-0.05)
    # Every part is one of the study's comparisons, turned the right way round where it was made as b - a.
    assert scores.tested.all()
    turned = scores[(scores.method_a == "qlora") & (scores.method_b == "qlora-noprep")].iloc[0]
    assert turned.ci_low <= turned.delta <= turned.ci_high
    memory = table[table.measure == "peak training memory (MB)"].set_index(["path", "part"])
    assert memory.delta[(1, "fp32 upcasts")] == 300.0 and memory.share[(1, "quantization")] == pytest.approx(4.0)


def test_the_pareto_front_keeps_what_nothing_beats():
    cost, score = [1.0, 2.0, 3.0, 2.0, 1.0], [0.5, 0.7, 0.6, 0.7, 0.5]
    assert method_space.pareto_front(cost, score) == [True, True, False, True, True]
    assert method_space.pareto_front([1.0, 2.0, 3.0], [0.1, 0.3, 0.05], higher_is_better=False) == [True, False, True]


# ------------------------------------------------------------------------- every method, in process


@pytest.mark.slow
def test_every_method_trains_is_evaluated_and_reaches_every_table(study_root):
    """The whole method space at a few steps and items, without papermill: each method's runs,
    the result tables, the method-space tables and every report section that reads them."""
    from lorastudy import report
    from lorastudy.evaluate.step import evaluate
    from lorastudy.report import charts, method_report
    from lorastudy.train.loop import train

    overrides = {
        "data.train_samples": 16,
        "train.max_steps": 2,
        "train.batch_size": 4,
        "train.logging_steps": 1,
        "tasks": {"arc_challenge": {"n": 6}, "openmath": {"n": 6, "max_new_tokens": 8}, "squad": {"n": 6}},
        "eval.latency_items": 2,
        "report.examples": 1,
    }
    cfg = load_config(METHODS, overrides, root=study_root)
    paths = StudyPaths(study_root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    measure_formats(cfg, paths, log=lambda _: None)
    records = {}
    for run in runs_of(cfg):
        if methods.get(run.method, cfg).trains:
            records[run.name] = train(cfg, run, paths, log=lambda _: None)
    evals = {run.name: evaluate(cfg, run, paths, log=lambda _: None) for run in runs_of(cfg)}
    # A cross-evaluation runs the other method's adapter; a full fine-tuning is loaded whole.
    assert evals["qlora-on-16bit"]["adapter"] == str(paths.adapter("qlora"))
    assert (
        evals["lora-on-nf4"]["weights_from"] == "lora"
        and evals["lora-on-nf4"]["weights_bytes"] < (evals["lora"]["weights_bytes"])
    )
    assert evals["full"]["adapter"] is None and evals["full"]["model"] == str(paths.adapter("full"))
    assert evals["full"]["fine_tuned_params"] == evals["full"]["total_params"]
    assert (paths.adapter("full") / "config.json").is_file()
    assert records["lora-r64"]["trainable_params"] == 4 * records["lora"]["trainable_params"]

    res = results.load(cfg, paths)
    results.write(res)
    written = method_space.write(res)
    assert set(written) == {
        f"{n}.csv" for n in ("decompositions", "grid", "pareto", "quantization_formats", "quantization_layers")
    }
    primary = res.metrics[res.metrics.primary]
    assert set(primary.method) == set(cfg.methods) and len(primary) == 3 * len(cfg.methods)
    train_rows = res.resources[res.resources.phase == "train"]
    assert set(train_rows.method) == {m for m in cfg.methods if methods.get(m, cfg).trains}
    assert (train_rows.peak_memory_mb > 0).all() and (train_rows.wall_s > 0).all()
    made = set(zip(res.comparisons.method_a, res.comparisons.method_b))
    assert {
        ("qlora-on-16bit", "lora"),
        ("lora-on-nf4", "qlora"),
        ("qlora-r8", "lora-r8"),
        ("lora-upcast", "qlora"),
    } <= made
    decompositions = method_space.decomposition_table(res)
    assert set(decompositions.decomposition) == {"precision", "train-or-run"}
    for (_, measure, _), path in decompositions.groupby(["decomposition", "measure", "path"]):
        assert path.delta.sum() == pytest.approx(path.total.iloc[0], abs=1e-6), measure
    formats = method_space.quantized_methods(res).set_index("method")
    assert formats.format.to_dict() == {
        "qlora": "nf4-dq",
        "qlora-r8": "nf4-dq",
        "qlora-r64": "nf4-dq",
        "qlora-fp4": "fp4-dq",
        "qlora-nf4-nodq": "nf4",
        "lora-8bit": "int8",
        "qlora-noprep": "nf4-dq",
        "lora-on-nf4": "nf4-dq",
    }
    text = "\n".join(
        [
            report.title(res),
            report.executive_summary(res),
            report.performance_tables(res),
            report.comparisons_table(res),
            report.resources_table(res),
            method_report.overview(res),
            method_report.other_verdicts(res),
            method_report.decomposition_sections(res),
            method_report.grid_section(res),
            method_report.quantization_formats(res),
            method_report.quantized_method_table(res),
        ]
    )
    for name in cfg.methods:
        assert methods.get(name, cfg).title in text, name
    assert "### Quantization or precision" in text and "### Training or running under quantization" in text
    assert "## Why quantization costs what it costs" in text and "### The grid: lora.r crossed with LoRA, QLoRA" in text
    for chart in (charts.chart_pareto, charts.chart_grid, charts.chart_quantization):
        fig, caption = chart(res)
        assert fig is not None and len(caption) > 40
