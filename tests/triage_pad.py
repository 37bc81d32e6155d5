"""Where PAD-UFES-20's phone photos end up when each is answered with its patient's own recorded
answers: the share of malignant, precancerous (actinic keratosis) and benign lesions told "see a
doctor within 2 weeks", "within a month" or "watch", under the rule before NG12's checklist
("any ticked sign = 2 weeks") and under the checklist (``bot.medical.advice.answers_level``).

    python -m tests.triage_pad [--data ../shared/data/pad_ufes20]

The photo's level comes from the shipped model exactly as served (``inference.Screener``). Most of
these photos were in a member's training split, so the image half is optimistic there; the
"unseen patients" rows keep the validation and test patients only (no member trained on them). PAD asks no shape/colour or inflammation question; its
two diameters give "wider than 7 mm"; "UNK" answers count as not ticked.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from pathlib import Path

from bot.medical import advice

PAD_COLUMNS = {"changed": "changed", "grew": "grew", "bled": "bleed", "itched": "itch", "hurt": "hurt", "elevated": "elevation"}


def answers_of(row: dict) -> dict[str, bool]:
    out = {sign: row.get(col) == "True" for sign, col in PAD_COLUMNS.items()}
    sizes = [float(row[c]) for c in ("diameter_1", "diameter_2") if row.get(c) not in (None, "", "UNK")]
    out["wide"] = bool(sizes) and max(sizes) >= 7.0
    return out


def told(level: str) -> str:
    """The ``bot_advice_total{within_days}`` label the bot records for this level, in words."""
    return {"14": "within 2 weeks", "30": "within a month", "watch": "watch"}[advice.within_days(level)]


def old_level(risk: str, answers: dict[str, bool]) -> str:
    """Before: any of the six PAD signs ticked meant the signs interval (high stayed high)."""
    return advice.stronger(risk, "signs") if any(answers[s] for s in PAD_COLUMNS) else risk


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.triage_pad", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "data" / "pad_ufes20")
    args = ap.parse_args(argv)
    from inference import Screener

    screener = Screener.load()
    with open(args.data / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    from training.data import read_source, split_source
    from training.served_cache import SPLIT_SEED

    # Patients no member of the shipped model trained on: the validation and test splits.
    unseen = {s.path.name for part in ("val", "test") for s in split_source(read_source(args.data), SPLIT_SEED)[part]}
    tally = {f"{rule}{scope}": {group: Counter() for group in ("malignant", "actinic keratosis", "benign")} for scope in ("", ", unseen patients") for rule in ("before", "NG12 checklist")}
    skipped = 0
    for row in rows:
        result = screener.screen((args.data / row["image"]).read_bytes())
        if not result.accepted:
            skipped += 1
            continue
        group = "malignant" if row["malignant"] == "1" else ("actinic keratosis" if row["diagnostic"] == "ACK" else "benign")
        answers = answers_of(row)
        for scope in ("", ", unseen patients") if Path(row["image"]).name in unseen else ("",):
            tally[f"before{scope}"][group][told(old_level(result.risk, answers))] += 1
            tally[f"NG12 checklist{scope}"][group][told(advice.answers_level(result.risk, answers))] += 1
    print(f"PAD-UFES-20: {len(rows) - skipped} photos answered ({skipped} refused by the photo checks)")
    print("| rule | lesions | n | within 2 weeks | within a month | watch |")
    print("|---|---|---|---|---|---|")
    for rule, groups in tally.items():
        for group, c in groups.items():
            n = sum(c.values())
            shares = " | ".join(f"{c[k] / n:.2f}" if n else "—" for k in ("within 2 weeks", "within a month", "watch"))
            print(f"| {rule} | {group} | {n} | {shares} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
