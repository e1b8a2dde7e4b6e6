"""Precision and recall of each auto-moderation rule on the labelled chat set.

    .venv/bin/python benchmarks/chat_moderation_eval.py [tests/data/chat_labelled.csv] [--misses]

Each row is fed in file order to one `AutoMod` with the default configuration plus the streamer's
blocked words below, at the row's time `t` (seconds) and user, so the repeat rule sees the sequences
the set contains. A rule's prediction on a row is whether that rule alone fires (not the first-match
verdict), and a row's labels list every rule that should fire. Prints a Markdown table.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from services.chat.automod import AutoMod, AutoModConfig, Rule

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "chat_labelled.csv"
BLOCKED = ["казино", "casino", "spoiler", "спойлер"]


def evaluate(path: Path, show_misses: bool = False) -> dict[Rule, tuple[int, int, int]]:
    """Returns rule -> (true positives, false positives, false negatives)."""
    automod = AutoMod(AutoModConfig(blocked_words=BLOCKED))
    counts = {rule: [0, 0, 0] for rule in Rule}
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        labels = {Rule(x) for x in row["labels"].split(";") if x}
        for rule in Rule:
            fired = automod.check(rule, row["text"], user=row["user"], now=float(row["t"])) is not None
            expected = rule in labels
            if fired and expected:
                counts[rule][0] += 1
            elif fired:
                counts[rule][1] += 1
            elif expected:
                counts[rule][2] += 1
            if show_misses and fired != expected:
                print(f"{'FP' if fired else 'FN'} {rule}: {row['text']}", file=sys.stderr)
    print(f"{len(rows)} messages from {path.name}\n")
    return {rule: (c[0], c[1], c[2]) for rule, c in counts.items()}


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    result = evaluate(Path(args[0]) if args else DEFAULT_SET, "--misses" in sys.argv)
    print("| rule | labelled | true pos. | false pos. | false neg. | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for rule, (tp, fp, fn) in result.items():
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        print(f"| {rule} | {tp + fn} | {tp} | {fp} | {fn} | {precision:.3f} | {recall:.3f} |")


if __name__ == "__main__":
    main()
