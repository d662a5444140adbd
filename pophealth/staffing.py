"""The whole primary care team: practice staff plus PCN-employed staff, against need.

Pure functions on DataFrames (nothing here reads files or mutates its inputs):

* :func:`apportion_pcn_staff` - PCN-employed staff (NHS England PCN workforce publication) belong
  to the PCN, not to a practice. To add them to practice-based roll-ups each PCN's FTE is shared
  among its member practices in proportion to their registered (or weighted) patients. Summed over
  a PCN's practices the shares give back the PCN's FTE exactly, so a PCN neighbourhood gets its
  staff directly; a custom neighbourhood, place or system gets the shares of the practices it
  holds. PCNs with staff but no member practice in the data are returned, counted, never dropped.
* :func:`team_measures` - practice-level numerators/denominators of the team indicators (FTE per
  10,000 registered and weighted patients by staff group and for the whole team; skill mix; team
  per 1,000 patients on QOF disease registers when a register count is loaded).
* :func:`fair_share` - the one fair-share formula (FTE at a benchmark's rate per patient, gap
  in FTE and %), called by the supply ratings (:func:`pophealth.indicators.rate_by_kind`), the
  team views and the designer.
* :func:`fair_share_gaps` - for each area and staff group, the FTE it would have at England's FTE
  per weighted patient, and the gap (df-in/df-out).
* :func:`largest_gap_findings` - the area's workforce gaps relative to need, ranked, as findings a
  headline generator can consume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pophealth.checks import require_columns
from pophealth.errors import PopHealthError

#: Staff groups of the practice file and of the PCN file (PCN directors count with admin).
STAFF_GROUPS: dict[str, str] = {
    "gp": "GPs",
    "nurse": "Nurses",
    "dpc": "Direct patient care",
    "admin": "Admin/non-clinical",
}
#: Staff groups as nouns for sentences.
STAFF_NOUNS: dict[str, str] = {
    "gp": "GPs",
    "nurse": "nurses",
    "dpc": "direct patient care staff",
    "admin": "admin/non-clinical staff",
}
#: Practice-file total FTE column of each staff group (``TOTAL_GP_FTE`` includes GPs in
#: training grade and locums, as the publisher's headline figure does).
PRACTICE_GROUP_FTE: dict[str, str] = {
    "gp": "gp_fte",
    "nurse": "nurse_fte",
    "dpc": "dpc_fte",
    "admin": "admin_fte",
}
#: Practice column holding patients on QOF disease registers (added by the QOF source when
#: loaded); the per-register indicator is built only when it is present.
WHOLE_TEAM = "team"
PCN_STATUS_RETURNED = "PCN workforce return"
PCN_STATUS_NO_RETURN = "PCN made no workforce return"
PCN_STATUS_NONE = "not in a PCN"


class StaffingInputError(PopHealthError, ValueError):
    """A staffing function was given a frame without the columns it needs."""


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    require_columns(frame, columns, what, error=StaffingInputError)


def pcn_fte_column(group: str) -> str:
    """Practice column of the PCN-employed FTE apportioned to a practice for a staff group."""
    return f"pcn_{group}_fte"


def apportion_pcn_staff(
    pcn_staff: pd.DataFrame,
    practices: pd.DataFrame,
    weight: str = "registered_patients",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Share each PCN's employed staff among its member practices by patients.

    Args:
        pcn_staff: ``pcn_code, group, fte`` (e.g. from
            :func:`pophealth.sources.pcn_workforce.pcn_fte_by_group`).
        practices: ``practice_code, pcn_code`` and the ``weight`` column.
        weight: ``registered_patients`` (default) or ``weighted_patients``.

    Returns:
        ``(shares, unattributed)``: ``shares`` has one row per practice with ``pcn_status`` (a PCN
        return, a PCN without a return, or no PCN), ``pcn_share`` (its fraction of its PCN's
        patients) and ``pcn_<group>_fte`` for every staff group (0 where the PCN made no
        return); ``unattributed`` lists ``pcn_code, fte, reason`` for PCN staff no practice in
        the data could take (the PCN has no member practice, or its practices have no patients).

    Raises:
        StaffingInputError: A required column is missing.
    """
    _require(pcn_staff, ["pcn_code", "group", "fte"], "PCN staff")
    _require(practices, ["practice_code", "pcn_code", weight], "practices")
    base = practices[["practice_code", "pcn_code", weight]].copy()
    patients = base[weight].astype(float).fillna(0.0).clip(lower=0.0)
    pcn_total = patients.groupby(base["pcn_code"]).transform("sum")
    base["pcn_share"] = np.where(pcn_total > 0, patients / pcn_total.where(pcn_total > 0), 0.0)
    wide = pcn_staff.pivot_table(
        index="pcn_code", columns="group", values="fte", aggfunc="sum", fill_value=0.0
    ).reindex(columns=list(STAFF_GROUPS), fill_value=0.0)
    returned = set(wide.index)
    in_pcn = base["pcn_code"].notna()
    base["pcn_status"] = np.select(
        [in_pcn & base["pcn_code"].isin(returned), in_pcn],
        [PCN_STATUS_RETURNED, PCN_STATUS_NO_RETURN],
        default=PCN_STATUS_NONE,
    )
    by_practice = wide.reindex(base["pcn_code"]).fillna(0.0).to_numpy()
    for position, group in enumerate(STAFF_GROUPS):
        base[pcn_fte_column(group)] = by_practice[:, position] * base["pcn_share"].to_numpy()
    takers = base.loc[base["pcn_share"] > 0, "pcn_code"].unique()
    totals = wide.sum(axis=1)
    members = set(base["pcn_code"].dropna())
    left = totals[~totals.index.isin(takers)]
    unattributed = pd.DataFrame(
        {
            "pcn_code": left.index.astype(str),
            "fte": left.to_numpy(dtype=float),
            "reason": np.where(
                left.index.isin(members),
                "member practices have no patients in the data",
                "no member practice in the data",
            ),
        }
    )
    shares = base.drop(columns=[weight]).reset_index(drop=True)
    return shares, unattributed.reset_index(drop=True)


