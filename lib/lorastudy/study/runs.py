"""The runs a study derives from its methods and seeds: one per method and seed, the base (and
any method that neither trains nor evaluates what another trained) once."""

from __future__ import annotations

from .. import methods
from .schema import ConfigError, Run, StudyConfig


def runs_of(cfg: StudyConfig) -> list[Run]:
    """One run per method and seed; a method that neither trains nor evaluates what another
    trained is evaluated once (greedy decoding does not depend on the seed)."""
    found = []
    for method in cfg.methods:
        declared = methods.get(method, cfg)
        per_seed = declared.trains or declared.evaluates is not None
        for seed in cfg.seeds if per_seed else cfg.seeds[:1]:
            name = method if not per_seed or len(cfg.seeds) == 1 else f"{method}_seed{seed}"
            found.append(Run(method=method, seed=seed, name=name))
    return found


def find_run(cfg: StudyConfig, method: str, seed: int) -> Run:
    """The run that trains and evaluates `method` with `seed` (for a method evaluated once,
    its one run whatever the seed)."""
    declared = methods.get(method, cfg)
    once = not declared.trains and declared.evaluates is None
    for each in runs_of(cfg):
        if each.method == method and (each.seed == seed or once):
            return each
    raise ConfigError(
        [
            f"method {method!r} with seed {seed} is not a run of study {cfg.study!r} "
            f"(runs: {', '.join(r.name for r in runs_of(cfg))})"
        ]
    )


def trained_run(cfg: StudyConfig, run: Run) -> Run | None:
    """The run whose trained weights `run` evaluates: its own for a method that trains, the
    same seed's run of the method it evaluates for a cross-evaluation, None for the base."""
    method = methods.get(run.method, cfg)
    if method.trains:
        return run
    if method.evaluates is not None:
        return find_run(cfg, method.evaluates, run.seed)
    return None
