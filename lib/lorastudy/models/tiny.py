"""The recipe of the offline tiny base, `builtin:tiny-qwen3`: a small Qwen3-architecture model
and a byte-level BPE tokenizer with a chat template, pretrained briefly on synthetic domain text
(pretraining.py) and saved as an ordinary model folder, so a study on it goes through the same
`from_pretrained` code as one on a hub model (builtin.py builds it once and caches it).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

from ..util.files import atomic_path

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

    from .pretraining import pretraining_texts

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
