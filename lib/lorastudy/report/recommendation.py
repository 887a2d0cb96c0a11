"""What the executive summary concludes between two trained methods: their costs relative to
each other (memory, time) and a recommendation that follows from the verdicts and the costs."""

from __future__ import annotations

import pandas as pd

from .. import tasks
from ..methods.declaration import Method
from .format import margin

# A saving below this share of the other method's peak is reported, but not treated as a reason to switch.
MEANINGFUL_SAVING_PCT = 10.0


def _pct_change(new: float, old: float) -> float:
    return 100.0 * (new - old) / old


def _resource(resources: pd.DataFrame, method: str, phase: str) -> pd.Series | None:
    rows = resources[(resources["method"] == method) & (resources["phase"] == phase)]
    return rows.iloc[0] if len(rows) else None


def train_row(resources: pd.DataFrame, method: str) -> pd.Series | None:
    """A method's training costs (resources.csv's train row), None where it did not train."""
    return _resource(resources, method, "train")


def memory_kind_label(kind: str) -> str:
    return "peak GPU memory used (device-wide, sampled)" if kind == "cuda" else "peak process memory (RSS, CPU)"


def _training_weights(row: pd.Series) -> float:
    """The weights a method holds while it trains: after k-bit preparation where that runs."""
    prepared = row.get("weights_after_prepare_mb")
    return float(prepared) if prepared is not None and not pd.isna(prepared) else float(row["weights_mb"])


def cost_sentences(resources: pd.DataFrame, a: Method, b: Method) -> tuple[list[str], dict[str, float]]:
    """Method a's training memory saving and time cost relative to method b's, in percent."""
    rb, ra = _resource(resources, b.name, "train"), _resource(resources, a.name, "train")
    if rb is None or ra is None:
        return [], {}
    figures = {
        "memory_pct": _pct_change(ra["peak_memory_mb"], rb["peak_memory_mb"]),
        "weights_pct": _pct_change(_training_weights(ra), _training_weights(rb)),
        "time_pct": _pct_change(ra["wall_s"], rb["wall_s"]),
    }

    def change(pct: float, less: str, more: str) -> str:
        return f"{abs(pct):.1f}% {less if pct < 0 else more}"

    label = memory_kind_label(rb["memory_kind"])
    runs = int(rb.get("n_seeds", 1) or 1)
    noise = (
        "one training run per method, so run-to-run timing noise is not estimated"
        if runs == 1
        else f"mean of {runs} runs per method"
    )
    sentences = [
        f"Memory: {a.title}'s {label} during training was {change(figures['memory_pct'], 'lower', 'higher')} than "
        f"{b.title}'s ({ra['peak_memory_mb']:,.1f} MB vs {rb['peak_memory_mb']:,.1f} MB). Its base weights took "
        f"{change(figures['weights_pct'], 'less', 'more')} memory while training ({_training_weights(ra):,.2f} MB vs "
        f"{_training_weights(rb):,.2f} MB; after k-bit preparation, which upcasts the weights it does not "
        f"quantize to fp32, where it runs).",
        f"Time: {a.title}'s training took {change(figures['time_pct'], 'less', 'longer')} "
        f"than {b.title}'s ({ra['wall_s']:,.1f} s vs {rb['wall_s']:,.1f} s; {ra['tokens_per_s']:,.0f} vs "
        f"{rb['tokens_per_s']:,.0f} tokens/s); {noise}.",
    ]
    return sentences, figures


def _titles(pairs: list[pd.Series], kind: str, cfg=None) -> list[str]:
    return [tasks.get(row["task"], cfg).title for row in pairs if row["verdict"] == kind]


def _equivalence_note(pairs: list[pd.Series], cfg=None) -> str:
    """Where the verdicts between the two said the methods are equivalent, and where the study
    could not tell."""
    parts = []
    equivalent = [r for r in pairs if r["verdict"] == "equivalent"]
    if equivalent:
        margins = ", ".join(f"{tasks.get(r['task'], cfg).title} (within {margin(r['margin'])})" for r in equivalent)
        parts.append(f"equivalent on {margins}")
    open_ = _titles(pairs, "inconclusive", cfg) + _titles(pairs, "cannot separate", cfg)
    if open_:
        parts.append(f"undecided on {', '.join(open_)}, where a difference beyond the margin is not ruled out")
    return f" The primary metrics are {'; '.join(parts)}." if parts else ""


def recommendation(
    comparisons: pd.DataFrame, resources: pd.DataFrame, alpha: float, a: Method, b: Method, cfg=None
) -> str:
    """A recommendation between two trained methods (a, the cheaper candidate, against b) that
    follows from the verdicts and costs; with one training run per method it says that it
    rests on one run."""
    _, figures = cost_sentences(resources, a, b)
    if not figures:
        return f"No recommendation between {b.title} and {a.title}: the study did not train both."
    own = comparisons[comparisons["primary"] & (comparisons.method_a == a.name) & (comparisons.method_b == b.name)]
    pairs = [row for _, row in own.iterrows()]
    advice = _advice(pairs, figures, a, b, cfg) + _equivalence_note(pairs, cfg)
    if any(bool(row.get("provisional", False)) for row in pairs):
        return f"Provisional, resting on one training run per method: {advice}"
    return advice


def _advice(pairs: list[pd.Series], figures: dict[str, float], a: Method, b: Method, cfg=None) -> str:
    worse, better = _titles(pairs, "worse", cfg), _titles(pairs, "better", cfg)
    saving = -figures["memory_pct"]
    time_text = f"{abs(figures['time_pct']):.1f}% {'more' if figures['time_pct'] >= 0 else 'less'} training time"
    peak_change = f"{abs(saving):.1f}% {'lower' if saving >= 0 else 'higher'}"
    if worse and saving >= MEANINGFUL_SAVING_PCT:
        return (
            f"Prefer {b.title} where {', '.join(worse)} matters: {a.title} scored measurably worse there. Choose "
            f"{a.title} only if {b.title} does not fit in memory ({a.title}'s peak training memory was {peak_change})."
        )
    if worse:
        # Nothing to trade the loss for: memory is no reason to pick it either.
        return (
            f"{b.title}: {a.title} scored measurably worse on {', '.join(worse)} and did not cut peak training "
            f"memory meaningfully (its peak was {peak_change}; this report treats a cut below "
            f"{MEANINGFUL_SAVING_PCT:.0f}% as not worth a switch)."
        )
    if saving >= MEANINGFUL_SAVING_PCT:
        extra = f" It scored measurably better on {', '.join(better)}." if better else ""
        return (
            f"{a.title}, where memory is the constraint: it cut peak training memory by {saving:.1f}% at "
            f"{time_text}, with no measurable loss on any primary metric at this n.{extra}"
        )
    return (
        f"{b.title}: here {a.title} did not cut peak training memory meaningfully (its peak was {peak_change}; this "
        f"report treats a cut below {MEANINGFUL_SAVING_PCT:.0f}% as not worth a switch) and took {time_text}; "
        f"no primary metric favoured it measurably" + (f" except {', '.join(better)}" if better else "") + "."
    )
