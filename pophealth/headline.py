"""The headline: a few plain-English sentences on what stands out about an area.

Pure functions: the indicator rows of one area (the tidy table of
:func:`pophealth.indicators.compute_indicator_table`) -> a ranked list of :class:`Finding` ->
one paragraph. Findings come from

* outcomes significantly different from the comparator (95% interval, with polarity);
* need-related context rated higher or lower need;
* supply below or above its fair share (the FTE the area would have at the comparator's rate
  per patient), beyond the documented threshold (staff rates whose ``headline_phrases``
  names the ``staff``; one per staff group).

Each finding carries its own sentence, so other sources (e.g. prevalence, workforce detail) can
add findings of their own and pass the longer list to :func:`headline_sentence`. Wording comes
from the catalogue's ``headline_phrases`` field (``more``/``fewer`` phrases); an indicator
without one gets a sentence built from its title.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from pophealth.store import records

#: Most findings in one headline.
MAX_FINDINGS = 4


@dataclass(frozen=True)
class Finding:
    """One thing that stands out, with the sentence that says it.

    Attributes:
        kind: ``outcome``, ``need`` or ``supply`` (other sources may add kinds).
        indicator_id: The indicator it is about.
        rating: The indicator's rating (e.g. ``worse``, ``higher need``).
        size: How far from the benchmark, as a proportion (0.25 = 25%); ranks findings.
        sentence: A complete sentence with the values and the benchmark's value.
    """

    kind: str
    indicator_id: str
    rating: str
    size: float
    sentence: str


def comparator_phrase(comparator: str) -> str:
    """``in England`` / ``in all loaded areas``: the comparator after "than"."""
    if comparator.startswith("England"):
        return f"in {comparator}"
    return f"in {comparator[0].lower()}{comparator[1:]}"


def format_value(value: float, unit: str) -> str:
    """A value with its unit as a reader expects it (``7.7%``, ``IMD score 32.1``)."""
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "score":
        return f"{value:.1f}"
    if unit == "FTE":
        return f"{value:,.1f} FTE"
    return f"{value:,.1f} {unit}"


def _phrase(spec: dict | None, title: str, more: bool) -> str:
    words = (spec or {}).get("more" if more else "fewer")
    if words:
        return str(words)
    return f"{title} is {'higher' if more else 'lower'}"


# what a finding reads of an indicator row
_FINDING_COLUMNS = (
    "indicator_id",
    "title",
    "unit",
    "kind",
    "rating",
    "value",
    "comparator_value",
    "fair_share",
    "fair_share_gap_pct",
    "numerator",
    "denominator",
)


def findings_from_indicators(
    rows: pd.DataFrame, comparator: str, phrases: dict[str, dict] | None = None
) -> list[Finding]:
    """Every finding in one area's indicator rows, largest first.

    Args:
        rows: One area and basis: ``indicator_id, title, unit, kind, rating, value,
            comparator_value`` and, for supply, ``fair_share, fair_share_gap_pct, numerator,
            denominator``.
        comparator: The comparator's name (e.g. ``England``).
        phrases: Indicator id -> ``{"more": ..., "fewer": ...}`` (the catalogue's
            ``headline_phrases`` field); default the packaged catalogue's.

    Returns:
        Findings sorted by size, largest first.
    """
    if phrases is None:
        phrases = catalogue_phrases()
    where = comparator_phrase(comparator)
    found: list[Finding] = []
    for r in records(rows, _FINDING_COLUMNS):
        rating, value, bench = r.get("rating"), r.get("value"), r.get("comparator_value")
        if not isinstance(rating, str) or pd.isna(value) or pd.isna(bench) or bench == 0:
            continue
        spec = phrases.get(r["indicator_id"])
        more = value > bench
        if r["kind"] == "outcome" and rating in ("better", "worse", "higher", "lower"):
            kind = "outcome"
        elif r["kind"] == "context" and rating in ("higher need", "lower need"):
            kind = "need"
        elif r["kind"] == "supply" and rating in ("fewer than fair share", "more than fair share"):
            # staff rates with headline wording (one per staff group; ratios repeat them)
            if spec and "staff" in spec:
                found.append(_supply_finding(r, spec, comparator))
            continue
        else:
            continue
        sentence = (
            f"{_phrase(spec, r['title'], more)} than {where}: "
            f"{format_value(value, r['unit'])} against {format_value(bench, r['unit'])}."
        )
        size = abs(value / bench - 1)
        found.append(Finding(kind, r["indicator_id"], rating, float(size), sentence))
    return sorted(found, key=lambda f: (-f.size, f.indicator_id))


def rate_of(comparator: str) -> str:
    """``England's rate`` / ``the rate of all loaded areas``."""
    if comparator == "England":
        return "England's rate"
    name = comparator if comparator.startswith("England") else comparator.lower()
    return f"the rate of {name}"


