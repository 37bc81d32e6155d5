"""Read the labelled sources into one class scheme and split them without leaks.

Every source folder holds ``labels.csv`` and ``images/``; which source a folder is, is detected
from the columns of its ``labels.csv`` (see ``../shared/README.md``).  A maintainers' export
from the bot (``python -m bot.admin export``) is one more source of the same shape.

Class scheme (``inference.labels.CLASSES``): melanoma, basal cell carcinoma, actinic/squamous
(akiec, ACK, SCC — pre-malignant to malignant), nevus, keratosis (bkl, SEK), other benign
lesions (vascular, dermatofibroma, keloid, …) and inflammatory (acne, eczema, … — skin, but not a
lesion this bot screens).  Rows without a usable label are skipped, never guessed.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inference.labels import CLASSES

#: source kind → (modality, per-row label function)
DERMOSCOPY, CLINICAL = "dermoscopy", "clinical"

_HAM = {"mel": "mel", "bcc": "bcc", "akiec": "akiec", "nv": "nv", "bkl": "bkl", "vasc": "other", "df": "other"}
_ISIC2017 = {"melanoma": "mel", "nevus": "nv", "seborrheic_keratosis": "bkl"}
_PAD = {"MEL": "mel", "BCC": "bcc", "SCC": "akiec", "ACK": "akiec", "NEV": "nv", "SEK": "bkl"}
_SD198 = {
    "Malignant_Melanoma": "mel",
    "Lentigo_Maligna_Melanoma": "mel",
    "Basal_Cell_Carcinoma": "bcc",
    "Actinic_Keratosis": "akiec",
    "Cutaneous_Horn": "akiec",  # often sits on actinic keratosis or SCC: at least "see a doctor"
    "Nevus_Spilus": "nv",
    "Angioma": "other",
    "Dermatofibroma": "other",
    "Keloid": "other",
    "Pyogenic_Granuloma": "other",
}
_BCN = {"mel": "mel", "bcc": "bcc", "ak": "akiec", "scc": "akiec", "nv": "nv", "bkl": "bkl", "df": "other", "vasc": "other"}
_ISIC2020 = {"melanoma": "mel", "nevus": "nv", "unknown": "nv", "seborrheic keratosis": "bkl", "lentigo NOS": "bkl"}


def _mixed_label(diagnosis: str, malignant: str) -> str | None:
    """isic_archive_mixed's free-text diagnoses → our classes (None: no usable label)."""
    d = diagnosis.lower()
    for prefix, cls in (("melanoma", "mel"), ("basal cell", "bcc"), ("squamous cell", "akiec"), ("keratoacanthoma", "akiec"), ("actinic", "akiec")):
        if d.startswith(prefix):
            return cls
    if d.startswith("nevus") or d == "epidermal nevus":
        return "nv"
    if d in ("seborrheic keratosis", "lichen planus like keratosis", "solar lentigo", "lentigo nos"):
        return "bkl"
    if malignant == "0" and d not in ("other",):  # benign: dermatofibroma, scar, angioma, "benign"…
        return "other"
    return None


#: The SD-198 photos carry a DermQuest footer strip; this share of the height is cut away.
SD198_FOOTER = 0.09
#: Images are kept in memory with this short side: enough for random crops down to 224.
LOAD_SHORT_SIDE = 288


@dataclass
class Sample:
    path: Path
    source: str
    modality: str
    label: int
    group: str  # lesion or patient: a split never separates one group
    malignant: int | None  # the source's own malignant flag where it has one
    crop_bottom: float = 0.0


@dataclass
class Source:
    name: str
    modality: str
    samples: list[Sample] = field(default_factory=list)


def _label(mapping: dict[str, str], value: str) -> int | None:
    cls = mapping.get(value)
    return CLASSES.index(cls) if cls else None


