"""How far QLoRA's 4-bit base is from the weights LoRA trains on: the relative
reconstruction error ||W - dequant(quant(W))||_F / ||W||_F of the quantized linear layers,
over all of them and by layer type (q_proj, up_proj, ...).

It is measured on the model QLoRA actually trains: each bitsandbytes Linear4bit layer is
dequantized and compared with the checkpoint's weight in the dtype the base loads in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import torch


def roundtrip(weight: torch.Tensor, quant_type: str = "nf4", double_quant: bool = True, blocksize: int = 64):
    """`weight` quantized to 4 bits as bitsandbytes' Linear4bit stores it, then dequantized."""
    import bitsandbytes.functional as F

    packed, state = F.quantize_4bit(
        weight, blocksize=blocksize, compress_statistics=double_quant, quant_type=quant_type
    )
    return F.dequantize_4bit(packed, state)


def relative_errors(pairs: Iterable[tuple[str, torch.Tensor, torch.Tensor]]) -> dict:
    """Relative Frobenius error over (name, original, reconstructed) pairs: overall, by layer
    type (the name's last part) and the worst layer. Sums of squares are pooled, so a type's
    figure weighs its layers by their size, as the overall one does."""
    error: dict[str, float] = {}
    norm: dict[str, float] = {}
    layers, weights, worst = 0, 0, ("", -1.0)
    for name, original, reconstructed in pairs:
        original, reconstructed = original.detach().float(), reconstructed.detach().float()
        # Squares summed in float64: a layer has millions of them.
        e = float((original - reconstructed).pow(2).sum(dtype=torch.float64))
        n = float(original.pow(2).sum(dtype=torch.float64))
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
    """(name, checkpoint weight, dequantized weight) for each 4-bit linear layer of `model`."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F

    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        weight = original(f"{name}.weight")
        if weight is None:
            continue
        reconstructed = F.dequantize_4bit(module.weight.data, module.weight.quant_state)
        yield name, weight.to(device=reconstructed.device, dtype=reconstructed.dtype), reconstructed


def checkpoint_reader(path: str) -> Callable[[str], torch.Tensor | None]:
    """A tensor of the safetensors checkpoint in a model folder (or a hub model already in the
    local cache) by name; None for a name it does not hold."""
    from safetensors import safe_open

    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(path, allow_patterns=["*.safetensors", "*.json"], local_files_only=True))
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
