"""Training and the resource figures on the built tiny model, with real bitsandbytes 4-bit."""

from __future__ import annotations

import math
import mmap
import time
from pathlib import Path

import pytest
import torch

from lorastudy import methods, resources
from lorastudy.data.datasets import load_train, prepare
from lorastudy.models.builtin import tiny_model_dir
from lorastudy.models.loading import load_model, load_tokenizer
from lorastudy.resources import memory
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run
from lorastudy.train.callbacks import NonFiniteLossError, progress_callback
from lorastudy.train.loop import build_examples, prepare_model, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_study(study_root):
    cfg = load_config(
        ROOT / "params" / "smoke.yaml",
        {"data.train_samples": 16, "train.max_steps": 3, "train.logging_steps": 1, "train.batch_size": 4},
        root=study_root,
    )
    paths = StudyPaths(study_root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    return cfg, paths


def test_loss_is_on_answer_tokens_only(tiny_model, tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", root=tmp_path)
    prepare(cfg, tmp_path / "data", log=lambda _: None)
    tokenizer = load_tokenizer(str(tiny_model), cfg.model)
    rows = load_train(tmp_path / "data")[:4]
    examples, dropped = build_examples(rows, tokenizer, max_seq_len=512)
    assert dropped == 0
    for row, ex in zip(rows, examples):
        supervised = [t for t, label in zip(ex["input_ids"], ex["labels"]) if label != -100]
        assert tokenizer.decode(supervised) == row["generated_solution"] + tokenizer.eos_token
        assert ex["labels"][0] == -100  # the prompt (chat template, problem) is masked
    short, dropped = build_examples(rows, tokenizer, max_seq_len=40)
    assert dropped == 4 and short == []  # the prompt alone is longer than 40 tokens


def test_4bit_base_counts_the_same_logical_parameters_in_fewer_bytes(tiny_model):
    cfg = load_config(ROOT / "params" / "smoke.yaml")
    full = load_model(str(tiny_model), cfg.model)
    nf4 = load_model(str(tiny_model), cfg.model, cfg.quant)
    assert type(nf4.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
    assert resources.count_parameters(nf4)["total_params"] == resources.count_parameters(full)["total_params"]
    # peft's and torch's count of packed 4-bit weights is lower than the logical count
    assert sum(p.numel() for p in nf4.parameters()) < resources.count_parameters(nf4)["total_params"]
    assert resources.weights_bytes(nf4) < 0.5 * resources.weights_bytes(full)
    bits = resources.quantized_weights(nf4)["bits_per_quantized_weight"]
    assert bits == pytest.approx(4.127, abs=0.01)  # QLoRA paper: NF4 + double quantization


def test_lora_and_qlora_train_the_same_number_of_parameters(tiny_model):
    cfg = load_config(ROOT / "params" / "smoke.yaml")
    lora, lora_stages = prepare_model(cfg, methods.LORA, str(tiny_model))
    qlora, qlora_stages = prepare_model(cfg, methods.QLORA, str(tiny_model))
    lc, qc = resources.count_parameters(lora), resources.count_parameters(qlora)
    assert lc["trainable_params"] == qc["trainable_params"] > 0
    assert lc["total_params"] == qc["total_params"]
    assert "prepare" in qlora_stages and "prepare" not in lora_stages
    assert qlora_stages["load"]["weights_bytes"] < lora_stages["load"]["weights_bytes"]


@pytest.mark.parametrize("force_sampling", [False, True], ids=["this-machine", "sampled"])
def test_peak_memory_is_reset_between_phases(force_sampling, monkeypatch):
    # "this-machine" takes whichever way this kernel allows; "sampled" forces the way taken
    # where /proc/self/clear_refs is read-only (some containers), so both are covered here.
    if force_sampling:
        monkeypatch.setattr(memory, "reset_peak", lambda on=None: False)
    # 64 MB of fresh pages: a tensor could reuse memory the heap already holds (freed by an
    # earlier test that loaded a real model) and leave the resident set where it was.
    size = 64 * 2**20
    with resources.measure() as big:
        block = mmap.mmap(-1, size)
        for offset in range(0, size, mmap.PAGESIZE):
            block[offset] = 1
        time.sleep(0.3)  # long enough for a sample to see it
        block.close()
    with resources.measure() as small:
        pass
    assert big.peak["peak_rss_bytes"] - small.peak["peak_rss_bytes"] > 32 * 2**20


@pytest.mark.slow
def test_training_records_measured_resources(small_study):
    cfg, paths = small_study
    record = train(cfg, find_run(cfg, "qlora", 0), paths, log=lambda _: None)
    assert (paths.adapter("qlora") / "adapter_model.safetensors").is_file()
    assert record["optimizer_steps"] == 3 and record["tokens_seen"] > 0 and record["wall_s"] > 0
    assert record["tokens_per_s"] == pytest.approx(record["tokens_seen"] / record["wall_s"])
    assert record["peak_memory_mb"] > 0 and record["adapter_bytes"] > 0
    losses = paths.loss_csv("qlora").read_text().splitlines()
    assert losses[0].startswith("step,epoch,loss") and len(losses) == 4


@pytest.mark.slow
def test_a_non_finite_loss_stops_training_with_advice(small_study):
    cfg, paths = small_study
    cfg = load_config(
        ROOT / "params" / "smoke.yaml",
        {"data.train_samples": 16, "train.max_steps": 4, "train.logging_steps": 1, "train.learning_rate": 1e30},
        root=cfg.root,
    )
    with pytest.raises(NonFiniteLossError, match="lower train.learning_rate"):
        train(cfg, find_run(cfg, "lora", 0), paths, log=lambda _: None)
    assert not paths.train_json("lora").exists() and not paths.adapter("lora").exists()


def test_the_loss_callback_rejects_nan_and_inf():
    class Args:
        learning_rate = 1e-3

    class State:
        global_step, epoch = 7, 0.5

    for bad in (math.nan, math.inf):
        with pytest.raises(NonFiniteLossError, match="step 7"):
            progress_callback(lambda _: None, 10, False).on_log(Args(), State(), None, logs={"loss": bad})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_gradient_checkpointing_trains_the_adapter(small_study, method):
    """Checkpointed blocks get inputs that require grad, so LoRA weights still receive gradients."""
    cfg, paths = small_study
    cfg = load_config(
        ROOT / "params" / "smoke.yaml",
        {"data.train_samples": 16, "train.max_steps": 2, "train.gradient_checkpointing": True},
        root=cfg.root,
    )
    model, _ = prepare_model(cfg, methods.get(method), str(tiny_model_dir(paths.models)))
    assert model.base_model.model.is_gradient_checkpointing
    batch = torch.randint(0, 500, (2, 24))
    model.train()
    model(input_ids=batch, labels=batch).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_a_peak_sampler_keeps_the_largest_reading_while_it_runs():
    import itertools
    import time

    readings = itertools.chain([5, 40, 12], itertools.repeat(7))
    with resources.PeakSampler(lambda: next(readings), interval=0.001) as sampler:
        time.sleep(0.05)
    assert sampler.peak == 40  # the spike in the middle, not the last reading


def test_the_headline_peak_on_a_gpu_is_the_devices_used_memory_when_sampled():
    peak = {"memory_kind": "cuda", "peak_reserved_bytes": 2 * 2**20, "peak_allocated_bytes": 2**20}
    assert resources.headline_peak_bytes(peak) == 2 * 2**20  # not sampled: the allocator's reserved peak
    # Paged optimizer state lives in managed memory the allocator does not count.
    assert resources.headline_peak_bytes({**peak, "peak_device_used_bytes": 5 * 2**20}) == 5 * 2**20
    assert resources.headline_peak_bytes({"memory_kind": "cpu_rss", "peak_rss_bytes": 3}) == 3


class RecordingGpu(resources.Gpu):
    """A stand-in for one CUDA device: records each call and the thread it came from, and
    reports used memory that rises with each reading."""

    def __init__(self, index: int):
        super().__init__(index)
        self.calls: list[tuple[str, str]] = []
        self.readings = 0

    def _call(self, name: str) -> None:
        import threading

        self.calls.append((name, threading.current_thread().name))

    def synchronize(self) -> None:
        self._call("synchronize")

    def empty_cache(self) -> None:
        self._call("empty_cache")

    def reset_peaks(self) -> None:
        self._call("reset_peaks")

    def used_bytes(self) -> int:
        self._call("used_bytes")
        self.readings += 1
        return self.readings * 2**20

    def peaks(self) -> dict[str, int]:
        self._call("peaks")
        return {"peak_allocated_bytes": 1, "peak_reserved_bytes": 2}


def test_a_gpu_phase_starts_from_an_empty_cache_and_samples_its_own_device():
    gpu = RecordingGpu(index=3)
    with resources.measure(gpu) as phase:
        time.sleep(0.15)
    names = [name for name, _ in gpu.calls]
    # Before the block: queued work done, the previous phase's cache emptied, then the peaks
    # reset, all before the first reading; after it, its queued work is waited for before the
    # peaks are read.
    assert names.index("used_bytes") == 3
    assert [n for n in names if n != "used_bytes"] == [
        "synchronize",
        "empty_cache",
        "reset_peaks",
        "synchronize",
        "synchronize",
        "peaks",
    ]
    sampled = {thread for name, thread in gpu.calls if name == "used_bytes"}
    assert len(sampled) >= 1 and any(t != "MainThread" for t in sampled)  # read in the sampler's thread
    assert phase.peak["memory_kind"] == "cuda"
    assert phase.peak["peak_device_used_bytes"] == gpu.readings * 2**20  # the largest reading
    assert resources.headline_peak_bytes(phase.peak) == phase.peak["peak_device_used_bytes"]


def test_a_gpus_readings_name_its_device_from_any_thread(monkeypatch):
    """torch.cuda.mem_get_info() without an index reads the calling thread's current device,
    and a new thread starts on device 0: every reading must name the measured device."""
    import threading

    seen = []

    def mem_get_info(device=None):
        seen.append(device)
        return (1, 10)

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: seen.append(device) or 0)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: seen.append(device) or 0)
    gpu = resources.Gpu(2)
    reader = threading.Thread(target=gpu.used_bytes)
    reader.start()
    reader.join()
    assert gpu.used_bytes() == 9
    gpu.peaks()
    assert seen == [2, 2, 2, 2]
