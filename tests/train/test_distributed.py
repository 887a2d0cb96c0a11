"""One training run across processes (train.processes): the global batch shared out, the
`accelerate launch` command, and, on the CPU with the gloo backend, LoRA and QLoRA trained in
2 processes against 1 process with the same global batch.

Tolerance of the loss curves. With dropout off, 2 processes compute the same global batch's
gradient as 1 process, summed in a different order (each process's half, then DDP's average);
float32 rounding differences of about 1e-7 relative are all that should separate them, and
Adam carries them over a few steps without growing them by orders of magnitude. So each
logged loss must agree within 1e-4 relative (measured: about 1e-7). A different batch
(a wrong share of the data, or a wrong loss normalisation across processes) moves the loss
by 1e-2 or more at the first step already. Dropout is off because each process draws its own
dropout masks, which no number of processes can reproduce."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from lorastudy import data, methods, models, resources
from lorastudy.evaluate.step import evaluate
from lorastudy.models.source import model_path
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run
from lorastudy.study.schema import ConfigError, TrainConfig
from lorastudy.train import distributed
from lorastudy.train.distributed import launch_flags, loadable, per_process_batch
from lorastudy.train.loop import train
from lorastudy.train.precision import ran_in, resolve_precision
from lorastudy.util.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
LOSS_RTOL = 1e-4
SHRUNK = {
    "tasks.arc_challenge.n": 20,
    "tasks.openmath.n": 20,
    "tasks.squad.n": 20,
    "eval.latency_items": 2,
    "train.max_steps": 8,
    "train.logging_steps": 1,
    "lora.dropout": 0.0,
}


# ------------------------------------------------------------------------- the global batch, shared


@pytest.mark.parametrize(
    "batch_size, grad_accum, processes, expected",
    [
        (16, 1, 1, (16, 1)),
        (16, 1, 2, (8, 1)),
        (4, 4, 2, (4, 2)),
        (4, 4, 4, (4, 1)),
        (6, 3, 3, (6, 1)),
        (8, 3, 4, (2, 3)),
    ],
)
def test_the_processes_share_the_global_batch(batch_size, grad_accum, processes, expected):
    train_cfg = TrainConfig(batch_size=batch_size, grad_accum=grad_accum, processes=processes)
    per_batch, per_accum = per_process_batch(train_cfg)
    assert (per_batch, per_accum) == expected
    assert per_batch * per_accum * processes == batch_size * grad_accum


def test_processes_that_cannot_share_the_batch_are_refused_naming_both_settings():
    with pytest.raises(ConfigError) as info:
        load_config(SMOKE, {"train.processes": 3, "train.batch_size": 16, "train.grad_accum": 1})
    assert "train.processes: 3 processes cannot share the global batch of train.batch_size 16 x train.grad_accum 1" in (
        str(info.value)
    )
    with pytest.raises(ConfigError, match="train.processes: must be at least 1"):
        load_config(SMOKE, {"train.processes": 0})


FSDP = {"train.processes": 2, "train.distributed": "fsdp"}


def test_fsdp_with_a_4bit_base_needs_float_storage_of_the_model_dtype():
    with pytest.raises(ConfigError, match=r"quant.storage: FSDP shards only float weights .* \(float32\), not uint8"):
        load_config(SMOKE, {**FSDP, "quant.prepare_kbit": False})
    cfg = load_config(SMOKE, {**FSDP, "quant.storage": "float32", "quant.prepare_kbit": False})
    flags = launch_flags(cfg, methods.QLORA)
    for option, value in [
        ("--fsdp_use_orig_params", "false"),
        ("--fsdp_state_dict_type", "FULL_STATE_DICT"),
        ("--fsdp_sync_module_states", "true"),
        ("--fsdp_cpu_ram_efficient_loading", "true"),
    ]:
        assert flags[flags.index(option) + 1] == value
    assert "--use_fsdp" in flags and "--multi_gpu" not in flags
    # Without a quantized method, the storage does not matter.
    load_config(SMOKE, {**FSDP, "methods": ["base", "lora"]})


def test_fsdp_with_k_bit_preparation_is_refused_before_any_model_loads():
    """k-bit preparation's fp32 norms and embeddings beside bf16-stored 4-bit weights give one
    decoder block two dtypes, which FSDP with use_orig_params: false cannot flatten."""
    with pytest.raises(ConfigError) as info:
        load_config(SMOKE, {**FSDP, "quant.storage": "float32", "methods": ["base", "lora", "qlora", "lora-upcast"]})
    problems = info.value.problems
    assert any(p.startswith("methods: qlora with train.distributed: fsdp: quant.prepare_kbit: true") for p in problems)
    assert any(p.startswith("methods: lora-upcast with train.distributed: fsdp: its fp32 upcasts") for p in problems)
    assert all("quant.prepare_kbit: false" in p for p in problems)
    # The same study with DDP is fine: every process holds the whole model.
    load_config(SMOKE, {"train.processes": 2, "methods": ["base", "lora", "qlora", "lora-upcast"]})


def test_fsdp_loads_without_a_device_map_so_no_gpu_holds_the_whole_model():
    cfg = load_config(SMOKE, {**FSDP, "quant.storage": "float32", "quant.prepare_kbit": False})
    assert distributed.sharded(cfg.train) and not distributed.sharded(load_config(SMOKE).train)
    assert not distributed.sharded(load_config(SMOKE, {"train.processes": 2}).train)  # DDP: a copy each
    assert "device_map" not in models.load_kwargs(cfg.model, cfg.quant, sharded=True)
    assert models.load_kwargs(cfg.model, cfg.quant, sharded=False)["device_map"] == resources.device()


@pytest.mark.parametrize(
    "params, method, expected",
    [
        ("smoke.yaml", "lora", ("fp32", "float32")),  # float32 weights and compute: no autocast, on a GPU too
        ("smoke.yaml", "qlora", ("fp32", "float32")),
        ("qwen3-0.6b.yaml", "lora", ("bf16", "bfloat16 (autocast)")),
        ("qwen3-0.6b.yaml", "qlora", ("bf16", "bfloat16 (autocast)")),
    ],
)
def test_automatic_precision_follows_the_params_on_a_gpu(monkeypatch, params, method, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cfg = load_config(ROOT / "params" / params)
    method = methods.get(method)
    cfg = method.settings(cfg)
    assert (resolve_precision(cfg, method), ran_in(cfg, method)) == expected
    fp16 = load_config(ROOT / "params" / params, {"model.dtype": "float16", "quant.compute_dtype": "float16"})
    assert resolve_precision(fp16, method) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (resolve_precision(cfg, method), ran_in(cfg, method)) == ("fp32", expected[1].split()[0])


def test_ddp_launch_flags_and_the_params_the_processes_read(tmp_path):
    cfg = load_config(SMOKE, {"train.processes": 2, "tasks.squad.n": 7}, root=tmp_path)
    flags = launch_flags(cfg, methods.LORA)
    assert flags[flags.index("--num_processes") + 1] == "2" and "--multi_gpu" in flags
    assert flags[flags.index("--mixed_precision") + 1] == "no"  # fp32 on a CPU
    path = tmp_path / "params.json"
    atomic_write_json(path, loadable(cfg))
    assert load_config(path) == cfg


# ------------------------------------------------------------------------- 2 processes against 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """LoRA and QLoRA trained on the same data by 1 process (study `one`) and 2 (study `two`)."""
    root = tmp_path_factory.mktemp("distributed")
    (root / "runs" / "_models").mkdir(parents=True)
    (root / "runs" / "_models" / tiny_model.name).symlink_to(tiny_model)
    studies = {
        n: load_config(SMOKE, {**SHRUNK, "study": name, "train.processes": n}, root=root)
        for n, name in ((1, "one"), (2, "two"))
    }
    one = StudyPaths(root, "one")
    path = model_path(studies[1].model, one.models, studies[1].resolve)
    data.prepare(studies[1], one.data, model=models.identity(studies[1].model, path))
    shutil.copytree(one.data, StudyPaths(root, "two").data)
    records = {}
    for n, cfg in studies.items():
        for method in ("lora", "qlora"):
            records[n, method] = train(cfg, find_run(cfg, method, 0), StudyPaths(root, cfg.study))
    return root, studies, records


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_two_processes_follow_the_loss_curve_of_one(trained, method):
    root, _, records = trained
    curves = [pd.read_csv(StudyPaths(root, study).loss_csv(method)) for study in ("one", "two")]
    assert list(curves[0].step) == list(curves[1].step) == list(range(1, 9))
    relative = ((curves[1].loss - curves[0].loss).abs() / curves[0].loss).max()
    print(f"\n{method}: largest relative difference of the loss, 2 processes vs 1: {relative:.2e}")
    assert relative <= LOSS_RTOL, pd.concat(curves, axis=1)
    pd.testing.assert_series_equal(curves[0].grad_norm, curves[1].grad_norm, rtol=1e-3)
    # The same global batch: the same tokens, in the same number of optimizer steps.
    one, two = records[1, method], records[2, method]
    assert (one["tokens_seen"], one["optimizer_steps"]) == (two["tokens_seen"], two["optimizer_steps"])


@pytest.mark.slow
def test_a_run_over_processes_records_each_ones_memory_and_their_total(trained):
    _, _, records = trained
    for method in ("lora", "qlora"):
        two = records[2, method]
        peaks = [p["peak_memory_mb"] for p in two["per_process"]]
        assert two["processes"] == 2 and [p["rank"] for p in two["per_process"]] == [0, 1]
        assert all(peak > 100 for peak in peaks), peaks  # a process holding a model and torch, measured
        assert two["peak_memory_mb"] == max(peaks) and two["peak_memory_mb_total"] == pytest.approx(sum(peaks))
        assert two["tokens_per_s"] == pytest.approx(two["tokens_seen"] / two["wall_s"])
        one = records[1, method]
        assert one["processes"] == 1 and one["peak_memory_mb_total"] == one["peak_memory_mb"]


@pytest.mark.slow
def test_adapters_trained_over_processes_load_and_evaluate_like_any_other(trained):
    root, studies, _ = trained
    for method in ("lora", "qlora"):
        weights = [load_file(StudyPaths(root, s).adapter(method) / "adapter_model.safetensors") for s in ("one", "two")]
        assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 0
        for name, tensor in weights[0].items():
            torch.testing.assert_close(weights[1][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    for method in ("lora", "qlora"):
        scores = {}
        for n, cfg in studies.items():
            record = evaluate(cfg, find_run(cfg, method, 0), StudyPaths(root, cfg.study))
            scores[n] = {task: result["metrics"] for task, result in record["tasks"].items()}
        assert set(scores[2]) == {"arc_challenge", "openmath", "squad"}
        assert scores[2] == scores[1], (method, scores)
