"""``python -m inference [--json] [--force] PATH...`` — screen image files.

One record per input, in input order.  Exit code 0 even for rejected or unreadable images;
2 only for usage errors (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference.labels import CLASS_NAMES_EN
from inference.screener import Screener, ScreeningResult


def _record(path: str, screener: Screener, force: bool) -> dict:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        res = ScreeningResult(False, ["unreadable_file"], model=screener.version)
        out = {"path": path, **res.to_dict(), "error": exc.strerror or type(exc).__name__}
        return out
    return {"path": path, **screener.screen(data, force=force).to_dict()}


def _classes(rec: dict) -> str:
    """The score and the top class in words: the risk follows the *sum* of the malignant classes,
    so a melanoma can read "risk HIGH" while the single most likely class is a nevus."""
    top = rec["top_class"]
    share = (rec.get("probabilities") or {}).get(top)
    return (
        f"malignancy {rec['malignancy']:.3f} (melanoma + basal cell carcinoma + actinic keratosis/SCC)  "
        f"most likely single class: {CLASS_NAMES_EN.get(top, top)} [{top}]" + (f" {share:.2f}" if share is not None else "")
    )


def _text(rec: dict) -> str:
    head = f"{rec['path']}: "
    if rec["accepted"]:
        head += f"risk {rec['risk'].upper()}  {_classes(rec)}"
    else:
        head += "NOT ACCEPTED (" + ", ".join(rec["reasons"]) + ")"
        if rec.get("risk"):
            head += f"  [forced: risk {rec['risk']}  {_classes(rec)}]"
    if rec.get("ms", {}).get("total") is not None:
        head += f"  {rec['ms']['total']:.1f} ms"
    return head


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inference", description="Screen skin-lesion photos (not a diagnosis).")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per line and input")
    p.add_argument("--force", action="store_true", help="classify photos that fail the quality gate too")
    p.add_argument("--model", help="a .tflite model (default: the shipped one)")
    p.add_argument("--card", help="its model_card.json (default: next to the model)")
    args = p.parse_args(argv)
    screener = Screener.load(args.model, args.card)
    for path in args.paths:
        rec = _record(path, screener, args.force)
        print(json.dumps(rec, ensure_ascii=False) if args.json else _text(rec), flush=True)
    if not args.json:
        print("This is a screening aid, not a diagnosis. See a doctor about any spot that worries you.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
