"""Deterministic synthetic data in the real datasets' schemas, for studies without a network.

- OpenMathInstruct-2: problem, generated_solution, expected_answer, problem_source
- ai2_arc: id, question, choices{text,label}, answerKey
- squad: id, title, context, question, answers{text,answer_start}

The generators are small templates (word problems with numeric answers, four-choice
category questions, short biographies with extractive answers). The same generators, with
other seeds, write the text the built-in tiny model is pretrained on, so the smoke study's
base model knows the domain a little and fine-tuning has something to build on.
"""

from __future__ import annotations

import random

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dan",
    "Ella",
    "Finn",
    "Grace",
    "Hugo",
    "Iris",
    "Jack",
    "Kate",
    "Leo",
    "Mia",
    "Noah",
    "Olive",
    "Paul",
    "Rosa",
    "Sam",
    "Tara",
    "Vic",
]


SURNAMES = [
    "Adams",
    "Baker",
    "Clark",
    "Diaz",
    "Evans",
    "Fox",
    "Gray",
    "Hill",
    "Irwin",
    "Jones",
    "King",
    "Lopez",
    "Moore",
    "Nash",
    "Owens",
    "Price",
    "Reed",
    "Stone",
    "Turner",
    "Wells",
]


OBJECTS = [
    "apples",
    "books",
    "coins",
    "pencils",
    "stickers",
    "marbles",
    "cookies",
    "cards",
    "shells",
    "stamps",
    "flowers",
    "toys",
]


CITIES = [
    "Paris",
    "Lima",
    "Oslo",
    "Cairo",
    "Tokyo",
    "Dublin",
    "Quito",
    "Madrid",
    "Seoul",
    "Nairobi",
    "Vienna",
    "Boston",
    "Denver",
    "Lisbon",
    "Prague",
    "Sydney",
]


JOBS = [
    "teacher",
    "doctor",
    "painter",
    "farmer",
    "pilot",
    "baker",
    "nurse",
    "writer",
    "chemist",
    "sailor",
    "lawyer",
    "carpenter",
]


CATEGORIES = {
    "mammal": ["dog", "cat", "horse", "whale", "bat", "cow", "lion", "rabbit", "goat", "mouse"],
    "bird": ["robin", "eagle", "penguin", "owl", "sparrow", "parrot", "crow", "duck"],
    "fish": ["salmon", "trout", "shark", "tuna", "cod", "carp", "eel"],
    "insect": ["ant", "bee", "beetle", "butterfly", "fly", "moth", "wasp"],
    "metal": ["iron", "copper", "gold", "silver", "zinc", "tin", "nickel"],
    "gas at room temperature": ["oxygen", "helium", "neon", "nitrogen", "argon", "hydrogen"],
    "planet": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune", "Uranus"],
    "vegetable": ["carrot", "potato", "onion", "cabbage", "pea", "spinach", "leek"],
}


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _pronoun(name: str) -> str:
    return "She" if name in {"Ava", "Chloe", "Ella", "Grace", "Iris", "Kate", "Mia", "Olive", "Rosa", "Tara"} else "He"


def math_problem(rng: random.Random) -> dict:
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        answer = a + b
        problem = f"{name} has {a} {obj}. {_pronoun(name)} gets {b} more. How many {obj} does {name} have now?"
        steps = f"{name} has {a} + {b} = {answer} {obj}."
    elif kind == 1:
        b, answer = rng.randint(1, 9), rng.randint(1, 9)
        a = answer + b
        problem = f"{name} has {a} {obj} and gives away {b}. How many {obj} are left?"
        steps = f"{name} has {a} - {b} = {answer} {obj} left."
    elif kind == 2:
        a, b = rng.randint(2, 5), rng.randint(2, 5)
        answer = a * b
        problem = f"{name} buys {a} boxes with {b} {obj} in each box. How many {obj} does {name} buy?"
        steps = f"{name} buys {a} * {b} = {answer} {obj}."
    else:
        b, answer = rng.randint(2, 5), rng.randint(2, 5)
        a = answer * b
        problem = f"{name} shares {a} {obj} equally among {b} friends. How many {obj} does each friend get?"
        steps = f"Each friend gets {a} / {b} = {answer} {obj}."
    return {
        "problem": problem,
        "generated_solution": f"{steps} The answer is \\boxed{{{answer}}}.",
        "expected_answer": str(answer),
        "problem_source": "synthetic_gsm8k",
    }


