"""Medical wording decisions in one place: the intervals, and which advice follows which answer.

A clinician reviews this file and the three catalogues' ``result.*``, ``next.*``,
``followup.*`` and ``referral.*`` messages in one sitting. Changing a number here changes
every language at once (the catalogues only hold the words around it). A change needs a
clinician's approval (README, "Medical wording").

The rule that every branch keeps: **no later message is weaker than the result's own next
step**. ``tests/test_advice_flow.py`` drives the bot through every risk level × follow-up outcome
and fails if it breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import t, tn

#: high risk: see an oncologist or dermatologist within this many weeks (sooner if it bleeds or grows fast).
HIGH_WITHIN_WEEKS = 2
#: moderate risk: see a dermatologist within this many months.
MODERATE_WITHIN_MONTHS = 1
#: low risk: self-check by ABCDE once a month, photograph again after this many months.
LOW_RECHECK_MONTHS = 3
#: a warning sign ticked (changed, grew, bled, itches, hurts): see a doctor within this many weeks.
SIGNS_WITHIN_WEEKS = 2

#: How strong each piece of advice is: 0 watch, 1 see a doctor, 2 see a doctor urgently.
STRENGTH = {"next.low": 0, "followup.low_none": 0, "next.moderate": 1, "next.high": 2, "followup.raised": 2}


@dataclass(frozen=True)
class Advice:
    key: str  # the catalogue key of the main advice text
    strength: int

    def text(self, lang: str) -> str:
        return advice_text(lang, self.key)


def advice_text(lang: str, key: str) -> str:
    """An advice message with its intervals filled in, in ``lang``."""
    return t(
        lang,
        key,
        within_high=tn(lang, "period.within_weeks", HIGH_WITHIN_WEEKS),
        within_moderate=tn(lang, "period.within_months", MODERATE_WITHIN_MONTHS),
        within_signs=tn(lang, "period.within_weeks", SIGNS_WITHIN_WEEKS),
        recheck=tn(lang, "period.in_months", LOW_RECHECK_MONTHS),
        nowait=tn(lang, "period.without_waiting_months", LOW_RECHECK_MONTHS),
    )


def next_step(risk: str) -> Advice:
    """The result's own next step."""
    key = f"next.{risk}"
    return Advice(key, STRENGTH[key])


def after_followup(risk: str, signs: bool) -> tuple[str | None, Advice]:
    """What the bot says after the follow-up questions: an optional preface key and the advice.

    * a sign ticked: "see a doctor within two weeks", whatever the level (as urgent as high);
    * nothing ticked after moderate/high: "the advice above still stands", and it is restated;
    * nothing ticked after low: keep watching, and see a doctor without waiting for the next
      photo if the spot changes, bleeds, itches or hurts.
    """
    if signs:
        return None, Advice("followup.raised", STRENGTH["followup.raised"])
    if risk == "low":
        return None, Advice("followup.low_none", STRENGTH["followup.low_none"])
    return "followup.stands", next_step(risk)


#: Order of the risk levels, for "did it rise?".
LEVEL = {"low": 0, "moderate": 1, "high": 2}


def after_comparison(before: str, now: str, before_malignancy: float, now_malignancy: float, noise: float) -> tuple[str, Advice]:
    """A spot photographed again (#13): a preface key and the advice.

    * a higher level, or malignancy up by more than the model's measured repeat-photo noise
      (``noise``: the model card's ``repeat_noise``), is a change: see a doctor within
      ``SIGNS_WITHIN_WEEKS``, as for a ticked warning sign;
    * a lower level never weakens the advice given before: the earlier result's next step is
      restated;
    * otherwise the current result's next step stands.
    """
    if LEVEL[now] > LEVEL[before] or now_malignancy - before_malignancy > noise:
        return "compare.changed", Advice("followup.raised", STRENGTH["followup.raised"])
    if LEVEL[now] < LEVEL[before]:
        return "compare.lower", next_step(before)
    return "compare.same", next_step(now)