def _supply_finding(r: dict, spec: dict, comparator: str) -> Finding:
    fair, pct = float(r["fair_share"]), float(r["fair_share_gap_pct"])
    fewer = pct < 0
    word = "fewer" if fewer else "more"
    sentence = (
        f"The area has {word} {spec['staff']} than its fair share at {rate_of(comparator)} "
        f"{spec.get('per', 'per patient')}: {float(r['numerator']):,.1f} FTE against "
        f"{fair:,.1f} FTE ({abs(pct):.0f}% {word})."
    )
    return Finding("supply", r["indicator_id"], r["rating"], abs(pct) / 100, sentence)


#: Ratings that say the area needs more (or has less) than its benchmark.
ADVERSE = frozenset({"worse", "higher need", "fewer than fair share", "under-recorded"})


def select_findings(findings: Sequence[Finding], limit: int = MAX_FINDINGS) -> list[Finding]:
    """The findings a headline shows: the largest adverse finding of each kind, then by size.

    Each kind with an adverse finding (worse, higher need, fewer than fair share) gets a place,
    so a large deprivation gap does not hide a GP shortfall; the other places go to the
    largest remaining findings. The result is ordered by size, largest first.
    """
    ordered = sorted(findings, key=lambda f: (-f.size, f.indicator_id))
    chosen: list[Finding] = []
    for kind in dict.fromkeys(f.kind for f in ordered if f.rating in ADVERSE):
        if len(chosen) < limit:
            chosen.append(next(f for f in ordered if f.kind == kind and f.rating in ADVERSE))
    for f in ordered:
        if len(chosen) >= limit:
            break
        if f not in chosen:
            chosen.append(f)
    return sorted(chosen, key=lambda f: (-f.size, f.indicator_id))


def headline_sentence(
    area_name: str,
    findings: Sequence[Finding],
    comparator: str,
    *,
    basis: str | None = None,
    people: float | None = None,
    limit: int = MAX_FINDINGS,
) -> str:
    """One paragraph: who the area is, then its largest findings, one sentence each.

    Args:
        area_name: The area's name (starts the paragraph).
        findings: Findings (any order); see :func:`select_findings`.
        comparator: The comparator's name.
        basis: ``registered`` or ``resident`` (said in brackets), if known.
        people: The population (said in brackets), if known.
        limit: Most findings shown.

    Returns:
        E.g. ``"Demo North PCN (registered population, 45,210 people). More people report bad
        or very bad health than in England: 7.7% against 5.6%."``; with nothing notable,
        ``"... is similar to England on every indicator compared."``.
    """
    details = []
    if basis:
        details.append(f"{basis} population")
    if people is not None and not pd.isna(people):
        details.append(f"{people:,.0f} people")
    name = f"{area_name} ({', '.join(details)})" if details else area_name
    chosen = select_findings(findings, limit)
    if not chosen:
        return f"{name} is similar to {comparator} on every indicator compared."
    return f"{name}. " + " ".join(f.sentence for f in chosen)


def profile_headline(
    area: dict,
    rows: pd.DataFrame,
    comparator: str,
    *,
    extra: Sequence[Finding] = (),
    replaced: frozenset[str] = frozenset(),
) -> tuple[str, list[Finding]]:
    """The headline of one area's profile and the findings behind it.

    Args:
        area: The area's register row (``area_name``, ``basis``).
        rows: The area's indicator rows.
        comparator: The comparator's name.
        extra: Findings from other sources (e.g.
            :func:`pophealth.prevalence.gap_findings`), ranked with the rest.
        replaced: Indicator ids whose findings come only from ``extra``.
    """
    by = rows.set_index("indicator_id")
    people = by["value"].get("list_size", np.nan) if "value" in by else np.nan
    findings = [
        f for f in findings_from_indicators(rows, comparator) if f.indicator_id not in replaced
    ]
    findings = sorted([*findings, *extra], key=lambda f: (-f.size, f.indicator_id))
    text = headline_sentence(
        area["area_name"], findings, comparator, basis=area.get("basis"), people=people
    )
    return text, findings


def catalogue_phrases() -> dict[str, dict]:
    """Indicator id -> the catalogue's ``headline_phrases`` (a fresh copy)."""
    return {key: dict(value) for key, value in _packaged_phrases()}


@lru_cache(maxsize=1)
def _packaged_phrases() -> tuple[tuple[str, dict], ...]:
    from pophealth.indicators import load_catalogue

    catalogue = load_catalogue()
    if "headline_phrases" not in catalogue:
        return ()
    return tuple(
        (row["id"], row["headline_phrases"])
        for row in catalogue.to_dict("records")
        if isinstance(row.get("headline_phrases"), dict)
    )
