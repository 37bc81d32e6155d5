"""``python -m training.card RUN_DIR [--experiments FILE]`` — MODEL_CARD.md from a run's JSON.

The human-readable card is generated from ``model_card.json`` and ``report.json`` so the numbers
in prose can never drift from the ones the bot uses.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

SOURCES = {
    "ham10000": "HAM10000 (dermoscopy)",
    "isic2017": "ISIC 2017 (dermoscopy, other clinics)",
    "pad_ufes20": "PAD-UFES-20 (smartphone)",
    "sd198": "SD-198 subset (clinical photos)",
}


def _f(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def runs_table(runs: list[dict], shipped: str) -> list[str]:
    """The "Full trainings compared" section: one row per run in ``docs/model/runs.json``."""
    srcs = list(SOURCES)
    out = ["", "## Full trainings compared (chosen on validation mean AUC, test only confirms; rows with the same seed share splits)", ""]
    out.append("| model | what changed | seed | val mean | " + " | ".join(f"val {s}" for s in srcs) + " | " + " | ".join(f"test {s}" for s in srcs) + " | minutes |")
    out.append("|---|---|---|---|" + "---|" * (2 * len(srcs) + 1))
    for r in runs:
        mark = " (shipped)" if r["version"] == shipped else ""
        out.append(
            f"| {r['version']}{mark} | {r['change']} | {r.get('seed', '—')} | {_f(r.get('val_mean'))} | "
            + " | ".join(_f(r.get("val", {}).get(s)) for s in srcs)
            + " | "
            + " | ".join(_f(r.get("test", {}).get(s)) for s in srcs)
            + f" | {r.get('minutes', '—')} |"
        )
    out += ["", "Validation AUC counts the malignant group (mel + bcc + akiec); test AUC uses each source's own malignant flag."]
    return out


def loso_section(loso: dict, external: dict | None = None) -> list[str]:
    """The card's leave-one-source-out section (``training.loso`` results, and optionally the
    served model scored on sources it never saw, ``training.external``)."""
    from training.loso import LOSO_CUT, SHIP_MARGIN, markdown

    proto = loso.get("_protocol", {})
    out = [
        "",
        "## Leave-one-source-out (how a recipe does on a clinic it never saw)",
        "",
        f"Each source is held out in turn; the recipe is fitted on the others and scored on all of the held-out source. "
        f"Primary AUC: melanoma vs rest (P(mel)) for dermoscopy sources, malignant vs rest for phone/clinical and the mixed archive. "
        f"Protocol (a proxy that ranks recipes, not the shipped model's numbers): frozen ImageNet MobileNetV2 α0.5 up to `{LOSO_CUT}`, "
        f"{proto.get('views', '?')} augmented views per image cached once, then the last block, `Conv_1` and the head fine-tuned "
        f"(1 + {proto.get('epochs', '?')} epochs, seed {proto.get('seed', '?')}). Ship rule, fixed before the runs: mean LOSO AUC "
        f"+{SHIP_MARGIN} over today's recipe, in-source test not lower by more than 0.01 on today's sources, safety rules kept.",
        "",
        "Reproduce: `python -m training.loso --data ../shared/data/* --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5 "
        "--cache runs/loso/cache --recipes today all7 all7_mel all7_lowres all7_mel_lowres --out docs/model/loso.json` "
        "(table: `--markdown`).",
        "",
        markdown(loso),
    ]
    if external:
        out += ["", f"The served model {external.get('model', '')} on whole sources it never saw (`python -m training.external`):", ""]
        out += ["| source | n | AUC melanoma (dermoscopic) | AUC malignant |", "|---|---|---|---|"]
        for src, m in external.items():
            if isinstance(m, dict) and m.get("unseen"):
                out.append(f"| {src} | {m['n']} | {_f(m.get('auc_melanoma'))} | {_f(m.get('auc_malignant'))} |")
    return out


def candidates_section(frozen: dict, baseline: dict, answers: dict | None = None) -> list[str]:
    """Model v3's candidates under LOSO: image-only rows (``training.frozen_loso``) next to the
    shipped recipe, and the rows with the user's answers (PAD-UFES-20, the only source that has
    them: ``training.frozen_loso``'s fusion and ``training.answers``)."""
    from training.frozen_loso import report

    out = [
        "",
        "## Candidates (\"Model v3\", not shipped): frozen features of three networks, and the user's answers",
        "",
        "Not shipped (the rule and why: docs/model/HISTORY.md, \"Model v3\"). Image only, leave-one-source-out, "
        "AUC melanoma for dermoscopy sources and malignant for the others; \"benign called low\" and \"sensitivity at low\" "
        "use the low cut chosen without the held-out source. `Cinner`: C chosen per held-out source by an inner LOSO over "
        "the other six; the other rows' C was swept on the outer folds (optimistic).",
        "",
        report(frozen, baseline),
    ]
    if answers:
        rule = answers.get("served_rule", {})
        out += [
            "",
            f"With the answers (malignant AUC; {answers['model']} on PAD-UFES-20's held-out patients, {answers['n']} photos, "
            f"{answers['malignant']} malignant): image only {_f(answers['auc_image'])}, image + answers {_f(answers['auc_fused'])} "
            f"(gain 95 % CI {answers['auc_gain_ci95'][0]:+.3f} to {answers['auc_gain_ci95'][1]:+.3f}).",
            "",
            "The rule the bot serves (a ticked sign: see a doctor; none: the photo's level), on PAD-UFES-20:",
            "",
            "| photos | malignant | no sign ticked (malignant) | sensitivity, photo only → with answers | benign called low, photo only → with answers |",
            "|---|---|---|---|---|",
        ]
        names = {"held_out": "held-out patients", "all_pad": "all photos (the model trained on the rest)"}
        for name, r in rule.items():
            out.append(
                f"| {names.get(name, name)}: {r['photos']} | {r['malignant']} | {r['no_sign_ticked']} ({r['no_sign_ticked_malignant']}) | "
                f"{r['image_only']['sensitivity']:.2f} → {r['image_and_answers']['sensitivity']:.2f} | "
                f"{r['image_only']['benign_called_low']:.2f} → {r['image_and_answers']['benign_called_low']:.2f} |"
            )
    return out


