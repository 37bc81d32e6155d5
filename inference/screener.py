"""The public entry point: ``Screener.load()`` once, then ``screen(data)`` per photo.

pre-process (decode, quality gate) → forward (LiteRT) → post-process (skin gate, risk).
The caller (bot, CLI, benchmark) never needs to know how the model works.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from inference.classifier import Classifier, ModelSource
from inference.decode import DecodedImage, DecodeError, decode
from inference.labels import CLASSES
from inference.quality import Thresholds, check
from inference.risk import RiskThresholds, malignancy, risk_level

MODEL_DIR = resources.files("inference") / "model"


@dataclass
class ScreeningResult:
    accepted: bool
    reasons: list[str]  # stable codes, empty when accepted
    risk: str | None = None  # "low" | "moderate" | "high"; None when not accepted (unless forced)
    malignancy: float | None = None
    probabilities: dict[str, float] | None = None
    top_class: str | None = None
    skin: float | None = None
    quality: dict[str, float] = field(default_factory=dict)
    model: str = ""
    ms: dict[str, float] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    format: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelCard:
    version: str
    risk: RiskThresholds
    skin_cut: float
    colour_constancy: bool
    raw: dict
    members: tuple[str, ...] = ()  # an ensemble's TFLite files, beside the card; () = one model
    skin_members: tuple[int, ...] | None = None  # which of them gate on skin (None: all)

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
        if list(card["classes"]) != list(CLASSES):
            raise ValueError(f"model card classes {card['classes']} differ from {list(CLASSES)}")
        t = card["thresholds"]
        colour_constancy = bool(card["input"].get("colour_constancy", True))
        members = tuple(m["file"] for m in card.get("members", []))
        if any(Path(m).name != m for m in members):
            raise ValueError(f"model card members must be file names beside the card: {members}")
        gate = tuple(i for i, m in enumerate(card.get("members", [])) if m.get("gate", True))
        if members and not gate:
            raise ValueError("model card marks no member as the skin gate")
        skin_members = gate if len(gate) < len(members) else None
        return cls(card["version"], RiskThresholds(float(t["low"]), float(t["high"])), float(t["skin"]), colour_constancy, card, members, skin_members)

    @property
    def features_member(self) -> int:
        """The member whose pooled features the modality head reads: the (first) skin gate."""
        return (self.skin_members or (0,))[0]

    def classifier(self, models: ModelSource | Sequence[ModelSource], features: bool = False) -> Classifier:
        """A classifier for this card's model file(s), with the card's colour handling and gate;
        ``features`` also returns the gate member's pooled features."""
        return Classifier(
            models,
            colour_constancy=self.colour_constancy,
            skin_members=self.skin_members,
            features_member=self.features_member if features else None,
        )


class Screener:
    """Loads the model once; ``screen`` is safe to call from many threads at once."""

    def __init__(self, classifier: Classifier, card: ModelCard, quality: Thresholds = Thresholds()):
        self.classifier = classifier
        self.card = card
        self.quality = quality

    @classmethod
    def load(cls, model: str | Path | None = None, card: str | Path | None = None, features: bool = False) -> Screener:
        """The shipped model, or ``model`` (a .tflite) with ``card`` (default: the card beside it).
        An ensemble's card names its own files: then ``card`` alone is enough."""
        model_path = Path(model) if model else None
        card_path = Path(card) if card else (model_path or Path(str(MODEL_DIR / "model.tflite"))).with_name("model_card.json")
        model_card = ModelCard.read(card_path)
        # An ensemble's thresholds belong to the average, never to one member: the card decides.
        files = [card_path.with_name(m) for m in model_card.members] or [model_path or card_path.with_name("model.tflite")]
        return cls(model_card.classifier(files, features=features), model_card)

    @property
    def version(self) -> str:
        return self.card.version

    def screen(self, data: bytes, force: bool = False) -> ScreeningResult:
        """Screen one photo given as file bytes.  Never raises for bad input.

        ``force`` also classifies photos that fail the gate (for maintainers), still reporting
        ``accepted=False`` and the reasons.
        """
        return self.screen_with_image(data, force)[0]

    def screen_with_image(self, data: bytes, force: bool = False) -> tuple[ScreeningResult, DecodedImage | None]:
        """Like :meth:`screen`, also returning the decoded pixels (None if undecodable), so a
        caller that stores the photo need not decode it twice."""
        t0 = time.perf_counter()
        try:
            img = decode(data)
        except DecodeError as exc:
            ms = _ms(t0)
            return ScreeningResult(False, [exc.code], model=self.version, ms={"decode": ms, "total": ms}), None
        result = self.screen_decoded(img, force)
        total = _ms(t0)
        result.ms = {"decode": round(total - result.ms["checks"] - result.ms["classify"], 2), **result.ms, "total": total}
        return result, img

    def screen_decoded(self, img: DecodedImage, force: bool = False) -> ScreeningResult:
        t0 = time.perf_counter()
        report = check(img.rgb, (img.width, img.height), self.quality)
        t_checks = _ms(t0)
        result = ScreeningResult(
            accepted=False,
            reasons=list(report.reasons),
            quality=report.values,
            model=self.version,
            width=img.width,
            height=img.height,
            format=img.format,
        )
        t1 = time.perf_counter()
        if report.ok or force:
            pred = self.classifier.predict(img.rgb)
            result.skin = round(pred.skin, 4)
            # Judged only where it would be without ``force`` (the photo passed the quality checks),
            # so ``--force`` adds numbers, never a different list of reasons.
            if report.ok and pred.skin < self.card.skin_cut:
                result.reasons.append("not_skin")
            if not result.reasons or force:
                self._fill(result, pred.probabilities)
        result.accepted = not result.reasons
        result.ms = {"checks": t_checks, "classify": _ms(t1)}
        return result

    def _fill(self, result: ScreeningResult, probs: np.ndarray) -> None:
        result.probabilities = {c: round(float(p), 4) for c, p in zip(CLASSES, probs, strict=True)}
        result.malignancy = round(malignancy(probs), 4)
        result.risk = risk_level(probs, self.card.risk)
        result.top_class = CLASSES[int(np.argmax(probs))]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
