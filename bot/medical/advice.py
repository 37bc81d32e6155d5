"""Medical wording decisions in one place: the intervals, and which advice follows which answer.

A clinician reviews this file and the three catalogues' ``result.*``, ``next.*``,
``followup.*`` and ``referral.*`` messages in one sitting. Changing a number here changes
every language at once (the catalogues only hold the words around it). A change needs a
clinician's approval (README, "Medical wording").

The rule that every branch keeps: **no later message is weaker than the result's own next
step**, and a followed spot keeps the strongest advice it was ever given (a lower score later
does not cancel a visit to the doctor). ``tests/test_advice_flow.py`` drives the bot through every
risk level × follow-up outcome, and every earlier level × comparison outcome × follow-up outcome ×
reminder of a followed spot, and fails if it breaks.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.i18n import t, tn

#: high risk: see an oncologist or dermatologist within this many weeks (sooner if it bleeds or grows fast).
HIGH_WITHIN_WEEKS = 2
#: moderate risk: see a dermatologist within this many months.
MODERATE_WITHIN_MONTHS = 1
#: low risk: self-check by ABCDE once a month, photograph again after this many months.
LOW_RECHECK_MONTHS = 3
#: a warning sign ticked (changed, grew, bled, itches, hurts): see a doctor within this many weeks.
SIGNS_WITHIN_WEEKS = 2

#: The warning signs a user can report, in the order of their bits in the buttons' masks (old
#: buttons keep their bits: new signs only ever come last), each with the item of NICE NG12's
#: weighted 7-point checklist it reports (None: asked, scores nothing on its own).
#:
#: Source: NICE guideline NG12, "Suspected cancer: recognition and referral", 1.7 (skin cancers):
#: the weighted 7-point checklist — major features 2 points each (change in size, irregular
#: shape, irregular colour), minor features 1 point each (largest diameter 7 mm or more,
#: inflammation, oozing, change in sensation); refer on the suspected-cancer pathway (2 weeks)
#: at 3 points or more; consider it for a lesion that suggests nodular melanoma (elevated and
#: growing). NHS Clinical Knowledge Summaries: any major feature alone is a reason to refer.
#: "It has changed" (a change the user cannot place) counts as the shape/colour item, once;
#: itching and pain are one item (change in sensation), once.
SIGN_ITEMS = {
    "changed": "shape_colour",
    "grew": "size",
    "bled": "oozing",
    "itched": "sensation",
    "hurt": "sensation",
    "elevated": None,  # a state, not a change: most benign moles, keratoses and skin tags are raised
    "shape_colour": "shape_colour",
    "wide": "diameter",
    "inflamed": "inflammation",
}
#: Points per checklist item (NG12).
CHECKLIST_POINTS = {"size": 2, "shape_colour": 2, "diameter": 1, "inflammation": 1, "oozing": 1, "sensation": 1}
#: NG12: 3 points or more → the suspected-cancer pathway (see a doctor within SIGNS_WITHIN_WEEKS).
URGENT_SCORE = 3
#: Asked before the result (``qa:`` buttons): every sign. After a result (``fu:`` buttons, and a
#: followed spot's comparison): the five signs those buttons always had.
ASK_SIGNS = tuple(SIGN_ITEMS)
FOLLOWUP_SIGNS = ASK_SIGNS[:5]


def checklist(answers: dict[str, bool]) -> tuple[int, bool]:
    """(weighted 7-point checklist score, suggests nodular melanoma: raised and grown)."""
    items = {SIGN_ITEMS[s] for s, yes in answers.items() if yes and SIGN_ITEMS.get(s)}
    return sum(CHECKLIST_POINTS[i] for i in items), bool(answers.get("elevated") and answers.get("grew"))


def answers_band(answers: dict[str, bool] | None) -> str:
    """``urgent`` (score ≥ 3, or raised and grown), ``minor`` (1–2) or ``none`` (0, not asked)."""
    if not answers:
        return "none"
    score, nodular = checklist(answers)
    return "urgent" if score >= URGENT_SCORE or nodular else ("minor" if score > 0 else "none")


def answers_level(risk: str, answers: dict[str, bool] | None) -> str:
    """The level a photo's advice stands at after the answers given before its result: they
    raise it (urgent: the signs interval; minor: at least a dermatologist within a month),
    never lower it."""
    band = answers_band(answers)
    return stronger(risk, {"urgent": "signs", "minor": "moderate", "none": "low"}[band])


#: How strong each piece of advice is: 0 watch, 1 see a doctor, 2 see a doctor soon (urgently).
STRENGTH = {
    "next.low": 0,
    "followup.low_none": 0,
    "next.moderate": 1,
    "next.high": 2,
    "next.high_signs": 2,  # high with a warning sign: "as soon as you can", not "sooner if it bleeds"
    "followup.raised": 2,
}

#: Advice levels of a photo or a followed spot, weakest first. "signs" is "see a doctor within
#: SIGNS_WITHIN_WEEKS" (a ticked warning sign, or a result higher than last time); "high" says
#: the same interval but also "urgent referral" and "oncologist", so it is the stronger wording.
ORDER = ("low", "moderate", "signs", "high")
KEY = {"low": "next.low", "moderate": "next.moderate", "signs": "followup.raised", "high": "next.high"}
#: Codes of the levels in signed buttons.
CODES = {"low": "l", "moderate": "m", "signs": "s", "high": "h"}
BY_CODE = {v: k for k, v in CODES.items()}

#: A period is (n, "w") weeks or (n, "m") months. How long each level gives to see a doctor:
DEADLINE = {"moderate": (MODERATE_WITHIN_MONTHS, "m"), "signs": (SIGNS_WITHIN_WEEKS, "w"), "high": (HIGH_WITHIN_WEEKS, "w")}
#: Reminder intervals a user can pick per level, and the recommended one. For the levels that
#: send people to a doctor every choice falls on or before the deadline: the reminder asks
#: "have you been?", it never comes after the visit should have happened.
REMINDERS = {
    "low": ((1, "m"), (LOW_RECHECK_MONTHS, "m"), (6, "m")),
    "moderate": ((2, "w"), (MODERATE_WITHIN_MONTHS, "m")),
    "signs": ((1, "w"), (SIGNS_WITHIN_WEEKS, "w")),
    "high": ((1, "w"), (HIGH_WITHIN_WEEKS, "w")),
}
RECOMMENDED = {"low": (LOW_RECHECK_MONTHS, "m"), "moderate": (2, "w"), "signs": (SIGNS_WITHIN_WEEKS, "w"), "high": (1, "w")}


def within_days(level: str) -> str:
    """A level's deadline in days ("14", "30") or "watch": the ``bot_advice_total`` label and the
    export's ``advice_days``."""
    period = DEADLINE.get(level)
    if period is None:
        return "watch"
    n, unit = period
    return str(n * 7 if unit == "w" else n * 30)


