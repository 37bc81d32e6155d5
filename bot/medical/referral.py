"""Where to go, per region: read from ``bot/data/regions.json`` and validated on load.

The file is data, not code: maintainers edit names or add verified contacts without touching
Python.  Every named centre must cite its ``sources`` (full URLs) and say where the entry was
``copied_from``; ``opened`` is the date someone really opened a source page, and stays empty
until then, so nobody ships an invented centre or phone number, or claims a check that never
happened.  Contacts (address, phone) need an opened page.  Several regions have no stand-alone oncology centre
(their oncology sits inside a multi-profile hospital), and for some nothing is verified: those
have no centre at all, and the bot names the polyclinic path only.
"""

from __future__ import annotations

import html
import json
import math
from datetime import date
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, RootModel, model_validator

from bot.i18n import LANGUAGES, t


class Names(RootModel[dict[str, str]]):
    """A name in every language of ``bot.i18n.TABLE``: loading fails, naming the missing
    language, if one is absent (a new language needs its region names)."""

    @model_validator(mode="after")
    def _every_language(self) -> Names:
        missing = [lang for lang in LANGUAGES if not (self.root.get(lang) or "").strip()]
        if missing:
            raise ValueError(f"no name in {', '.join(missing)}")
        return self

    def __call__(self, lang: str) -> str:
        return self.root[lang if lang in LANGUAGES else "en"]


class Source(BaseModel):
    url: str = Field(pattern=r"^https://[a-z0-9.-]+\.[a-z]{2,}/\S*$", description="a full URL")
    page: str | None = None  # which page, as the citing document describes it


class Centre(BaseModel):
    name: Names
    address: str | None = None
    phone: str | None = None
    website: str | None = None
    sources: list[Source] = Field(min_length=1, description="the public pages that name this centre")
    copied_from: str = Field(min_length=3, description="where this entry was taken from (a document, not a visit)")
    opened: date | None = Field(default=None, description="when someone last opened a source page and checked it; None: never")

    @model_validator(mode="after")
    def _contacts_need_an_opened_page(self) -> Centre:
        if (self.address or self.phone) and self.opened is None:
            raise ValueError("an address or phone needs a source page someone opened ('opened')")
        return self


class Region(BaseModel):
    id: str = Field(pattern=r"^[a-z_]+$")
    name: Names
    city: Names
    lat: float = Field(ge=40.0, le=56.0)  # Kazakhstan's latitude range
    lon: float = Field(ge=46.0, le=88.0)
    centres: list[Centre] = Field(default_factory=list)  # empty: nothing verified, polyclinic path only

    def button(self, lang: str) -> str:
        """A short label for a region button: without «область» / «облысы» / "Region"."""
        name = self.name(lang)
        for word in (" облысы", "область ", " область", " Region"):
            name = name.replace(word, "")
        return name.strip()


class Directory(BaseModel):
    version: int
    regions: list[Region] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Directory:
        ids = [r.id for r in self.regions]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate region ids")
        return self

    def get(self, region_id: str | None) -> Region | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def nearest(self, lat: float, lon: float) -> Region:
        return min(self.regions, key=lambda r: haversine_km(lat, lon, r.lat, r.lon))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def load(path: str | Path | None = None) -> Directory:
    raw = Path(path).read_text(encoding="utf-8") if path else (resources.files("bot") / "data" / "regions.json").read_text(encoding="utf-8")
    return Directory.model_validate(json.loads(raw))


def referral_text(lang: str, directory: Directory, region_id: str | None, full: bool = True) -> str:
    """Where to go. ``full`` (moderate/high, /region): the region's centre, the main path, 1406,
    103/112. Otherwise (low) the polyclinic path only."""
    if not full:
        return t(lang, "referral.path_low")
    region = directory.get(region_id)
    lines = []
    if region is None:
        lines.append(t(lang, "referral.no_region"))
    elif not region.centres:
        lines.append(t(lang, "referral.no_centre", region=region.name(lang)))
    else:
        for centre in region.centres:
            lines.append(t(lang, "referral.region", region=region.name(lang), centre=centre.name(lang)))
            extra = ", ".join(x for x in (centre.address, centre.phone, centre.website) if x)
            if extra:
                lines[-1] += f" {html.escape(extra)}"
    lines.append(t(lang, "referral.path"))
    return "\n".join(lines)