def repeat_noise_section(rn: dict | None) -> list[str]:
    """How far malignancy moves between two photos of the same unchanged lesion (followed spots)."""
    if not rn:
        return []
    per = ", ".join(f"{SOURCES.get(k, k)} {v:.3f}" for k, v in rn["per_source_rise_p95"].items())
    return [
        "## Repeat-photo noise (comparing a spot over time)",
        "",
        f"- Rise in malignancy between two photos of the same unchanged lesion, 95th percentile: **{rn['malignancy_rise_p95']:.3f}** "
        f"(median |change| {rn['malignancy_abs_median']:.3f}; {rn['lesions']} validation lesions × {rn['views_per_lesion']} views). "
        "The bot calls a larger rise a change (`bot/advice.py` `after_comparison`).",
        f"- Per source: {per}.",
        f"- The risk level differs between two such photos in {rn['level_differs']:.1%} of pairs; a level rise still counts as a change.",
        f"- Protocol: {rn['protocol']}. Reproduce: `python -m training.repeat_noise --data <the 7 sources> --record`.",
        "",
    ]


def render(card: dict, report: dict, experiments: dict | None = None, runs: list[dict] | None = None, loso: dict | None = None, external: dict | None = None,
           frozen: dict | None = None, answers: dict | None = None) -> str:  # fmt: skip
    t = card["thresholds"]
    out = [
        f"# Model card — {card['name']} {card['version']}",
        "",
        "**A screening aid, not a diagnosis.** " + card["intended_use"],
        "",
        f"- Architecture: {card['architecture']}; input {card['input']['size']}×{card['input']['size']} RGB.",
        f"- Preprocessing: {card['input']['preprocessing']}.",
        f"- Classes: {', '.join(card['classes'])}; malignancy = P({' + '.join(card['malignant_classes'])}).",
        f"- Outputs: {card['outputs']['diagnosis']}; {card['outputs']['skin']}.",
        f"- Calibration: temperature {card['temperature']} fitted on validation (folded into the logits).",
        f"- TFLite (float32) vs Keras, max |Δ| on validation images: {card['tflite_max_abs_diff']:.1e}.",
        f"- Training: seed {card['training']['seed']}, {card['training'].get('seconds', '?')} s on 2 CPU cores; splits {json.dumps(card['training']['splits'])}.",
        "",
        "## Risk levels",
        f"- `high` if malignancy ≥ **{t['high']}**; `low` if malignancy < **{t['low']}** and the top class is not mel/bcc/akiec; otherwise `moderate`.",
        f"- Chosen on: {t['chosen_on']}.",
        f"- Not-skin gate: the skin head must reach **{t['skin']}**; rule: {card['metrics']['skin_gate_val']['rule']}. "
        f"Lesion photos accepted (degraded validation views): {json.dumps(card['metrics']['skin_gate_val']['lesion_photos_accepted'])}; "
        f"non-skin photos rejected: {card['metrics']['skin_gate_val']['non_skin_rejected']} of {card['metrics']['skin_gate_val']['n_non_skin']}.",
        "",
        *repeat_noise_section(card.get("repeat_noise")),
        "## Test results per source (held-out split, never used for choices)",
        "",
        "`AUC malignant` uses each source's own malignant flag (PAD-UFES-20 counts actinic keratosis as benign); "
        "`AUC needs doctor` counts mel + bcc + akiec/ACK/SCC as positive. Sensitivity/specificity use the source's malignant flag.",
        "",
        "| source | n (malignant) | AUC malignant | AUC needs doctor | sens. at low cut | spec. at low cut | sens. at high cut | spec. at high cut | accuracy (7 classes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("test", ""), ("test_tta", " + flip TTA")):
        for src, m in report[key].items():
            out.append(
                f"| {SOURCES.get(src, src)}{label} | {m['n']} ({m['n_malignant']}) | {_f(m['auc_malignant'])} | {_f(m['auc_needs_doctor'])} | "
                f"{_f(m['at_low_cut']['sensitivity'])} | {_f(m['at_low_cut']['specificity'])} | {_f(m['at_high_cut']['sensitivity'])} | "
                f"{_f(m['at_high_cut']['specificity'])} | {_f(m['accuracy'])} |"
            )
    out += ["", "Per-class recall (test, no TTA):", ""]
    for src, m in report["test"].items():
        out.append(f"- {SOURCES.get(src, src)}: " + ", ".join(f"{k} {v:.2f}" for k, v in m["recall"].items()))
    if report.get("history"):  # an ensemble has no epochs of its own (its members' cards have them)
        out += ["", "Validation AUC (needs doctor) by epoch, the weights of the best epoch were kept:", ""]
    for h in report.get("history", []):
        out.append(f"- epoch {h['epoch']}: " + ", ".join(f"{k} {v:.3f}" for k, v in h["val_auc_needs_doctor"].items()) + f" (mean {h['mean']:.3f})")
    val, val_tta = report.get("val_auc_needs_doctor", {}), report.get("val_tta_auc_needs_doctor", {})
    if val:
        out += ["", "Test-time augmentation (4 flips) on validation: " + ", ".join(f"{s} {_f(val[s])} → {_f(val_tta.get(s))}" for s in val) + "."]
    if experiments:
        out += ["", "## Experiments (linear probes on the frozen backbone, validation AUC needs-doctor)", ""]
        srcs = list(next(iter(experiments.values())))
        out.append("| setting | " + " | ".join(srcs) + " |")
        out.append("|---|" + "---|" * len(srcs))
        for name, row in experiments.items():
            out.append(f"| {name} | " + " | ".join(_f(row.get(s)) for s in srcs) + " |")
    if runs:
        out += runs_table(runs, card["version"])
    if loso:
        out += loso_section(loso, external)
    if loso and frozen:
        out += candidates_section(frozen, loso, answers)
    out += ["", "![ROC](roc.png) ![Confusion](confusion.png) ![Calibration](calibration.png)", ""]
    out += ["## Data and licences", ""] + [f"- {d}" for d in card["data"]] + ["", f"**Licence of the weights:** {card['licence']}", ""]
    out += ["## Limitations", ""] + [f"- {x}" for x in card["limitations"]] + [""]
    return "\n".join(out)


#: Where the bot's package reads its model and card.
PACKAGE_MODEL_DIR = Path(__file__).resolve().parent.parent / "inference" / "model"


def install(run: Path, *, model: bool = True) -> Path:
    """Copy a run's card (and, unless ``model`` is False, its model files: every member of an
    ensemble) into ``inference/model``; model files the new card does not name are removed, so
    the package never carries a member nobody loads."""
    into = PACKAGE_MODEL_DIR  # read at call time: tests point it at a folder of their own
    card = json.loads((run / "model_card.json").read_text())
    files = [m["file"] for m in card.get("members", [])] or ["model.tflite"]
    if model:
        for name in files:
            shutil.copy(run / name, into / name)
        for old in into.glob("*.tflite"):
            if old.name not in files:
                old.unlink()
    shutil.copy(run / "model_card.json", into / "model_card.json")
    return into


def run_row(card: dict, report: dict, change: str) -> dict:
    """One row of ``docs/model/runs.json``: what changed, validation and test AUC, minutes."""
    val = {k: v for k, v in report.get("val_auc_needs_doctor", {}).items() if v is not None}
    return {
        "version": card["version"],
        "change": change,
        "seed": card["training"]["seed"],
        "val_mean": round(sum(val.values()) / len(val), 4) if val else None,
        "val": val,
        "test": {src: m["auc_malignant"] for src, m in report["test"].items()},
        "minutes": round(card["training"].get("seconds", 0) / 60) or None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.card", description=__doc__)
    p.add_argument("run", type=Path)
    p.add_argument("--experiments", type=Path, help="linear-probe ablations (training.experiments --out)")
    p.add_argument("--runs", type=Path, help="JSON list of full trainings to compare (docs/model/runs.json)")
    p.add_argument("--record", metavar="CHANGE", help="append this run to --runs first, described as CHANGE, and print nothing")
    p.add_argument("--loso", type=Path, help="leave-one-source-out results (training.loso --out, docs/model/loso.json)")
    p.add_argument("--external", type=Path, help="the served model on unseen sources (training.external --out)")
    p.add_argument("--frozen", type=Path, help="Model v3's frozen-feature heads under LOSO (training.frozen_loso --out)")
    p.add_argument("--answers", type=Path, help="the served model with the user's answers (training.answers --out)")
    args = p.parse_args(argv)
    card = json.loads((args.run / "model_card.json").read_text())
    report = json.loads((args.run / "report.json").read_text())
    exp = json.loads(args.experiments.read_text()) if args.experiments else None
    runs = json.loads(args.runs.read_text()) if args.runs else None
    if args.record:
        if runs is None:
            p.error("--record needs --runs")
        runs = [r for r in runs if r["version"] != card["version"]] + [run_row(card, report, args.record)]
        args.runs.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n")
        return 0
    loso = json.loads(args.loso.read_text()) if args.loso else None
    external = json.loads(args.external.read_text()) if args.external else None
    frozen = json.loads(args.frozen.read_text()) if args.frozen else None
    answers = json.loads(args.answers.read_text()) if args.answers else None
    print(render(card, report, exp, runs, loso, external, frozen, answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
