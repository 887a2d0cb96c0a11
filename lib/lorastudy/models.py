"""Loading the base model (16-bit or NF4 4-bit) and its tokenizer, what a study needs to
know of any model's chat format (its end tokens), and building the offline tiny Qwen3 base.

The real study names a hub id (Qwen/Qwen3-0.6B). Without a network, a study names a
built-in model (builtin_models.py), built once into an ordinary model folder, so every path
goes through the same `from_pretrained` code. `builtin:tiny-qwen3` is built here: a small
Qwen3-architecture model and a byte-level BPE tokenizer with a chat template, pretrained
briefly on synthetic domain text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

from .config import ModelConfig, QuantConfig, is_local
from .files import atomic_path, sha256_file
from .resources import device


def torch_dtype(name: str):
    """The torch dtype a params file names (bfloat16, float16, float32); torch is imported here,
    not on import, so the data and report steps do without it."""
    import torch

    return getattr(torch, name)


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
    from .builtin_models import TINY

    return TINY.path(models_dir)


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
    from .builtin_models import builtin_model

    spec = builtin_model(model.name)
    if spec is not None:
        return str(spec.path(models_dir))
    return str(resolve(model.name)) if is_local(model.name) else model.name


def model_path(
    model: ModelConfig, models_dir: Path, resolve: Callable[[str], Path], log: Callable[[str], None] = print
) -> str:
    """The path or hub id `from_pretrained` gets; builds a built-in model on first use."""
    from .builtin_models import builtin_model

    if model.name.startswith("builtin:"):
        spec = builtin_model(model.name)
        if spec is None:
            raise ValueError(f"model.name: unknown built-in model {model.name!r}")
        return str(spec.ensure(models_dir, log))
    if is_local(model.name):
        return str(resolve(model.name))
    return model.name


def load_tokenizer(path: str, model: ModelConfig):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)
    # Batched generation and training pad; a tokenizer without a pad token (Llama's, GPT-2's)
    # pads with its end token, which the attention mask and the -100 labels then ignore.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def end_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a generation: those the model's generation config lists (it may
    list several: Qwen3's <|im_end|> and <|endoftext|>), the tokenizer's end token, and the
    token that closes an assistant's turn, which fine-tuning teaches the model to emit."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    ids = [int(i) for i in configured]
    for token in (tokenizer.eos_token, assistant_turn_end(tokenizer)):
        token_id = tokenizer.convert_tokens_to_ids(token) if token is not None else None
        if token_id is not None and token_id not in ids:
            ids.append(int(token_id))
    return ids


def assistant_turn_end(tokenizer) -> str:
    """The special token the chat template closes an assistant's turn with (<|im_end|> in
    ChatML templates such as Qwen3's and SmolLM2's; <|eot_id|> in Llama 3's). Fine-tuning
    appends it to each answer, so the model learns to end its turn as its template does;
    the tokenizer's end token where the template shows none."""
    marker = "LORASTUDY-ANSWER-MARKER"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "question"}, {"role": "assistant", "content": marker}], tokenize=False
        )
    except Exception:  # no chat template, or one that rejects this conversation
        return tokenizer.eos_token
    after = text.split(marker, 1)[1] if marker in text else ""
    ids = tokenizer(after.lstrip(), add_special_tokens=False).input_ids
    special = set(tokenizer.all_special_ids) | {
        i for i, token in tokenizer.added_tokens_decoder.items() if getattr(token, "special", False)
    }
    if ids and ids[0] in special:
        return tokenizer.convert_ids_to_tokens(ids[0])
    return tokenizer.eos_token


def quantization_config(quant: QuantConfig):
    from transformers import BitsAndBytesConfig

    if quant.bits == 8:
        # LLM.int8: row-wise absmax int8 weights; activations' outlier features (above 6.0, the
        # paper's threshold and bitsandbytes' default) are multiplied in 16-bit.
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(quant.compute_dtype),
        bnb_4bit_quant_storage=quant.storage,
    )


def load_model(path: str, model: ModelConfig, quant: QuantConfig | None = None, sharded: bool = False):
    """The base model: 16-bit (model.dtype) or, with `quant`, bitsandbytes 4-bit or 8-bit."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **load_kwargs(model, quant, sharded))


def load_kwargs(model: ModelConfig, quant: QuantConfig | None, sharded: bool) -> dict:
    """`from_pretrained`'s arguments. On this process's device, unless `sharded` (FSDP): then no
    device map, as accelerate's FSDP expects, so that with its CPU-RAM-efficient loading process 0
    loads the weights on the CPU, the others only their shapes, and FSDP hands each GPU its shard;
    a device map would put the whole model on every GPU."""
    kwargs = dict(
        dtype=torch_dtype(model.dtype),
        use_safetensors=True,
        trust_remote_code=model.trust_remote_code,
        attn_implementation=model.attn_implementation,
        revision=model.revision,
    )
    if not sharded:
        kwargs["device_map"] = device()
    if quant is not None:
        kwargs["quantization_config"] = quantization_config(quant)
    return kwargs


def quantizable_linears(model) -> list[str]:
    """The linear layers a bitsandbytes quantizer converts when transformers loads `model`
    quantized: every nn.Linear except the ones transformers keeps in full precision (the output
    head, tied weights, the last module). Works on a model on the meta device."""
    import torch
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = get_keys_to_not_convert(model)
    return [
        name
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and should_convert_module(name, skip)
    ]


def upcast_like_kbit_preparation(model) -> list[str]:
    """A 16-bit base given the precision peft's k-bit preparation gives a quantized one, without
    quantizing it: every weight the quantizer would leave unquantized (embeddings, norms, the
    head) in fp32, and each linear layer it would convert computing in its own dtype and
    returning the dtype of its input, as bitsandbytes' Linear4bit does (`.to(inp_dtype)`), so the
    residual stream is fp32 as it is in QLoRA. Returns the names of the upcast parameters."""
    import torch

    linears = set(quantizable_linears(model))
    upcast = []
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[0] not in linears and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.to(torch.float32)
            upcast.append(name)

    # A linear layer's bias stays in its dtype: Linear4bit casts its bias to the compute dtype
    # before using it, so either way the bias is added in the layer's own precision.
    def cast_in(module, args):
        module.lorastudy_input_dtype = args[0].dtype
        return (args[0].to(module.weight.dtype), *args[1:])

    def cast_out(module, args, output):
        return output.to(module.lorastudy_input_dtype)

    for name, module in model.named_modules():
        if name in linears:
            module.register_forward_pre_hook(cast_in)
            module.register_forward_hook(cast_out)
    return upcast


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


def pinned(model: ModelConfig, resolved: dict | None) -> ModelConfig:
    """The model config with a hub model's revision set to the commit it resolved to."""
    if not resolved or resolved.get("kind") != "hub commit":
        return model
    return dataclasses.replace(model, revision=resolved["resolved"])


def folder_sha256(folder: Path) -> str:
    """One digest of every file in a folder (names and contents), streamed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode() + b"\0")
        sha256_file(file, digest)
    return digest.hexdigest()


# ------------------------------------------------------------------------- the tiny model
# Its folder name carries a version (builtin_models.TINY): bump it when this recipe changes,
# so cached builds are not reused.


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
    import torch
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