def stronger(a: str, b: str) -> str:
    return a if ORDER.index(a) >= ORDER.index(b) else b


def add_period(when: datetime, period: tuple[int, str]) -> datetime:
    """``when`` plus a period; months keep the day (the last day of a shorter month)."""
    n, unit = period
    if unit == "w":
        return when + timedelta(weeks=n)
    month = when.month - 1 + n
    year, month = when.year + month // 12, month % 12 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


def period_code(period: tuple[int, str]) -> str:
    """``(2, "w")`` → ``"w2"`` (button data)."""
    return f"{period[1]}{period[0]}"


def parse_period(code: str, level: str) -> tuple[int, str] | None:
    """A button's period if it is one of ``level``'s reminder choices (else None)."""
    return next((p for p in REMINDERS[level] if period_code(p) == code), None)


def period_text(lang: str, period: tuple[int, str], form: str = "in") -> str:
    """"in 2 weeks" / "within a month" in ``lang`` (form ``in`` or ``within``)."""
    n, unit = period
    return tn(lang, f"period.{form}_{'weeks' if unit == 'w' else 'months'}", n)


@dataclass(frozen=True)
class Advice:
    key: str  # the catalogue key of the main advice text
    strength: int

    def text(self, lang: str) -> str:
        return advice_text(lang, self.key)


def intervals(lang: str) -> dict[str, str]:
    """The intervals as words in ``lang``, for any message that names one."""
    return {
        "within_high": tn(lang, "period.within_weeks", HIGH_WITHIN_WEEKS),
        "within_moderate": tn(lang, "period.within_months", MODERATE_WITHIN_MONTHS),
        "within_signs": tn(lang, "period.within_weeks", SIGNS_WITHIN_WEEKS),
        "recheck": tn(lang, "period.in_months", LOW_RECHECK_MONTHS),
    }


def advice_text(lang: str, key: str, **kwargs: object) -> str:
    """An advice message with its intervals filled in, in ``lang``."""
    return t(lang, key, **intervals(lang), **kwargs)


def of_level(level: str) -> Advice:
    return Advice(KEY[level], STRENGTH[KEY[level]])


def next_step(risk: str) -> Advice:
    """The result's own next step."""
    return of_level(risk)


#: The high advice restated after a warning sign: the same interval and referral, "as soon as you
#: can" instead of "sooner if it bleeds or grows fast" (the user may just have said it bled).
HIGH_WITH_SIGNS = Advice("next.high_signs", STRENGTH["next.high_signs"])