def read_source(folder: str | Path) -> Source:
    """Detect the kind of ``folder`` from its labels.csv and read it."""
    folder = Path(folder)
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{folder}/labels.csv has no rows")
    cols = set(rows[0])
    src: Source
    if {"dx", "lesion_id", "malignant", "site"} <= cols:
        src = Source("bcn20000", DERMOSCOPY)  # 84×84 px: its own source, never mixed into HAM10000
        for r in rows:
            lab = _label(_BCN, r["dx"])
            if lab is not None:
                src.samples.append(Sample(folder / r["image"], src.name, src.modality, lab, r["lesion_id"], int(r["malignant"])))
    elif {"attribution", "image_type"} <= cols:
        src = Source("isic_archive_mixed", DERMOSCOPY)  # per image: dermoscopic, clinical close-up, TBP tile
        for r in rows:
            cls = _mixed_label(r["diagnosis"], r["malignant"])
            if cls is None:
                continue
            modality = DERMOSCOPY if r["image_type"] == "dermoscopic" else CLINICAL
            group = r.get("lesion_id") or r.get("patient_id") or r["image_id"]
            mal = int(r["malignant"]) if r["malignant"] in ("0", "1") else None
            src.samples.append(Sample(folder / r["image"], src.name, modality, CLASSES.index(cls), group, mal))
    elif {"patient_id", "melanoma", "diagnosis"} <= cols:
        src = Source("isic2020", DERMOSCOPY)  # "unknown" = benign, not biopsied (mostly nevi)
        for r in rows:
            lab = _label(_ISIC2020, r["diagnosis"])
            if lab is not None:
                src.samples.append(Sample(folder / r["image"], src.name, src.modality, lab, r["patient_id"], int(r["malignant"])))
    elif {"dx", "lesion_id"} <= cols:
        src = Source("ham10000", DERMOSCOPY)
        for r in rows:
            lab = _label(_HAM, r["dx"])
            if lab is not None:
                mal = int(r["dx"] in ("mel", "bcc", "akiec"))
                src.samples.append(Sample(folder / r["image"], src.name, src.modality, lab, r["lesion_id"], mal))
    elif {"diagnostic", "patient_id"} <= cols:
        src = Source("pad_ufes20", CLINICAL)
        for r in rows:
            lab = _label(_PAD, r["diagnostic"])
            if lab is not None:
                src.samples.append(
                    Sample(folder / r["image"], src.name, src.modality, lab, r["patient_id"], int(r["malignant"]))
                )
    elif "lesion_class" in cols:
        src = Source("sd198", CLINICAL)
        for r in rows:
            if r["lesion_class"] == "0":
                lab = CLASSES.index("inflammatory")
            else:
                lab = _label(_SD198, r["diagnosis"])
            if lab is None:
                continue
            mal = int(r["malignant"]) if r["malignant"] in ("0", "1") else None
            group = r.get("patient_id") or r["image_id"]
            src.samples.append(Sample(folder / r["image"], src.name, src.modality, lab, group, mal, SD198_FOOTER))
    elif {"diagnosis", "split2017"} <= cols:
        src = Source("isic2017", DERMOSCOPY)
        for r in rows:
            lab = _label(_ISIC2017, r["diagnosis"])
            if lab is not None:
                group = r.get("lesion_id") or r["image_id"]
                src.samples.append(Sample(folder / r["image"], src.name, src.modality, lab, group, int(r["malignant"])))
    elif {"image", "label", "modality"} <= cols:
        # A maintainers' export from the bot (see bot/admin/review.py, python -m bot.admin export): reviewed cases as one more source.
        src = Source(folder.name, rows[0]["modality"] or CLINICAL)
        for r in rows:
            if r["label"] not in CLASSES:
                continue
            lab = CLASSES.index(r["label"])
            mal = int(r["malignant"]) if r.get("malignant") in ("0", "1") else None
            src.samples.append(Sample(folder / r["image"], src.name, src.modality, lab, r.get("group") or r["image"], mal))
    else:
        raise ValueError(f"{folder}: labels.csv columns {sorted(cols)} match no known source")
    if not src.samples:
        raise ValueError(f"{folder}: no usable rows")
    return src


def _group_bucket(group: str, seed: int) -> float:
    """A stable number in [0, 1) per group, so splits do not depend on row order."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_source(src: Source, seed: int, val: float = 0.15, test: float = 0.15) -> dict[str, list[Sample]]:
    """Group-aware split stratified by the group's majority class.

    Groups (lesion / patient) are ranked inside each class by a seeded hash and cut at the
    val/test fractions, so every split has every class and no group crosses a split.
    """
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in src.samples:
        groups[s.group].append(s)
    by_class: dict[int, list[str]] = defaultdict(list)
    for g, members in groups.items():
        majority = Counter(m.label for m in members).most_common(1)[0][0]
        by_class[majority].append(g)
    out: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for _, gs in sorted(by_class.items()):
        gs.sort(key=lambda g: _group_bucket(g, seed))
        n = len(gs)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        for i, g in enumerate(gs):
            part = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            out[part].extend(groups[g])
    return out


#: Modality of the built-in sources, for ``splits.csv`` files written before it had the column.
KNOWN_MODALITY = {"ham10000": DERMOSCOPY, "isic2017": DERMOSCOPY, "pad_ufes20": CLINICAL, "sd198": CLINICAL, "bcn20000": DERMOSCOPY, "isic2020": DERMOSCOPY}
SPLITS_COLUMNS = ["path", "source", "modality", "split", "label", "group", "malignant"]


def write_splits(path: str | Path, splits: dict[str, list[Sample]]) -> None:
    """``splits.csv`` next to the model: which image went where, so any later check can reuse it."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(SPLITS_COLUMNS)
        for name, items in splits.items():
            for s in items:
                w.writerow([s.path, s.source, s.modality, name, CLASSES[s.label], s.group, "" if s.malignant is None else s.malignant])