def with_pcn_staff(
    practices: pd.DataFrame, pcn_staff: pd.DataFrame, weight: str = "registered_patients"
) -> pd.DataFrame:
    """Practices plus their share of their PCN's staff (``pcn_<group>_fte``, ``pcn_status``).

    See :func:`apportion_pcn_staff`; PCN staff no practice could take are left out here (that
    function returns them, to be counted).
    """
    shares, _ = apportion_pcn_staff(pcn_staff, practices, weight)
    return practices.merge(shares.drop(columns=["pcn_code"]), on="practice_code", how="left")


def detailed_roles() -> list:
    """The roles of the detailed practice workforce file below the staff-group totals.

    :data:`pophealth.sources.workforce.ROLES` without the group totals and their GP
    sub-totals (in the publisher's order).
    """
    from pophealth.sources.workforce import ROLES

    totals = {"gp", "nurse", "dpc", "admin", "gp_extg", "gp_exl", "gp_extgl", "dpc_apprentice"}
    return [r for r in ROLES if r.stem.lower() not in totals and r.stem != "NURSES"]


def role_measure_id(role) -> str:
    """Measure id of a detailed role's FTE per registered patient (``role_<stem>``)."""
    return f"role_{role.stem.lower()}"


def role_measures(practices: pd.DataFrame) -> pd.DataFrame:
    """Per practice, each detailed role's FTE and registered patients, ready to be summed.

    A practice counts towards a role when its staff group's total FTE is known: the numerator
    is its FTE in the role (missing = 0), the denominator its registered patients.

    Returns:
        ``practice_code`` plus ``role_<stem>__num`` / ``__den`` for every role of
        :func:`detailed_roles`; just ``practice_code`` without the detailed columns.
    """
    roles = detailed_roles()
    columns = [f"{r.stem.lower()}_fte" for r in roles]
    out = {"practice_code": practices["practice_code"].to_numpy()}
    if not set(columns) <= set(practices.columns):
        return pd.DataFrame(out)
    patients = practices["registered_patients"].to_numpy(dtype=float)
    for role, column in zip(roles, columns, strict=True):
        known = practices[PRACTICE_GROUP_FTE[role.group]].notna().to_numpy()
        values = np.nan_to_num(practices[column].to_numpy(dtype=float))
        out[f"{role_measure_id(role)}__num"] = np.where(known, values, 0.0)
        out[f"{role_measure_id(role)}__den"] = np.where(known, np.nan_to_num(patients), 0.0)
    return pd.DataFrame(out)


