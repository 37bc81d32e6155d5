"""``python -m training.ensemble MEMBER... --out DIR --version V --negatives DIR...`` — serve an
average of trained models.

Each MEMBER is a folder with a ``model_card.json`` and its TFLite file(s): a training run or
``inference/model`` (today's shipped model). The output is a run folder the rest of the tools
accept (``training.card``, ``training.repeat_noise``, ``inference.benchmark --model``, ``--install``):

- every member's TFLite file, named ``member-VERSION.tflite``, and a card that lists them; the
  classifier averages their calibrated probabilities and skin scores (``inference.classifier``),
  as ``training.loso`` scores an ensemble ``a+b``;
- ``--gate-from VERSION...``: only those members' skin heads form the "is this skin" gate (the
  others are marked ``"gate": false`` in the card); the diagnosis is still every member's mean;
- cut points and the skin gate re-chosen on the *ensemble's* validation outputs with the same
  rules as a single model (``training.cuts``, ``training.gate``): a member's own cuts do not
  hold for the average;
- test metrics of the ensemble as served, and, with ``--against CARD``, the in-source ship rule
  (test AUC per source not lower than that card's by more than ``training.loso.INSOURCE_TOLERANCE``).

Members must share input size and colour handling (checked) and be evaluated on splits that
none of them trained on: ``--splits`` (default: the first member's ``splits.csv``) must be the
splits every member was trained with (same ``--split-seed``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path


def member_files(folder: Path) -> list[tuple[str, Path]]:
    """(version, TFLite path) of a folder's model(s); a member that is itself an ensemble is flattened."""
    card = json.loads((folder / "model_card.json").read_text())
    if card.get("members"):
        return [(m["version"], folder / m["file"]) for m in card["members"]]
    return [(card["version"], folder / "model.tflite")]


def compose_card(cards: list[dict], members: list[dict], version: str) -> dict:
    """The ensemble's card: the first member's description, every member listed, cut points to be
    re-chosen (``training.cuts`` / ``training.gate`` overwrite the thresholds and metrics)."""
    first = cards[0]
    for c in cards[1:]:
        if c["input"]["size"] != first["input"]["size"] or bool(c["input"].get("colour_constancy", True)) != bool(first["input"].get("colour_constancy", True)):
            raise ValueError(f"members differ in input: {c['version']} {c['input']} vs {first['version']} {first['input']}")
        if c["classes"] != first["classes"]:
            raise ValueError(f"members differ in classes: {c['version']}")
    card = json.loads(json.dumps(first))  # a deep copy
    card.update(
        version=version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        architecture=f"mean of {len(members)} models (" + "; ".join(f"{m['version']}: {m['architecture']}" for m in members) + ")",
        outputs={"diagnosis": "mean of the members' temperature-calibrated softmax", "skin": skin_output(members)},
        temperature=" / ".join(str(c["temperature"]) for c in cards) + " (per member)",
        tflite_max_abs_diff=max(float(c.get("tflite_max_abs_diff", 0.0)) for c in cards),
        members=members,
        data=list(dict.fromkeys(d for c in cards for d in c.get("data", []))),  # every member's sources, once
    )
    card["training"] = {**first["training"], "seconds": sum(int(c["training"].get("seconds", 0)) for c in cards), "members": [m["version"] for m in members]}
    card["metrics"] = {k: v for k, v in first["metrics"].items() if k == "skin_gate_val"}
    card.pop("repeat_noise", None)  # measured per served model: training.repeat_noise --record
    return card


def skin_output(members: list[dict]) -> str:
    gate = [m["version"] for m in members if m.get("gate", True)]
    if len(gate) == len(members):
        return "mean of the members' skin sigmoids"
    return f"skin sigmoid of {' and '.join(gate)} (the gate; the other members' skin heads are not used)"


def insource_verdict(test: dict, reference: dict, tolerance: float) -> tuple[bool, list[str]]:
    """The in-source ship rule: on every source the reference was tested on, test AUC (each
    source's malignant flag) not lower by more than ``tolerance``."""
    ok, lines = True, []
    for src, ref in reference.items():
        new = test.get(src, {}).get("auc_malignant")
        old = ref.get("auc_malignant")
        if new is None or old is None:
            continue
        passed = new >= old - tolerance - 1e-9
        ok &= passed
        lines.append(f"{src:12s} test AUC {old:.4f} → {new:.4f} ({new - old:+.4f}) {'ok' if passed else 'FAILS'}")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", nargs="+", type=Path, help="folders with model_card.json and the model (a run, or inference/model)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--splits", type=Path, help="splits.csv every member was trained with (default: the first member's)")
    p.add_argument("--negatives", nargs="*", default=[], help="folders of non-skin photos (training.gate)")
    p.add_argument("--gate-from", nargs="+", metavar="VERSION", help="members whose skin heads alone form the skin gate (default: all)")
    p.add_argument("--against", type=Path, help="a model_card.json whose test AUCs the ensemble must keep (in-source rule)")
    p.add_argument("--install", action="store_true", help="copy the ensemble into inference/model")
    args = p.parse_args(argv)
    if len(args.members) < 2:
        p.error("an ensemble needs two members or more")
    for m in args.members:
        if not (m / "model_card.json").exists():
            p.error(f"{m} has no model_card.json")
    splits = args.splits or args.members[0] / "splits.csv"
    if not splits.exists():
        p.error(f"{splits} does not exist (--splits)")

    from training import cuts, gate
    from training.card import install
    from training.loso import INSOURCE_TOLERANCE

    args.out.mkdir(parents=True, exist_ok=True)
    cards, members = [], []
    for folder in args.members:
        card = json.loads((folder / "model_card.json").read_text())
        for version, path in member_files(folder):
            name = f"member-{version}.tflite"
            if path.resolve() != (args.out / name).resolve():
                shutil.copy(path, args.out / name)
            members.append({"file": name, "version": version, "architecture": card["architecture"]})
            if args.gate_from:
                members[-1]["gate"] = version in args.gate_from
        cards.append(card)
    if args.gate_from and set(args.gate_from) - {m["version"] for m in members}:
        p.error(f"--gate-from {sorted(set(args.gate_from) - {m['version'] for m in members})}: not a member")
    card = compose_card(cards, members, args.version)
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    if splits.resolve() != (args.out / "splits.csv").resolve():
        shutil.copy(splits, args.out / "splits.csv")

    # Cut points, test metrics and validation AUCs of the average as served (cuts.py fills them).
    (args.out / "report.json").write_text(json.dumps({"members": [m["version"] for m in members]}, indent=2) + "\n")
    cuts.main([str(args.out)])
    # Non-skin photos: only those no member trained on (each member's training seed split the
    # first ``training.negatives`` of them; a card without the count was given the whole list).
    held = sorted({f"{c['training']['seed']}" + (f":{c['training']['negatives']}" if c["training"].get("negatives") else "") for c in cards})
    gate.main([str(args.out), "--negatives", *args.negatives, "--held-out-from", *held])
    verdict = 0
    if args.against:
        reference = json.loads(args.against.read_text())["metrics"]["test"]
        test = json.loads((args.out / "model_card.json").read_text())["metrics"]["test"]
        ok, lines = insource_verdict(test, reference, INSOURCE_TOLERANCE)
        print("\n".join(lines))
        print(f"in-source rule (drop ≤ {INSOURCE_TOLERANCE}) against {args.against}: {'kept' if ok else 'BROKEN'}")
        verdict = 0 if ok else 1
    if args.install:
        if verdict:
            print("not installed: the in-source rule is broken", file=sys.stderr)
            return verdict
        print(f"installed into {install(args.out)}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