def after_followup(level: str, signs: bool) -> tuple[str | None, Advice]:
    """What the bot says after the follow-up questions: an optional preface key and the advice.
    ``level`` is the photo's risk, or a followed spot's level (``ORDER``).

    * a sign ticked: "see a doctor within two weeks", whatever the level; after a high level
      the high advice (urgent, oncologist) is restated instead, with a preface that the signs
      make it more important;
    * nothing ticked after moderate/high: "the advice above still stands", and it is restated;
    * nothing ticked after low: keep watching, and see a doctor within the signs interval,
      without waiting for the next photo, if the spot changes, bleeds, itches or hurts.
    """
    if signs:
        if level == "high":
            return "followup.signs_high", HIGH_WITH_SIGNS
        return None, of_level("signs")
    if level == "low":
        return None, Advice("followup.low_none", STRENGTH["followup.low_none"])
    return "followup.stands", of_level(level)


def with_answers(risk: str, answers: dict[str, bool] | None) -> tuple[str | None, Advice]:
    """The result's own advice when the warning-sign questions came before it, graded by the
    weighted 7-point checklist (:func:`answers_band`, NICE NG12):

    * urgent (3 points or more, or raised and grown): what a sign ticked after the result gives
      (:func:`after_followup`): see a doctor within the signs interval, or the high advice
      restated ("the signs make it more urgent");
    * minor (1–2 points): at least "show it to a dermatologist within a month", with the
      reassurance that such signs are common and usually harmless (``ask.minor``) — only after a
      low photo; a moderate photo keeps its own advice ("it stands: do not put it off"), a high
      one is restated as "as soon as you can" (any named sign makes a high result more urgent);
    * none (0 points, "raised" alone, nothing ticked, not asked): the photo's own next step.

    The answers raise advice, they never lower it (a fused score that could lower it failed its
    ship rule: docs/model/HISTORY.md, "Model v3").
    """
    band = answers_band(answers)
    if band != "none" and risk == "high":  # any named sign makes a high result more urgent: "as soon as you can"
        return "ask.signs_high", HIGH_WITH_SIGNS  # (the result already said "You noted: …": no second "thank you, noted")
    if band == "urgent":
        return None, of_level("signs")
    if band == "minor":  # reassurance only where the photo itself was low
        return ("ask.minor", of_level("moderate")) if risk == "low" else ("ask.minor_stands", next_step(risk))
    return None, next_step(risk)


#: Order of the risk levels, for "did it rise?".
LEVEL = {"low": 0, "moderate": 1, "high": 2}


def comparison(before: str, now: str, before_malignancy: float, now_malignancy: float, noise: float) -> str:
    """A spot photographed again (#13): ``compare.higher``, ``compare.lower`` or ``compare.same``.

    A higher level, or malignancy up by more than the model's measured repeat-photo noise
    (``noise``: the model card's ``repeat_noise``), is "the result is higher than last time" —
    a score that rose, not a change anyone measured; it is treated as a warning sign.
    """
    if LEVEL[now] > LEVEL[before] or now_malignancy - before_malignancy > noise:
        return "compare.higher"
    if LEVEL[now] < LEVEL[before]:
        return "compare.lower"
    return "compare.same"


def after_comparison(before: str, now: str, before_malignancy: float, now_malignancy: float, noise: float) -> tuple[str, Advice]:
    """Two checks alone, as :func:`follow` reads them: a preface key and the advice."""
    at = datetime(2000, 1, 1)
    state = follow([(at, before, before_malignancy), (at + timedelta(days=1), now, now_malignancy)], noise)
    return state.outcome, state.advice


@dataclass(frozen=True)
class SpotAdvice:
    """Where a followed spot stands: the strongest advice it was given and since when."""

    level: str  # ``ORDER``
    since: datetime  # the check that first gave this advice: the deadline counts from it
    outcome: str | None  # the last comparison's preface (None after one check)

    @property
    def advice(self) -> Advice:
        return of_level(self.level)

    @property
    def deadline(self) -> datetime | None:
        """See a doctor by then (None for low)."""
        period = DEADLINE.get(self.level)
        return add_period(self.since, period) if period else None


def follow(history: list[tuple], noise: float) -> SpotAdvice:
    """A spot's checks, oldest first (``(time, risk, malignancy)`` or ``(time, risk,
    malignancy, signs)``) → its advice.

    The advice never weakens along the history: a lower result keeps the earlier level, and an
    earlier deadline keeps counting from the first result that set it; a result higher than the
    one before, or a warning sign ticked for a check, is at least "signs", from that check on.
    """
    if not history:
        raise ValueError("a spot has at least one check")
    at, risk, mal, *flag = history[0]
    level, since, outcome = (stronger(risk, "signs") if flag and flag[0] else risk), at, None
    for (_, prev_risk, prev_mal, *_), (at, risk, mal, *flag) in zip(history, history[1:]):
        outcome = comparison(prev_risk, risk, prev_mal, mal, noise)
        candidate = stronger(risk, "signs") if outcome == "compare.higher" or (flag and flag[0]) else risk
        if ORDER.index(candidate) > ORDER.index(level):
            level, since = candidate, at
    return SpotAdvice(level, since, outcome)
