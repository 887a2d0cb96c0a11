#!/usr/bin/env python
"""Writes the example data of params/your-data.yaml (run from the checkout: python examples/generate.py).

- examples/chat.jsonl: 240 conversations in the `messages` format (TRL's conversational format):
  arithmetic questions answered in one short sentence, some with a system turn, some with a
  follow-up question, so the loss falls on every assistant turn;
- examples/lm_eval/arithmetic_mc.jsonl and arithmetic_gen.jsonl: 60 questions each for the two
  lm-evaluation-harness tasks beside them (a multiple-choice one, scored by log-likelihood, and a
  generation one, scored by exact match of the first number in the reply).

Seeded, so the files are the same on every run; the evaluation questions use other numbers than
the training ones (a different range), so no item is in both.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
SYSTEM = "You are a calculator. Answer in one short sentence."


def question(rng: random.Random, low: int, high: int) -> tuple[str, int, int, str, int]:
    op = rng.choice(list(OPS))
    a, b = rng.randint(low, high), rng.randint(2 if op == "times" else low, 9 if op == "times" else high)
    return f"What is {a} {op} {b}?", a, b, op, OPS[op](a, b)


def conversation(rng: random.Random) -> dict:
    text, a, b, op, value = question(rng, 2, 60)
    turns = [{"role": "user", "content": text}, {"role": "assistant", "content": f"{a} {op} {b} is {value}."}]
    if rng.random() < 0.3:
        turns.insert(0, {"role": "system", "content": SYSTEM})
    if rng.random() < 0.25:
        k = rng.randint(2, 5)
        turns += [
            {"role": "user", "content": f"And that times {k}?"},
            {"role": "assistant", "content": f"{value} times {k} is {value * k}."},
        ]
    return {"messages": turns}


def mc_row(rng: random.Random) -> dict:
    text, *_, value = question(rng, 61, 99)
    wrong = set()
    while len(wrong) < 3:
        guess = value + rng.choice([-11, -10, -2, -1, 1, 2, 10, 11])
        if guess != value:
            wrong.add(guess)
    choices = [str(v) for v in [value, *sorted(wrong)]]
    rng.shuffle(choices)
    return {"question": text, "choices": choices, "answer": choices.index(str(value))}


def gen_row(rng: random.Random) -> dict:
    text, *_, value = question(rng, 61, 99)
    return {"question": text, "answer": str(value)}


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{path.relative_to(HERE.parent)}: {len(rows)} rows")


def main() -> None:
    rng = random.Random(23)
    write(HERE / "chat.jsonl", [conversation(rng) for _ in range(240)])
    write(HERE / "lm_eval" / "arithmetic_mc.jsonl", [mc_row(rng) for _ in range(60)])
    write(HERE / "lm_eval" / "arithmetic_gen.jsonl", [gen_row(rng) for _ in range(60)])


if __name__ == "__main__":
    main()
