"""How far a quantized base is from the weights LoRA trains on: the relative reconstruction
error ||W - dequant(quant(W))||_F / ||W||_F of the quantized linear layers, over all of them
and by layer type (q_proj, up_proj, ...), and the bytes each storage format keeps.

Two measurements build on the same functions:
- training on a quantized base records the error of the model it actually trains: each
  bitsandbytes Linear4bit (or Linear8bitLt) layer is dequantized and compared with the
  checkpoint's weight in the dtype the base loads in (`reconstruction_error`);
- the 01_quantization step measures, for every linear layer a quantizer converts, the error and
  stored bytes of each format bitsandbytes offers (NF4 and FP4, with and without double
  quantization, and LLM.int8), so the report can show where the error sits, by layer type and
  depth, next to what each quantized method lost (`measure_formats`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .formats import BLOCKSIZE, FORMATS, Format, depth, pooled

if TYPE_CHECKING:
    from ..study.paths import StudyPaths
    from ..study.schema import StudyConfig


def _nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def quantize(weight: torch.Tensor, fmt: Format) -> tuple[torch.Tensor, int]:
    """`weight` stored as bitsandbytes stores it in `fmt`, dequantized, and the bytes stored: the
    packed values and the constants that scale them (block absmax, and with double quantization
    its 8-bit codes, their own absmax and offset; for LLM.int8 one scale per row), as
    resources.quantized_weights counts them."""
    import bitsandbytes.functional as F

    if fmt.bits == 8:
        # Int8Params quantizes from float16, as Linear8bitLt does on load.
        codes, scales, _ = F.int8_vectorwise_quant(weight.to(torch.float16))
        return F.int8_vectorwise_dequant(codes, scales), _nbytes(codes, scales)
    packed, state = F.quantize_4bit(
        weight, blocksize=BLOCKSIZE, compress_statistics=fmt.double_quant, quant_type=fmt.quant_type
    )
    nested = state.state2 if state.nested else None
    constants = _nbytes(state.absmax, nested.absmax if nested else None, state.offset if nested else None)
    return F.dequantize_4bit(packed, state), _nbytes(packed) + constants


def roundtrip(weight: torch.Tensor, quant_type: str = "nf4", double_quant: bool = True, blocksize: int = BLOCKSIZE):
    """`weight` quantized to 4 bits as bitsandbytes' Linear4bit stores it, then dequantized."""
    import bitsandbytes.functional as F

    packed, state = F.quantize_4bit(
        weight, blocksize=blocksize, compress_statistics=double_quant, quant_type=quant_type
    )
    return F.dequantize_4bit(packed, state)


def _squares(original: torch.Tensor, reconstructed: torch.Tensor) -> tuple[float, float]:
    """Squared error and squared norm, summed in float64: a layer has millions of squares."""
    original, reconstructed = original.detach().float(), reconstructed.detach().float()
    return (
        float((original - reconstructed).pow(2).sum(dtype=torch.float64)),
        float(original.pow(2).sum(dtype=torch.float64)),
    )


def relative_errors(pairs: Iterable[tuple[str, torch.Tensor, torch.Tensor]]) -> dict:
    """Relative Frobenius error over (name, original, reconstructed) pairs: overall, by layer
    type (the name's last part) and the worst layer. Sums of squares are pooled, so a type's
    figure weighs its layers by their size, as the overall one does."""
    error: dict[str, float] = {}
    norm: dict[str, float] = {}
    layers, weights, worst = 0, 0, ("", -1.0)
    for name, original, reconstructed in pairs:
        e, n = _squares(original, reconstructed)
        kind = name.rsplit(".", 1)[-1]
        error[kind] = error.get(kind, 0.0) + e
        norm[kind] = norm.get(kind, 0.0) + n
        layers, weights = layers + 1, weights + original.numel()
        if n > 0 and math.sqrt(e / n) > worst[1]:
            worst = (name, math.sqrt(e / n))
    if layers == 0:
        return {}
    return {
        "relative_error": math.sqrt(sum(error.values()) / sum(norm.values())),
        "by_type": {kind: math.sqrt(error[kind] / norm[kind]) for kind in sorted(error)},
        "layers": layers,
        "weights": weights,
        "worst_layer": {"name": worst[0], "relative_error": worst[1]},
    }


