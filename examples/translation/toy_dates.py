"""Write the toy date-normalisation task: "tuesday , 9 may 1998" → "1998-05-09".

Sources are dates in a dozen human formats (weekday or not, month names long/short, day
before/after month, ordinals); targets are ISO dates. Tokens are space-separated so the space
tokenizer sees "1 9 9 8" as digits the model must copy and reorder: attention learns it in about
a minute on a CPU. Usage: ``python toy_dates.py OUT_DIR [--train N] [--seed S]`` writes
``{train,valid,test}.{src,tgt}`` (valid and test: 500 pairs each, disjoint dates from train).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]  # fmt: skip
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spell(date: dt.date, rng: random.Random) -> str:
    """One human rendering of ``date``, digits separated by spaces."""
    month = MONTHS[date.month - 1]
    month = month[:3] if rng.random() < 0.3 else month
    day = ordinal(date.day) if rng.random() < 0.3 else str(date.day)
    forms = [
        f"{day} {month} {date.year}",
        f"{month} {day} , {date.year}",
        f"{month} {day} {date.year}",
        f"{day:>2} / {date.month:02d} / {date.year}".strip(),
        f"the {ordinal(date.day)} of {month} {date.year}",
    ]
    text = rng.choice(forms)
    if rng.random() < 0.4:
        text = f"{DAYS[date.weekday()]} , {text}"
    return " ".join(_split_digits(word) for word in text.split())


def _split_digits(word: str) -> str:
    """``"1998"`` → ``"1 9 9 8"``, ``"9th"`` → ``"9 th"``; other words stay whole."""
    digits = word.rstrip("abcdefghijklmnopqrstuvwxyz")
    return " ".join([*digits, word[len(digits) :]] if word[len(digits) :] else digits) or word


def iso(date: dt.date) -> str:
    """``1998-05-09`` as tokens: ``"1 9 9 8 - 0 5 - 0 9"``."""
    return " ".join(date.isoformat())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    start, span = dt.date(1950, 1, 1), (dt.date(2049, 12, 31) - dt.date(1950, 1, 1)).days
    dates = [start + dt.timedelta(days=d) for d in rng.sample(range(span), args.train + 1000)]
    splits = {"train": dates[: args.train], "valid": dates[args.train : args.train + 500],
              "test": dates[args.train + 500 :]}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    for name, items in splits.items():
        pairs = [(spell(d, rng), iso(d)) for d in items]
        (args.out / f"{name}.src").write_text("".join(s + "\n" for s, _ in pairs))
        (args.out / f"{name}.tgt").write_text("".join(t + "\n" for _, t in pairs))


if __name__ == "__main__":
    main()
