"""Which model a study loads: a built-in model's folder, a local folder or a hub id, and what it
resolved to (a hub commit, or the SHA-256 of a folder's files), so every step loads the same
weights."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

from ..study.schema import ModelConfig, is_local
from ..util.files import sha256_file
from .builtin import builtin_model


def model_folder(model: ModelConfig, models_dir: Path, resolve: Callable[[str], Path]) -> str:
    """Where the model is, or will be once built or downloaded; builds nothing (for `check`)."""
    spec = builtin_model(model.name)
    if spec is not None:
        return str(spec.path(models_dir))
    return str(resolve(model.name)) if is_local(model.name) else model.name


def model_path(
    model: ModelConfig, models_dir: Path, resolve: Callable[[str], Path], log: Callable[[str], None] = print
) -> str:
    """The path or hub id `from_pretrained` gets; builds a built-in model on first use."""
    if model.name.startswith("builtin:"):
        spec = builtin_model(model.name)
        if spec is None:
            raise ValueError(f"model.name: unknown built-in model {model.name!r}")
        return str(spec.ensure(models_dir, log))
    if is_local(model.name):
        return str(resolve(model.name))
    return model.name


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