def quantized_layer_pairs(model, original: Callable[[str], torch.Tensor | None]):
    """(name, checkpoint weight, dequantized weight) for each 4-bit or 8-bit linear layer of `model`."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F

    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            reconstructed = F.dequantize_4bit(module.weight.data, module.weight.quant_state)
        elif isinstance(module, bnb.nn.Linear8bitLt) and getattr(module.weight, "SCB", None) is not None:
            reconstructed = F.int8_vectorwise_dequant(module.weight.data, module.weight.SCB)
        else:
            continue
        weight = original(f"{name}.weight")
        if weight is None:
            continue
        yield name, weight.to(device=reconstructed.device, dtype=reconstructed.dtype), reconstructed


def checkpoint_reader(path: str, revision: str | None = None) -> Callable[[str], torch.Tensor | None]:
    """A tensor of the safetensors checkpoint in a model folder (or a hub model already in the
    local cache, at `revision`) by name; None for a name it does not hold."""
    from safetensors import safe_open

    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(
            snapshot_download(
                path, revision=revision, allow_patterns=["*.safetensors", "*.json"], local_files_only=True
            )
        )
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = {name: folder / file for name, file in json.loads(index.read_text())["weight_map"].items()}
    else:
        single = folder / "model.safetensors"
        with safe_open(str(single), framework="pt") as handle:
            files = {name: single for name in handle.keys()}

    def read(name: str) -> torch.Tensor | None:
        if name not in files:
            return None
        with safe_open(str(files[name]), framework="pt") as handle:
            return handle.get_tensor(name)

    return read


def reconstruction_error(model, path: str, dtype: torch.dtype) -> dict:
    """The 4-bit model's relative reconstruction error against its checkpoint's weights in
    `dtype` (what the unquantized base holds); {} when no quantized layer could be matched."""
    read = checkpoint_reader(path)

    def original(name: str) -> torch.Tensor | None:
        weight = read(name)
        return None if weight is None else weight.to(dtype)

    with torch.no_grad():
        return relative_errors(quantized_layer_pairs(model, original))


def layer_rows(weights: Iterable[tuple[str, torch.Tensor]], formats: Iterable[Format] = FORMATS) -> Iterator[dict]:
    """One row per layer and format: its relative reconstruction error, the squares it is pooled
    from (so a type's, a depth's or the model's error weighs layers by size), and the bytes stored."""
    formats = list(formats)
    for name, weight in weights:
        for fmt in formats:
            reconstructed, stored = quantize(weight, fmt)
            error_sq, norm_sq = _squares(weight, reconstructed)
            yield {
                "layer": name,
                "type": name.rsplit(".", 1)[-1],
                "depth": depth(name),
                "weights": weight.numel(),
                "format": fmt.name,
                "relative_error": math.sqrt(error_sq / norm_sq) if norm_sq > 0 else float("nan"),
                "error_sq": error_sq,
                "norm_sq": norm_sq,
                "stored_bytes": stored,
                "bits_per_weight": 8 * stored / weight.numel(),
            }


def linear_layers(path: str, model_cfg) -> list[str]:
    """The linear layers a quantizer converts in the model at `path`, from its configuration
    alone (the model is built on the meta device: no weight is read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..models.loading import quantizable_linears

    config = AutoConfig.from_pretrained(
        path, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=model_cfg.trust_remote_code)
    return quantizable_linears(model)


LAYER_COLUMNS = [
    "layer",
    "type",
    "depth",
    "weights",
    "format",
    "relative_error",
    "error_sq",
    "norm_sq",
    "stored_bytes",
    "bits_per_weight",
]


def measure_formats(cfg: StudyConfig, paths: StudyPaths, log: Callable[[str], None] = print) -> dict:
    """The 01_quantization step: every linear layer a quantizer converts, read from the checkpoint
    in the dtype the 16-bit base loads in, stored in each format; writes quantization/layers.csv
    (one row per layer and format) and quantization/summary.json (per format, pooled)."""
    from .. import resources
    from ..data.datasets import pin_model
    from ..models.loading import torch_dtype
    from ..models.source import model_path
    from ..util.files import atomic_path, atomic_write_json

    cfg = pin_model(cfg, paths.data)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    names = linear_layers(path, cfg.model)
    read, dtype, device = checkpoint_reader(path, cfg.model.revision), torch_dtype(cfg.model.dtype), resources.device()

    def weights() -> Iterator[tuple[str, torch.Tensor]]:
        for name in names:
            weight = read(f"{name}.weight")
            if weight is None:
                raise ValueError(f"{path}: the checkpoint holds no weight for the linear layer {name}")
            yield name, weight.to(device=device, dtype=dtype)

    log(f"storing {len(names)} linear layers in {len(FORMATS)} formats on {device}")
    start = time.perf_counter()
    with torch.no_grad():
        rows = list(layer_rows(weights()))
    wall_s = time.perf_counter() - start
    with atomic_path(paths.quantization / "layers.csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LAYER_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "model": path,
        "dtype": cfg.model.dtype,
        "device": resources.device_name(),
        "blocksize": BLOCKSIZE,
        "wall_s": wall_s,
        "formats": {f.name: {"title": f.title, **pooled([r for r in rows if r["format"] == f.name])} for f in FORMATS},
    }
    atomic_write_json(paths.quantization / "summary.json", summary)
    log(
        "relative error by format: "
        + ", ".join(f"{f.title} {summary['formats'][f.name]['relative_error']:.4f}" for f in FORMATS)
    )
    return summary