def openmath_rows(n: int, seed: int) -> list[dict]:
    """n distinct problems (distinct problem text), so train and held-out sets cannot overlap."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        row = math_problem(rng)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
    return rows


def arc_question(rng: random.Random, index: int) -> dict:
    category = rng.choice(list(CATEGORIES))
    answer = rng.choice(CATEGORIES[category])
    others = [m for c, members in CATEGORIES.items() if c != category for m in members]
    choices = rng.sample(others, 3) + [answer]
    rng.shuffle(choices)
    # ARC uses digit labels for some questions; keep a few so label handling is exercised.
    labels = ["1", "2", "3", "4"] if index % 5 == 4 else ["A", "B", "C", "D"]
    return {
        "id": f"Synth_{index:05d}",
        "question": f"Which of these is {_article(category)} {category}?",
        "choices": {"text": choices, "label": labels},
        "answerKey": labels[choices.index(answer)],
    }


def arc_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [arc_question(rng, i) for i in range(n)]


# Questions that look like real ARC ones: each distinct, with choices of several words, so a
# scorer that shares work between identical questions or one-token answers is not flattered.
SCIENCE_OBJECTS = [
    "ice cube",
    "metal spoon",
    "glass of water",
    "wooden block",
    "rubber ball",
    "candle",
    "copper wire",
    "plastic bottle",
    "iron nail",
    "paper towel",
    "balloon",
    "magnet",
]


SCIENCE_PLACES = [
    "in direct sunlight",
    "inside a freezer",
    "on a warm stove",
    "in a dark closet",
    "under running water",
    "next to a fan",
    "in a sealed jar",
    "outside in the rain",
]


SCIENCE_TIMES = ["ten minutes", "one hour", "a whole day", "three days", "a week", "two weeks"]


SCIENCE_CHOICES = [
    "It becomes warmer than the air around it",
    "Its mass increases by a large amount",
    "It changes from a solid to a liquid",
    "Nothing about it changes at all",
    "It begins to rust slowly",
    "It loses some of its water to evaporation",
    "It becomes attracted to other metals",
    "Its color fades because of the light",
    "It shrinks as it becomes colder",
    "It floats higher in the water",
    "It conducts electricity much better",
    "Its surface becomes covered in frost",
]


SCIENCE_TOOLS = [
    "a graduated cylinder",
    "a spring scale",
    "a thermometer",
    "a meter stick",
    "a hand lens",
    "a stopwatch",
    "a triple beam balance",
    "a compass",
]


SCIENCE_QUANTITIES = ["mass", "temperature", "length", "volume", "weight", "speed of fall"]


def arc_science_rows(n: int, seed: int) -> list[dict]:
    """n distinct ARC-style questions with four choices of several words each."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        obj = rng.choice(SCIENCE_OBJECTS)
        if rng.random() < 0.5:
            place, time = rng.choice(SCIENCE_PLACES), rng.choice(SCIENCE_TIMES)
            question = f"A student leaves a {obj} {place} for {time}. Which change is most likely to be observed?"
            choices = rng.sample(SCIENCE_CHOICES, 4)
        else:
            quantity = rng.choice(SCIENCE_QUANTITIES)
            question = (
                f"Which tool should a student use to measure the {quantity} of a {obj} in a classroom experiment?"
            )
            choices = [
                f"{tool} and a data table" if rng.random() < 0.5 else tool for tool in rng.sample(SCIENCE_TOOLS, 4)
            ]
        if question in seen:
            continue
        seen.add(question)
        labels = ["A", "B", "C", "D"]
        rows.append(
            {
                "id": f"Science_{len(rows):05d}",
                "question": question,
                "choices": {"text": choices, "label": labels},
                "answerKey": rng.choice(labels),
            }
        )
    return rows


def squad_passage(rng: random.Random) -> tuple[str, str, list[tuple[str, list[str]]]]:
    """A short biography and its questions with reference answers (spans of the passage)."""
    first, last = rng.choice(NAMES), rng.choice(SURNAMES)
    city, city2 = rng.sample(CITIES, 2)
    year, job = rng.randint(1800, 1999), rng.choice(JOBS)
    he = _pronoun(first)
    context = (
        f"{first} {last} was born in {city} in {year}. {he} worked as a {job} "
        f"for many years and later moved to {city2}."
    )
    questions = [
        (f"Where was {first} {last} born?", [city]),
        (f"In what year was {first} {last} born?", [str(year)]),
        (f"What did {first} {last} work as?", [f"a {job}", job]),
        (f"Where did {first} {last} move to?", [city2]),
    ]
    return f"{first} {last}", context, questions


def squad_rows(n: int, seed: int) -> list[dict]:
    rng, rows = random.Random(seed), []
    while len(rows) < n:
        title, context, questions = squad_passage(rng)
        for question, answers in rng.sample(questions, 2):
            if len(rows) == n:
                break
            rows.append(
                {
                    "id": f"synth{len(rows):06d}",
                    "title": title,
                    "context": context,
                    "question": question,
                    "answers": {"text": answers, "answer_start": [context.find(a) for a in answers]},
                }
            )
    return rows