def read_splits(path: str | Path) -> dict[str, list[Sample]]:
    """The samples of a run's ``splits.csv``, by split."""
    out: dict[str, list[Sample]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            modality = r.get("modality") or KNOWN_MODALITY.get(r["source"], CLINICAL)
            malignant = int(r["malignant"]) if r["malignant"] in ("0", "1") else None
            crop = SD198_FOOTER if r["source"] == "sd198" else 0.0
            out[r["split"]].append(Sample(Path(r["path"]), r["source"], modality, CLASSES.index(r["label"]), r["group"], malignant, crop))
    return dict(out)


def load_image(sample: Sample, short_side: int = LOAD_SHORT_SIDE) -> np.ndarray:
    """Read an RGB uint8 image, cut any footer and shrink it to ``short_side``."""
    bgr = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {sample.path}")
    if sample.crop_bottom:
        bgr = bgr[: int(bgr.shape[0] * (1 - sample.crop_bottom))]
    h, w = bgr.shape[:2]
    scale = short_side / min(h, w)
    if scale < 1:
        bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def screened_by_serving(sample: Sample) -> bool:
    """Would serving look at this photo at all?  ``inference.quality`` answers ``too_small`` to a
    short side under ``MIN_SHORT_SIDE`` before the skin gate runs, so such photos (all of
    BCN20000's 84 px thumbnails) must not pull the skin cut down for the photos it does judge."""
    from PIL import Image

    from inference.quality import MIN_SHORT_SIDE

    with Image.open(sample.path) as im:
        w, h = im.size
    return min(w, int(h * (1 - sample.crop_bottom))) >= MIN_SHORT_SIDE

def load_all(samples: list[Sample]) -> list[np.ndarray]:
    """Decode many samples; cv2 releases the GIL, so two threads use both cores."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(load_image, samples))


def balanced_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Per-sample weights ∝ 1/sqrt(class count) × 1/sqrt(source count), mean 1: rare classes
    and small (phone/clinical) sources weigh in without drowning the large ones."""

    def inv_sqrt(keys: np.ndarray) -> np.ndarray:
        _, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
        return 1.0 / np.sqrt(cnt[inv])

    w = inv_sqrt(labels) * inv_sqrt(sources)
    return w / w.mean()


def negative_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Validation (one fifth) and training indices of ``n`` non-skin photos, drawn from the
    training seed's generator: ``training.gate`` replays it to find photos no member trained on."""
    order = rng.permutation(n)
    return order[: n // 5], order[n // 5 :]


def flatten_alpha(img: np.ndarray | None, background: int = 255) -> np.ndarray | None:
    """3-channel BGR of any image OpenCV read unchanged. Cut-out pictures (Tux Paint stamps) keep
    their colour only where they are opaque: plain IMREAD_COLOR would show whatever colour the
    transparent pixels happen to store (black for most stamps) and teach the skin head that a dark
    frame means "not skin". They are laid on a white page instead, the way a chat shows them."""
    if img is not None and img.dtype == np.uint16:  # 16-bit PNG: keep the high byte
        img = (img >> 8).astype(np.uint8)
    if img is None or img.dtype != np.uint8:
        return None
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[..., 3:4].astype(np.float32) / 255
        return np.round(img[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)
    return img[..., :3]


def load_negatives(folders: list[str | Path], short_side: int = 512, limit: int | None = None) -> list[np.ndarray]:
    """Photos that are not skin (wallpapers, everyday scenes) for the "is this a lesion" head."""
    paths: list[Path] = []
    for folder in folders:
        for ext in ("*.jpg", "*.jpeg", "*.png", "*.webp"):
            paths.extend(sorted(Path(folder).rglob(ext)))
    images = []
    for p in paths[:limit]:
        bgr = flatten_alpha(cv2.imread(str(p), cv2.IMREAD_UNCHANGED))
        if bgr is None or min(bgr.shape[:2]) < 64:
            continue
        h, w = bgr.shape[:2]
        scale = short_side / min(h, w)
        if scale < 1:
            bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return images
