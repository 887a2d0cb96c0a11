"""The tiny model's pretraining corpus: synthetic domain text in which math appears only as
plain text."""

from __future__ import annotations

import random
from collections.abc import Iterator

from ..tasks.synthetic import CATEGORIES, _article, arc_question, math_problem, squad_passage


def pretraining_texts(seed: int) -> Iterator[str | tuple[str, str]]:
    """An endless stream of domain text for the tiny base model: plain text, or a
    (user message, answer) pair to be put in the chat template. Math appears only as plain
    text, so answering math in the chat format is what fine-tuning has to teach."""
    from ..tasks.squad import user_message as squad_user_message

    rng = random.Random(seed)
    while True:
        # Half of it math: below that, 800 steps are too few for the model to learn to copy
        # the problem's numbers and do the arithmetic.
        kind = rng.choices(range(4), weights=(3, 1, 1, 1))[0]
        if kind == 0:
            row = math_problem(rng)
            yield f"Problem: {row['problem']}\nSolution: {row['generated_solution']}"
        elif kind == 1:
            category = rng.choice(list(CATEGORIES))
            members = rng.sample(CATEGORIES[category], 3)
            yield " ".join(f"{m[0].upper() + m[1:]} is {_article(category)} {category}." for m in members)
        elif kind == 2:
            row = arc_question(rng, rng.randrange(10_000))
            answer = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
            yield f"Question: {row['question']}\nAnswer: {answer}"
        else:
            _, context, questions = squad_passage(rng)
            question, answers = rng.choice(questions)
            yield (squad_user_message(context, question), answers[0])