def _team_inputs_present(practices: pd.DataFrame) -> bool:
    needed = ["registered_patients", "pcn_status", *PRACTICE_GROUP_FTE.values()]
    needed += [pcn_fte_column(g) for g in STAFF_GROUPS]
    return all(c in practices for c in needed)


def _group_fte(practices: pd.DataFrame, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Practice + PCN FTE of a group, and where it counts (practice figures known, PCN known)."""
    own = practices[PRACTICE_GROUP_FTE[group]].to_numpy(dtype=float)
    pcn = practices[pcn_fte_column(group)].to_numpy(dtype=float)
    pcn_known = (practices["pcn_status"] != PCN_STATUS_NO_RETURN).to_numpy()
    return own + np.nan_to_num(pcn), ~np.isnan(own) & pcn_known


def _whole_team(practices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The whole team's FTE, and where it counts (every group counts)."""
    team = np.zeros(len(practices))
    ok = np.ones(len(practices), dtype=bool)
    for group in STAFF_GROUPS:
        fte, known = _group_fte(practices, group)
        team = team + np.nan_to_num(fte)
        ok &= known
    return team, ok


def _pair(numerator: np.ndarray, denominator: np.ndarray, ok: np.ndarray):
    ok = ok & ~np.isnan(denominator)
    return np.where(ok, numerator, 0.0), np.where(ok, denominator, 0.0)


def _group_rate_measure(group: str, patients: str):
    def team_group_rate(practices: pd.DataFrame):
        if not _team_inputs_present(practices) or patients not in practices:
            return None
        fte, known = _group_fte(practices, group)
        return _pair(fte, practices[patients].to_numpy(dtype=float), known)

    team_group_rate.__doc__ = f"Practice + PCN {group} FTE over {patients} where both count."
    return team_group_rate


def _team_rate_measure(patients: str):
    def team_rate(practices: pd.DataFrame):
        if not _team_inputs_present(practices) or patients not in practices:
            return None
        team, ok = _whole_team(practices)
        return _pair(team, practices[patients].to_numpy(dtype=float), ok)

    team_rate.__doc__ = f"Whole team FTE over {patients} where every group counts."
    return team_rate


def _pcn_rate(practices: pd.DataFrame):
    """PCN-employed FTE over registered patients of practices whose PCN is known."""
    if not _team_inputs_present(practices):
        return None
    pcn = sum(practices[pcn_fte_column(g)].to_numpy(dtype=float) for g in STAFF_GROUPS)
    known = (practices["pcn_status"] != PCN_STATUS_NO_RETURN).to_numpy()
    return _pair(pcn, practices["registered_patients"].to_numpy(dtype=float), known)


def _skill_mix_measure(group: str):
    def skill_mix(practices: pd.DataFrame):
        if not _team_inputs_present(practices):
            return None
        fte, _ = _group_fte(practices, group)
        team, ok = _whole_team(practices)
        return np.where(ok, np.nan_to_num(fte), 0.0), np.where(ok, team, 0.0)

    skill_mix.__doc__ = f"Practice + PCN {group} FTE over the whole team's FTE."
    return skill_mix


def whole_team_fte(practices: pd.DataFrame) -> pd.Series | None:
    """Each practice's whole team FTE: its own staff plus its share of its PCN's staff.

    NaN where the team does not count (a group unknown, or its PCN made no return); ``None``
    without team inputs. Indexed by ``practice_code``: the QOF measures divide it by register
    entries.
    """
    if not _team_inputs_present(practices):
        return None
    team, ok = _whole_team(practices)
    return pd.Series(np.where(ok, team, np.nan), index=practices["practice_code"].to_numpy())


#: Catalogue id -> measure: ``practices -> (numerator, denominator)`` arrays, or ``None`` when
#: the inputs are absent; :mod:`pophealth.attribution` registers each by id (``@measure``).
TEAM_MEASURES: dict[str, Callable[[pd.DataFrame], Any]] = {
    **{
        f"team_{group}_fte_per_10k{suffix}": _group_rate_measure(group, patients)
        for group in STAFF_GROUPS
        for suffix, patients in (("", "registered_patients"), ("_weighted", "weighted_patients"))
    },
    "team_fte_per_10k": _team_rate_measure("registered_patients"),
    "team_fte_per_10k_weighted": _team_rate_measure("weighted_patients"),
    "pcn_fte_per_10k": _pcn_rate,
    **{f"skill_mix_{group}": _skill_mix_measure(group) for group in STAFF_GROUPS},
}


def team_measures(practices: pd.DataFrame) -> pd.DataFrame:
    """Team indicators' numerators and denominators per practice.

    A practice counts towards a staff group's rates when its practice-file FTE for the group is
    known and its PCN made a workforce return (or it is in no PCN); the numerator is its own FTE
    plus its share of its PCN's staff of that group. The whole team needs all four groups known.
    Skill mix is each group's share of the whole team's FTE.

    Args:
        practices: ``practice_code, registered_patients``, the four ``*_fte`` group totals,
            ``pcn_status`` and ``pcn_<group>_fte`` (from :func:`apportion_pcn_staff`); optional
            ``weighted_patients``.

    Returns:
        ``practice_code`` plus ``<indicator>__num``/``__den`` columns for each measure of
        :data:`TEAM_MEASURES` whose inputs are present. (The team per 1,000 patients on disease
        registers is a QOF measure: :func:`whole_team_fte` over the registers.)

    Raises:
        StaffingInputError: A required column is missing.
    """
    needed = ["practice_code", "registered_patients", "pcn_status"]
    needed += [*PRACTICE_GROUP_FTE.values(), *(pcn_fte_column(g) for g in STAFF_GROUPS)]
    _require(practices, needed, "practices")
    out = {"practice_code": practices["practice_code"].to_numpy()}
    for indicator, function in TEAM_MEASURES.items():
        pair = function(practices)
        if pair is not None:
            out[f"{indicator}__num"], out[f"{indicator}__den"] = pair
    return pd.DataFrame(out)


def fair_share(
    numerator: pd.Series | np.ndarray,
    denominator: pd.Series | np.ndarray,
    benchmark: pd.Series | np.ndarray,
    shape: pd.Series | np.ndarray | str,
    multiplier: pd.Series | np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fair share of staff: the FTE an area would have at a benchmark's rate per patient.

    ``shape`` says which way up the value is. ``"rate"`` (FTE per ``multiplier`` patients): the
    fair share is ``denominator x benchmark / multiplier`` and the area has ``numerator`` FTE.
    ``"ratio"`` (patients per FTE): it is ``numerator / benchmark`` and the area has
    ``denominator`` FTE.

    The one fair-share formula of pophealth: the supply indicators' ratings
    (:func:`pophealth.indicators.rate_by_kind`) and the team views (:func:`fair_share_gaps`)
    both call it. Carr-Hill R, Sheldon T, et al. BMJ 1994;309:1046 (fair shares by
    need-weighted population).

    Returns:
        (fair share FTE, gap in FTE (actual - fair), gap as % of the fair share).
    """
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    bench = np.asarray(benchmark, dtype=float)
    is_ratio = np.asarray(shape) == "ratio"
    mult = np.asarray(multiplier, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        fair = np.where(is_ratio, num / bench, den * bench / mult)
        actual = np.where(is_ratio, den, num)
        gap = actual - fair
        pct = np.where(fair > 0, gap / fair * 100, np.nan)
    return fair, gap, pct


def fair_share_gaps(area_fte: pd.DataFrame, benchmark: pd.DataFrame) -> pd.DataFrame:
    """FTE each area would have at the benchmark's FTE per weighted patient, and the gap.

    The fair share of a staff group is the area's weighted (Carr-Hill global sum formula)
    patients times the benchmark's FTE per weighted patient: the NHS "fair shares" idea of
    resource allocation by need-weighted population (Carr-Hill R, Sheldon T, et al. "Allocating
    resources to health authorities: development of method for small area analysis of use of
    inpatient services", BMJ 1994;309:1046; NHS England, "Technical guide to the formulae for
    2023/24 to 2024/25 revenue allocations"). No interval is given: FTE are counts of staff time,
    not Poisson events.

    Args:
        area_fte: ``area_code, group, fte, weighted_patients`` (one row per area and group).
        benchmark: ``group, fte, weighted_patients`` (e.g. England), one row per group.

    Returns:
        ``area_code, group, actual_fte, weighted_patients, fte_per_10k, benchmark_per_10k,
        fair_share_fte, gap_fte`` (actual minus fair share; negative = short of staff) and
        ``gap_pct`` (gap as a percentage of the fair share). NaN where the area has no
        weighted patients or the benchmark has none.

    Raises:
        StaffingInputError: A required column is missing, or the benchmark repeats a group.
    """
    _require(area_fte, ["area_code", "group", "fte", "weighted_patients"], "area FTE")
    _require(benchmark, ["group", "fte", "weighted_patients"], "benchmark")
    if benchmark["group"].duplicated().any():
        raise StaffingInputError("benchmark has more than one row for a staff group.")
    bench = benchmark.set_index("group")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = bench["fte"].astype(float) / bench["weighted_patients"].astype(float).where(
            bench["weighted_patients"] > 0
        )
    weighted = area_fte["weighted_patients"].astype(float).where(area_fte["weighted_patients"] > 0)
    actual = area_fte["fte"].astype(float)
    per_patient = area_fte["group"].map(rate).astype(float)
    fair, gap, pct = fair_share(actual, weighted, per_patient * 10_000, "rate", 10_000)
    return pd.DataFrame(
        {
            "area_code": area_fte["area_code"].to_numpy(),
            "group": area_fte["group"].to_numpy(),
            "actual_fte": actual.to_numpy(),
            "weighted_patients": weighted.to_numpy(),
            "fte_per_10k": (actual / weighted * 10_000).to_numpy(),
            "benchmark_per_10k": (per_patient * 10_000).to_numpy(),
            "fair_share_fte": fair,
            "gap_fte": gap,
            "gap_pct": pct,
        }
    )


def group_fte_from_indicators(table: pd.DataFrame) -> pd.DataFrame:
    """Area x staff group FTE and weighted patients from the tidy indicator table.

    Reads the numerators (FTE) and denominators (weighted patients) of
    ``team_<group>_fte_per_10k_weighted`` and ``team_fte_per_10k_weighted`` (group ``team``).

    Returns:
        ``area_code, basis, group, fte, weighted_patients``.
    """
    _require(table, ["area_code", "basis", "indicator_id", "numerator", "denominator"], "table")
    ids = {f"team_{g}_fte_per_10k_weighted": g for g in STAFF_GROUPS}
    ids["team_fte_per_10k_weighted"] = WHOLE_TEAM
    rows = table[table["indicator_id"].isin(ids)]
    return pd.DataFrame(
        {
            "area_code": rows["area_code"].to_numpy(),
            "basis": rows["basis"].to_numpy(),
            "group": rows["indicator_id"].map(ids).to_numpy(),
            "fte": rows["numerator"].to_numpy(dtype=float),
            "weighted_patients": rows["denominator"].to_numpy(dtype=float),
        }
    )


def largest_gap_findings(gaps: pd.DataFrame, area_name: str, comparator: str) -> list[dict]:
    """The area's staff groups short of their fair share, largest shortfall first.

    Args:
        gaps: Rows of :func:`fair_share_gaps` for one area (staff groups; the whole team row,
            group ``team``, is left out of the ranking).
        area_name: For the sentence.
        comparator: Name of the benchmark (e.g. "England").

    Returns:
        One dict per staff group below its fair share, ranked by ``gap_pct`` (most short
        first): ``kind`` ("workforce_gap"), ``group``, ``label``, ``gap_fte``, ``gap_pct``,
        ``fair_share_fte``, ``actual_fte``, ``rank`` and ``text`` (a plain-English clause).
        Empty when no group is short or nothing could be compared.
    """
    _require(gaps, ["group", "actual_fte", "fair_share_fte", "gap_fte", "gap_pct"], "gaps")
    short = gaps[(gaps["group"] != WHOLE_TEAM) & (gaps["gap_fte"] < 0)].dropna(subset=["gap_pct"])
    short = short.sort_values(["gap_pct", "group"])
    findings = []
    for rank, row in enumerate(short.itertuples(index=False), start=1):
        label = STAFF_GROUPS.get(row.group, row.group)
        findings.append(
            {
                "kind": "workforce_gap",
                "group": row.group,
                "label": label,
                "actual_fte": float(row.actual_fte),
                "fair_share_fte": float(row.fair_share_fte),
                "gap_fte": float(row.gap_fte),
                "gap_pct": float(row.gap_pct),
                "rank": rank,
                "text": (
                    f"{area_name} has {abs(row.gap_fte):,.1f} FTE fewer "
                    f"{STAFF_NOUNS.get(row.group, label)} than its fair share at the "
                    f"{comparator} rate per weighted patient ({abs(row.gap_pct):.0f}% short)"
                ),
            }
        )
    return findings
