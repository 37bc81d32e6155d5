"""Class scheme shared by training, the model card and the bot's wording."""

from __future__ import annotations

#: Output order of the classifier's diagnosis head.
CLASSES: tuple[str, ...] = ("mel", "bcc", "akiec", "nv", "bkl", "other", "inflammatory")

#: Classes whose probability sums to the malignancy score.  ``akiec`` (actinic keratosis /
#: intraepithelial carcinoma / SCC) is pre-malignant to malignant: it always needs a doctor.
MALIGNANT: tuple[str, ...] = ("mel", "bcc", "akiec")

CLASS_NAMES_EN: dict[str, str] = {
    "mel": "melanoma",
    "bcc": "basal cell carcinoma",
    "akiec": "actinic keratosis / squamous cell carcinoma",
    "nv": "nevus (mole)",
    "bkl": "benign keratosis",
    "other": "other benign lesion (vascular, dermatofibroma, …)",
    "inflammatory": "inflammatory skin condition (not a lesion)",
}
