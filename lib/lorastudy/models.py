"""Loading the base model (16-bit or NF4 4-bit) and its tokenizer, and building the
offline tiny Qwen3 base.

The real study names a hub id (Qwen/Qwen3-0.6B). Without a network, `builtin:tiny-qwen3`
builds a small Qwen3-architecture model and a byte-level BPE tokenizer with a chat template,
pretrains it briefly on synthetic domain text, and saves it as an ordinary model folder,
so both paths go through the same `from_pretrained` code.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

import torch

from .config import BUILTIN_MODEL, ModelConfig, QuantConfig, is_local
from .files import atomic_path
from .resources import device

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# Bump when the tiny model's recipe changes, so cached builds are not reused.
TINY_VERSION = 3
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Qwen3's chat format, reduced to what the study uses; enable_thinking=False adds the empty
# think block exactly as Qwen3's own template does.
TINY_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
TINY_ARCH = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    tie_word_embeddings=True,
    max_position_embeddings=1024,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
)
TINY_VOCAB = 1024
TINY_PRETRAIN = dict(steps=800, batch_size=8, block_size=128, learning_rate=3e-3, seed=1234)


def tiny_model_dir(models_dir: Path) -> Path:
    return models_dir / f"tiny-qwen3-v{TINY_VERSION}"


# The configuration of hub models the study names by default, so `check` can size the plan
# and the benchmarks can build random-weight stand-ins without a network (config.json less
# the tokenizer's token ids).
HUB_CONFIGS = {
    "Qwen/Qwen3-0.6B": dict(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
    ),
}


def model_folder(model: ModelConfig, models_dir: Path, resolve: Callable[[str], Path]) -> str:
    """Where the model is, or will be once built or downloaded; builds nothing (for `check`)."""
    if model.name == BUILTIN_MODEL:
        return str(tiny_model_dir(models_dir))
    return str(resolve(model.name)) if is_local(model.name) else model.name


def model_path(
    model: ModelConfig, models_dir: Path, resolve: Callable[[str], Path], log: Callable[[str], None] = print
) -> str:
    """The path or hub id `from_pretrained` gets; builds the tiny model on first use."""
    if model.name == BUILTIN_MODEL:
        path = tiny_model_dir(models_dir)
        if not (path / "config.json").is_file():
            build_tiny_model(path, log=log)
        return str(path)
    if is_local(model.name):
        return str(resolve(model.name))
    return model.name


def load_tokenizer(path: str, model: ModelConfig):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(quant: QuantConfig):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=DTYPES[quant.compute_dtype],
        bnb_4bit_quant_storage=quant.storage,
    )


def load_model(path: str, model: ModelConfig, quant: QuantConfig | None = None):
    """The base model: 16-bit (model.dtype) or, with `quant`, bitsandbytes 4-bit."""
    from transformers import AutoModelForCausalLM

    kwargs = dict(
        dtype=DTYPES[model.dtype],
        device_map=device(),
        use_safetensors=True,
        trust_remote_code=model.trust_remote_code,
        attn_implementation=model.attn_implementation,
        revision=model.revision,
    )
    if quant is not None:
        kwargs["quantization_config"] = quantization_config(quant)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def identity(model: ModelConfig, path: str) -> dict:
    """What the study's model resolved to: a hub commit (resolved once, by the data step, and
    then loaded by every later step), or the SHA-256 of a local folder's files."""
    if not Path(path).is_dir():
        requested = model.revision or "main"
        try:
            from huggingface_hub import model_info

            sha = model_info(model.name, revision=requested).sha
        except Exception as exc:  # offline, or no such revision: recorded, and the steps load `requested`
            return {
                "name": model.name,
                "requested": requested,
                "resolved": None,
                "kind": f"unresolved ({str(exc)[:200]})",
            }
        return {"name": model.name, "requested": requested, "resolved": sha, "kind": "hub commit"}
    return {"name": model.name, "path": str(path), "resolved": folder_sha256(Path(path)), "kind": "sha256 of files"}


def folder_sha256(folder: Path) -> str:
    """One digest of every file in a folder (names and contents), streamed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------- the tiny model


def _render(tokenizer, item: str | tuple[str, str]) -> str:
    if isinstance(item, str):
        return item + tokenizer.eos_token
    user, answer = item
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    return prompt + answer + tokenizer.eos_token


def build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    # Digits one by one, as Qwen's tokenizer does, so arithmetic is learnable.
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=TINY_SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=TINY_CHAT_TEMPLATE
    )


def build_tiny_model(out_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Train the tokenizer, pretrain a tiny Qwen3 on synthetic domain text, save it."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from .synthetic import pretraining_texts

    spec = TINY_PRETRAIN
    torch.manual_seed(spec["seed"])
    random.seed(spec["seed"])
    stream = pretraining_texts(spec["seed"])
    corpus_items = list(itertools.islice(stream, 4000))
    tokenizer = build_tokenizer([t if isinstance(t, str) else " ".join(t) for t in corpus_items])
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **TINY_ARCH,
    )
    model = Qwen3ForCausalLM(config)

    # Pack the token stream into fixed blocks: plain causal LM pretraining.
    def blocks():
        buffer: list[int] = []
        for item in itertools.chain(corpus_items, stream):
            buffer += tokenizer(_render(tokenizer, item), add_special_tokens=False).input_ids
            while len(buffer) >= spec["block_size"]:
                yield buffer[: spec["block_size"]]
                buffer = buffer[spec["block_size"] :]

    source = blocks()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["learning_rate"], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / spec["steps"]))
    )
    model.train()
    log(
        f"building {out_dir.name}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"pretraining {spec['steps']} steps on synthetic text"
    )
    for step in range(spec["steps"]):
        batch = torch.tensor([next(source) for _ in range(spec["batch_size"])])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if (step + 1) % 100 == 0:
            log(f"  pretraining step {step + 1}/{spec['steps']}: loss {loss.item():.3f}")
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.do_sample = False
    with atomic_path(out_dir) as tmp:
        model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir
