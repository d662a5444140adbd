"""Profile sections: what each notebook cell shows, built from chart and table functions.

Each function takes a :class:`pophealth.profile_frames.Profile` and displays one section, so the
three profile notebooks stay thin (a parameters cell, one build call, one cell per section) and show
the same section the same way. The page reads story first: :func:`header` gives the title,
links, the plain-English headline, key-figure tiles and the contents; every section then opens
with a heading (the contents' anchor) and one sentence saying what it shows, with numbers.
The only benchmark table is in :func:`benchmarking`; definitions and provenance are collapsed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pophealth import charts, indicators, prevalence, staffing, tables
from pophealth.profile_frames import Profile
from pophealth.runner.jobs import safe_stem

#: Section anchor -> heading, in page order (the contents lists those of the profile's level).
SECTION_HEADINGS: dict[str, str] = {
    "population": "Population",
    "deprivation": "Deprivation",
    "health": "Health and disability",
    "ethnicity": "Ethnicity",
    "workforce": "Workforce against need",
    "workforce-team": "The whole team",
    "workforce-heatmap": "Neighbourhood teams against need",
    "long-term-conditions": "Long-term conditions",
    "core20plus5": "Core20PLUS5",
    "benchmarking": "Benchmarking",
    "basis-comparison": "Registered and resident populations",
    "change-over-time": "Change over time",
    "similar-areas": "Similar areas",
    "data-quality": "Data quality and provenance",
}
_SYSTEM_ONLY = {"basis-comparison", "workforce-heatmap"}
#: A system has no peers among the loaded systems to compare with (one ICS per run).
_NOT_SYSTEM = {"similar-areas"}

_LEVEL_NAMES = {"neighbourhood": "Neighbourhood", "place": "Place", "system": "System"}


def _parent_label(p: Profile) -> str:
    return p.area.get("parent_name") or "Parent"


def _benchmarks(p: Profile) -> str:
    """The parent and the comparator, or the comparator alone when it is the parent."""
    parent = _parent_label(p)
    return p.comparator if parent == p.comparator else f"{parent} and {p.comparator}"


def _source(p: Profile, text: str) -> str:
    prefix = "SYNTHETIC DEMO DATA. " if p.synthetic else ""
    return prefix + text


def _row(p: Profile, indicator_id: str) -> dict | None:
    # one position look-up: a boolean filter takes every column of the table (~30 per page)
    hits = np.flatnonzero(p.indicators["indicator_id"].to_numpy(dtype=object) == indicator_id)
    if not len(hits) or pd.isna(p.indicators["value"].iloc[hits[0]]):
        return None
    return p.indicators.iloc[hits[0]].to_dict()


def _with_unit(value: Any, unit: str) -> str:
    text = tables.format_value(value, unit)
    if text == "–":
        return text
    return f"{text}%" if unit == "%" else f"{text} {unit}" if unit and unit != "score" else text


def _in_sentence(title: str) -> str:
    """An indicator title inside a sentence: "Aged 0 to 17" -> "aged 0 to 17", "IMD score" kept."""
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


def _fact(p: Profile, indicator_id: str) -> str | None:
    """'<title> <value> (<comparator> <value>, <comparison>)' for one indicator, or None."""
    row = _row(p, indicator_id)
    if row is None:
        return None
    unit = "" if pd.isna(row.get("unit")) else str(row["unit"])
    text = f"{_in_sentence(str(row['title']))} {_with_unit(row['value'], unit)}"
    if pd.notna(row.get("comparator_value")):
        text += f" ({p.comparator} {_with_unit(row['comparator_value'], unit)}"
        comparison = str(row.get("comparison") or "")
        if comparison and comparison != "not compared":
            text += f", {comparison}"
        text += ")"
    return text


def _facts(p: Profile, ids: list[str]) -> str:
    found = [f for f in (_fact(p, i) for i in ids) if f]
    return "; ".join(found) if found else "these indicators could not be built from the sources"


def _section_ids(anchor: str) -> list[str]:
    """Ids of the catalogue indicators of the section with this anchor, in catalogue order."""
    return indicators.section_indicators(anchor.replace("-", "_"))


def _rows_height(rows: int, row_px: int = 20) -> int:
    """Height in px of a one-row-per-item chart (spine, recorded vs expected): compact rows."""
    return max(240, row_px * rows + 130)


def _spine_labels(p: Profile) -> dict[str, str]:
    """A spine chart's legend names: the area, its comparator and its peers."""
    return {
        "area_label": p.area["area_name"],
        "comparator_label": p.comparator,
        "peer_label": f"{p.area['level']}s ({p.area['basis']} basis) in the loaded data",
    }


def _open(anchor: str, lead: str, *, short: bool = False, pair: bool = False) -> None:
    charts.show_html(
        tables.section_opening(anchor, SECTION_HEADINGS[anchor], lead, short=short, pair=pair)
    )


def _population_word(p: Profile) -> str:
    return "registered patients" if p.area["basis"] == "registered" else "residents"


# --------------------------------------------------------------------------- header
def page_sections(level: str) -> list[tuple[str, str]]:
    """The ``(anchor, heading)`` of every section a profile of ``level`` shows, in order."""
    return [
        (anchor, heading)
        for anchor, heading in SECTION_HEADINGS.items()
        if (anchor not in _SYSTEM_ONLY or level == "system")
        and (anchor not in _NOT_SYSTEM or level != "system")
    ]


def profile_href(level: str, area_code: str) -> str:
    """Relative URL from one profile page to another in the same run folder."""
    return f"../{safe_stem(level)}/{safe_stem(area_code)}.html"


def related_links(p: Profile, page_links: dict | None) -> list[tuple[str, str]]:
    """Links to the index, the parent's and the children's profiles (levels in this run)."""
    if not page_links:
        return []
    index = page_links.get("index")
    links = [("All profiles (index)", str(index))] if index else []
    levels = set(page_links.get("levels") or [])
    related = p.related if isinstance(p.related, pd.DataFrame) else pd.DataFrame()
    for record in related.to_dict("records"):
        if record["level"] not in levels:
            continue
        prefix = "Part of" if record["relation"] == "parent" else _LEVEL_NAMES[record["level"]]
        links.append(
            (f"{prefix}: {record['area_name']}", profile_href(record["level"], record["area_code"]))
        )
    return links


def download_links(p: Profile, page_links: dict | None) -> list[tuple[str, str]]:
    """Links to this profile's PDF and workbook when the run writes them."""
    stem = (page_links or {}).get("stem") or safe_stem(p.area["area_code"])
    wanted = set((page_links or {}).get("downloads") or [])
    names = {"pdf": ("PDF (A4)", f"{stem}.pdf"), "xlsx": ("Excel workbook", f"{stem}.xlsx")}
    return [names[kind] for kind in ("pdf", "xlsx") if kind in wanted]


def key_figures(p: Profile) -> list[tuple[str, str, str]]:
    """The key-figure tiles: population, deprivation, the largest needs, fair-share gap."""
    tiles = []
    size = _row(p, "list_size")
    if size is not None:
        tiles.append(("Population", tables.format_count(size["value"]), _population_word(p)))
    imd = _row(p, "imd_score")
    core20 = _row(p, "pct_core20")
    if imd is not None or core20 is not None:
        value = tables.format_value(imd["value"], "score") if imd is not None else "–"
        note = "IMD score (higher = more deprived)"
        if core20 is not None:
            note = f"{_with_unit(core20['value'], '%')} live in Core20 areas"
            if pd.notna(core20.get("comparator_value")):
                note += f" ({p.comparator} {_with_unit(core20['comparator_value'], '%')})"
        tiles.append(("Deprivation (IMD score)", value, note))
    flagged = p.indicators[p.indicators["comparison"].isin(["worse", "higher"])].copy()
    flagged = flagged[flagged["comparator_value"].abs() > 0]
    if len(flagged):
        flagged["ratio"] = (flagged["value"] / flagged["comparator_value"]).abs()
        top = flagged.sort_values("ratio", ascending=False).head(2)
        first = top.iloc[0]
        unit = str(first["unit"])
        note = (
            f"{_with_unit(first['value'], unit)} vs {_with_unit(first['comparator_value'], unit)}"
        )
        if len(top) > 1:
            note += f"; then {_in_sentence(str(top.iloc[1]['title']))}"
        tiles.append(("Largest need", str(first["title"]), note))
    else:
        tiles.append(("Largest need", "None flagged", f"no indicator worse than {p.comparator}"))
    fair = (p.inverse_care or {}).get("fair_share")
    if isinstance(fair, pd.DataFrame) and len(fair):
        row = fair.iloc[-1]  # the comparator's rate (the parent's is first)
        gap = float(row["gap_fte"])
        gap = 0.0 if abs(gap) < 0.05 else gap  # no "-0.0" when the area is the benchmark
        word = "short of" if gap < 0 else "above" if gap > 0 else "equal to"
        tiles.append(
            (
                "GP workforce against fair share",
                f"{gap:+,.1f} GP FTE",
                f"{float(row['actual_fte']):,.1f} FTE, {word} a fair share of "
                f"{float(row['fair_share_fte']):,.1f} at the {p.comparator} rate",
            )
        )
    return tiles


def header(p: Profile, page_links: dict | None = None) -> None:
    """Title and basis, links, the plain-English headline, key figures and contents.

    Args:
        p: The profile.
        page_links: From the batch runner (``None`` when run by hand): ``index`` (URL of the
            run's index, or None), ``levels`` (levels with profiles in the run, so parent and
            child links resolve), ``downloads`` (``pdf`` / ``xlsx`` written beside the page)
            and optionally ``stem`` (their file name without suffix; default the area code).
    """
    tables.inject_css()
    if p.synthetic:
        charts.show_html(tables.synthetic_banner())
    a = p.area
    level = _LEVEL_NAMES.get(a["level"], str(a["level"]).capitalize())
    parent = f" · part of {a['parent_name']}" if a.get("parent_name") else ""
    basis_line = (
        f"{a['area_code']} · {str(a['area_type']).upper()} · {a['basis']} population{parent} · "
        f"compared with {p.comparator}"
    )
    parts = [tables.page_title(f"{level} needs profile: {a['area_name']}", basis_line)]
    parts.append(tables.link_list(related_links(p, page_links), "Related profiles"))
    parts.append(tables.link_list(download_links(p, page_links), "Downloads"))
    parts.append(tables.styled_headline(p.headline))
    parts.append(tables.key_figure_tiles(key_figures(p)))
    parts.append(tables.contents(page_sections(a["level"])))
    charts.show_html("".join(parts))


# --------------------------------------------------------------------------- sections
def population(p: Profile) -> None:
    """Age and sex of the population against the parent and comparator."""
    size = _row(p, "list_size")
    count = f"{tables.format_count(size['value'])} " if size is not None else ""
    _open(
        "population",
        f"Age and sex of the {count}{_population_word(p)} against {_benchmarks(p)}: "
        f"{_facts(p, [i for i in _section_ids('population') if i != 'list_size'])}.",
    )
    if len(p.pyramid):
        fig = charts.population_pyramid_spec(
            p.pyramid,
            title=f"Age and sex: {p.area['area_name']}",
            area_label=p.area["area_name"],
            parent_label=_parent_label(p),
            england_label=p.comparator,
            source_note=_source(p, "Patients registered at a GP practice, five-year age bands."),
        )
        fig.update_layout(height=280)
        older = _fact(p, "pct_age_65_plus")
        charts.show(
            fig,
            caption="Bars: the area's share of people in each five-year age band by sex; "
            f"lines: {_benchmarks(p)}." + (f" In words: {older}." if older else ""),
        )


def deprivation(p: Profile) -> None:
    """IMD score, Core20 share, deciles and a map of the LSOAs where the population lives."""
    _open(
        "deprivation",
        f"How deprived the places are where the population lives ({p.imd_release}): "
        f"{_facts(p, _section_ids('deprivation'))}.",
    )
    deciles = p.deciles
    most = ""
    if isinstance(deciles, pd.DataFrame) and {"imd_decile", "area_pct"} <= set(deciles.columns):
        share = deciles.loc[deciles["imd_decile"].astype(int) <= 2, "area_pct"].sum()
        most = f"{share:.1f}% live in the two most deprived national deciles."
    charts.show(
        charts.deprivation_deciles_spec(
            p.deciles,
            title=f"Population by national IMD decile ({p.imd_release})",
            area_label=p.area["area_name"],
            parent_label=_parent_label(p),
            england_label=p.comparator,
            source_note=_source(p, f"English Indices of Deprivation, {p.imd_release}."),
            population_label=_population_word(p),
        ).update_layout(height=350),
        width="half",
        caption=f"Share of {_population_word(p)} in each national IMD decile "
        f"(1 = most deprived) against {_benchmarks(p)}. {most}",
    )
    if p.map_geojson is not None and len(p.map_values):
        charts.show(
            charts.lsoa_choropleth_spec(
                p.map_geojson,
                p.map_values,
                title=f"Where the population lives: LSOAs by IMD decile ({p.imd_release})",
            ).update_layout(height=350),
            width="half",
            caption=f"Map of the {len(p.map_values):,} LSOAs where the population lives, "
            "shaded by national IMD decile (darker = more deprived).",
        )
    else:
        charts.show_html(
            tables.text_block(
                "No LSOA boundaries in the prepared store: map not shown.", italic=True
            )
        )


def health(p: Profile) -> None:
    """General health and disability (Census 2021, attributed to the population)."""
    _open(
        "health",
        "General health and disability from Census 2021, attributed to the population: "
        f"{_facts(p, _section_ids('health'))}.",
        short=True,
        pair=True,  # two one-sentence sections side by side on a wide screen
    )


def ethnicity(p: Profile) -> None:
    """Ethnic minority groups (Census 2021)."""
    _open(
        "ethnicity",
        f"Ethnic minority groups from Census 2021: {_facts(p, _section_ids('ethnicity'))}.",
        short=True,
        pair=True,
    )


def workforce(p: Profile) -> None:
    """Workforce against need, inverse care law and fair share.

    Shows every practice's GP FTE per weighted patient against its IMD score,
    inverse care law by IMD quintile with SII, and the area's fair share of GP FTE.
    """
    _open(
        "workforce",
        "GP workforce against need (weighted patients) and deprivation: "
        f"{_facts(p, ['gp_fte_per_10k_weighted', 'nurse_fte_per_10k', 'patients_per_gp_fte'])}.",
    )
    if len(p.practices):
        fig = charts.workforce_vs_need_spec(
            p.practices,
            title="GP FTE per 10,000 weighted patients against practice IMD score",
            highlight_label=p.area["area_name"],
        )
        fig.update_layout(height=310)
        charts.show(
            fig,
            width="third",
            caption=f"Each dot is a practice ({len(p.practices):,}); the area's practices are "
            "highlighted. The line is the patient-weighted trend.",
        )
    ic = p.inverse_care or {}
    if isinstance(ic.get("quintiles"), pd.DataFrame) and len(ic["quintiles"]):
        fig = charts.inverse_care_law_spec(
            ic["quintiles"],
            sii_text=ic.get("sii_text", ""),
            title="Inverse care law: GP FTE per 10,000 weighted patients by practice IMD quintile",
        )
        fig.update_layout(height=310)
        charts.show(
            fig,
            width="third",
            caption=ic.get("sii_text") or "GP FTE per 10,000 weighted patients by quintile.",
        )
    if isinstance(ic.get("fair_share"), pd.DataFrame) and len(ic["fair_share"]):
        fig = charts.fair_share_bars_spec(
            ic["fair_share"], title=f"Fair share of GP FTE: {p.area['area_name']}"
        )
        fig.update_layout(height=310)
        tile = [t for t in key_figures(p) if t[0].startswith("GP workforce")]
        charts.show(
            fig,
            width="third",
            caption=f"Actual GP FTE against the fair share at each benchmark rate: "
            f"{tile[0][1]} ({tile[0][2]})."
            if tile
            else "Actual GP FTE against the fair share at each benchmark rate.",
        )


def workforce_team(p: Profile) -> None:
    """The whole team (practice + PCN-employed staff) by staff group against the comparator.

    Opens with the whole team's rate and its gap to the fair share; the team chart (FTE per
    10,000 weighted patients, practice and PCN parts, the comparator's rate) has the largest gaps
    in its caption; the team table, the practices with missing or estimated figures and the staff
    by role are collapsed. The team indicators are in the benchmark table.
    """
    team = p.team if isinstance(p.team, pd.DataFrame) else pd.DataFrame()
    if not len(team):
        _open(
            "workforce-team",
            "No PCN workforce in the prepared store: the whole team is not shown.",
            short=True,
        )
        return
    whole = team[team["group"] == staffing.WHOLE_TEAM]
    lead = "Practice and PCN-employed staff by staff group, per weighted patient, against "
    lead += f"{p.comparator}'s rate"
    if len(whole):
        row = whole.iloc[0]
        gap = float(row["gap_fte"])
        gap = 0.0 if abs(gap) < 0.05 else gap
        word = "short of" if gap < 0 else "above" if gap > 0 else "equal to"
        lead += (
            f": the whole team is {_with_unit(row['fte_per_10k'], '')} FTE per 10,000 weighted "
            f"patients ({p.comparator} {_with_unit(row['benchmark_per_10k'], '')}), "
            f"{abs(gap):,.1f} FTE {word} its fair share"
        )
    _open("workforce-team", lead + ".")
    findings = " " + str(p.workforce_findings[0]["text"]) if p.workforce_findings else ""
    register_note = (
        f" Against recorded need: {_facts(p, ['team_fte_per_1k_register'])}."
        if (p.indicators["indicator_id"] == "team_fte_per_1k_register").any()
        else " The team per 1,000 register entries is shown when QOF registers are loaded."
    )
    fig = charts.team_chart_spec(
        team,
        title=f"The whole team: FTE per 10,000 weighted patients, {p.area['area_name']}",
        area_label=p.area["area_name"],
        comparator=p.comparator,
        source_note=_source(
            p,
            "NHS England GP workforce (practice level, detailed) and PCN workforce "
            "(individual level); PCN staff shared among practices by registered patients.",
        ),
    )
    fig.update_layout(height=250)
    charts.show(
        fig,
        caption="Bars: FTE per 10,000 weighted patients by staff group, practice-employed and "
        f"PCN-employed parts; diamonds: {p.comparator}'s rate. Largest gaps relative to "
        f"need:{findings or ' none found.'}{register_note}",
    )
    detail = tables.collapsible(
        f"The team by staff group: fair shares, gaps and skill mix ({len(team)} rows)",
        tables.team_table(team, p.comparator),
    )
    if len(p.workforce_quality):
        detail += tables.collapsible(
            f"Practices with missing or estimated workforce figures ({len(p.workforce_quality)})",
            tables.workforce_quality_table(p.workforce_quality),
        )
    if p.roles is not None and len(p.roles):
        detail += tables.collapsible(
            f"Practice staff by role ({len(p.roles)} roles; GP workforce, practice level)",
            tables.roles_table(p.roles, p.area["area_name"], p.comparator),
        )
    charts.show_html(detail)


def workforce_heatmap(p: Profile) -> None:
    """System profiles: every neighbourhood x staff group, coloured by the fair-share gap."""
    cells = p.team_heatmap if isinstance(p.team_heatmap, pd.DataFrame) else pd.DataFrame()
    if not len(cells):
        _open("workforce-heatmap", "No neighbourhood team figures for this system.", short=True)
        return
    whole = cells[cells["group"] == staffing.WHOLE_TEAM]
    short = whole[whole["gap_fte"] < 0]
    _open(
        "workforce-heatmap",
        f"Each of the system's {cells['area_code'].nunique()} neighbourhoods' team against its "
        f"fair share at {p.comparator}'s rate, most deprived first: {len(short)} of "
        f"{len(whole)} have a whole team below their fair share.",
    )
    charts.show(
        charts.workforce_heatmap_spec(
            cells,
            title="Neighbourhood teams against need: FTE per 10,000 weighted patients "
            "(most deprived first)",
            comparator=p.comparator,
            source_note=_source(
                p,
                "Colour: gap to the fair share at the comparator's FTE per weighted patient. "
                "NHS England GP and PCN workforce; IMD score of the registered population.",
            ),
        ),
        caption="Rows: neighbourhoods, most deprived (highest IMD score) at the top; columns: "
        "staff groups; each cell's number is FTE per 10,000 weighted patients, its colour the "
        "gap to the fair share (red below, blue above).",
    )


def long_term_conditions(p: Profile) -> None:
    """Recorded prevalence against the comparator and recorded against expected registers.

    A prevalence spine (each register over its own QOF denominator) beside recorded vs expected
    per condition, largest estimated gaps first, then the significant gaps in words; the
    register burden and GP FTE per register entry are in the opening sentence.
    """
    ltc = p.long_term_conditions
    if not ltc:
        _open(
            "long-term-conditions",
            "No QOF data in the prepared store: long-term conditions are not shown.",
            short=True,
        )
        return
    gaps = ltc["gaps"]
    found = (
        f"{len(gaps)} register{'s' if len(gaps) != 1 else ''} significantly below it, the "
        f"largest gap in {_in_sentence(gaps[0]['condition'])}"
        if gaps
        else "no register significantly below it"
    )
    _open(
        "long-term-conditions",
        f"Recorded prevalence on {len(ltc['table'])} QOF disease registers against "
        f"{p.comparator}, and each register against what national average recording would give "
        f"for the population's age, sex and deprivation: {found}; "
        f"{_facts(p, [prevalence.BURDEN, prevalence.FTE_PER_REGISTER])}.",
    )
    note = _source(p, "NHS England, Quality and Outcomes Framework (registers and list sizes).")
    if len(ltc["spine"]):
        charts.show(
            charts.spine_chart_spec(
                # the chart's title says "recorded prevalence": rows name the register only
                ltc["spine"].assign(
                    title=ltc["spine"]["title"].str.removeprefix("Recorded prevalence: ")
                ),
                title=f"Recorded prevalence: {p.area['area_name']} compared with {p.comparator}",
                **_spine_labels(p),
            ).update_layout(height=_rows_height(len(ltc["spine"]), row_px=20)),
            width="half",
            caption="Spine chart: each row is a register's recorded prevalence; the marker is "
            f"the area, coloured by its comparison with {p.comparator}; the bar spans the range "
            "of peers. Values are in the register table below (select to open).",
        )
    ratios = ltc["table"].dropna(subset=["ratio"])
    if len(ratios):
        charts.show(
            charts.recorded_vs_expected_spec(
                ratios,
                title=f"Recorded against expected register: {p.area['area_name']}",
                source_note=note,
            ).update_layout(height=_rows_height(len(ratios), row_px=20)),
            width="half",
            caption="Recorded / expected register per condition with 95% limits; 1 is national "
            "average recording for the same age, sex and deprivation, red where the whole "
            "interval is below 1. " + (gaps[0]["text"] if gaps else ""),
        )
    charts.show_html(
        tables.findings_list(
            gaps,
            empty="No register is significantly below what national average recording would give.",
        )
        + tables.collapsible(
            f"Every register: recorded prevalence and recorded against expected "
            f"({len(ltc['table'])})",
            tables.register_table(ltc["table"], p.comparator),
        )
    )


def core20plus5(p: Profile) -> None:
    """Core20PLUS5: Core20 share, PLUS groups (Census 2021) and the five clinical areas."""
    # Core20 (deprivation section) beside the PLUS groups (catalogue section core20plus5)
    _open(
        "core20plus5",
        "NHS England's Core20PLUS5 groups and clinical areas: "
        f"{_facts(p, ['pct_core20', *_section_ids('core20plus5')])}.",
        short=True,  # one small chart: printed after the long-term conditions, no page break
    )
    ltc = p.long_term_conditions
    clinical = ltc.get("core20plus5") if ltc else None
    clinical = clinical.dropna(subset=["ratio"]) if clinical is not None else pd.DataFrame()
    if not len(clinical):
        charts.show_html(
            tables.text_block(
                "No QOF data in the prepared store: clinical areas not shown.", italic=True
            )
        )
        return
    below = clinical[clinical["ratio_high"] < 1]["clinical_area"].tolist()
    charts.show(
        charts.recorded_vs_expected_spec(
            clinical.assign(condition=clinical["clinical_area"]),
            title=f"Core20PLUS5 clinical areas: recorded against expected, {p.area['area_name']}",
            source_note=_source(p, "NHS England, Quality and Outcomes Framework."),
        ).update_layout(height=_rows_height(len(clinical))),
        caption="Recorded / expected register in the five clinical areas with open QOF data "
        "(1 = national average recording for the same age, sex and deprivation): "
        + (
            f"significantly below in {', '.join(_in_sentence(a) for a in below)}."
            if below
            else "none significantly below."
        ),
    )


def _benchmark_rows(p: Profile) -> pd.DataFrame:
    """The indicators in page order: by section (the catalogue's), catalogue order within.

    The per-register QOF rows are left to the Long-term conditions section's register table
    (one row per register), so each indicator is tabled once on the page.
    """
    registers = set(prevalence.indicator_ids()) - {prevalence.BURDEN, prevalence.FTE_PER_REGISTER}
    rows = p.indicators
    if p.long_term_conditions:
        rows = rows[~rows["indicator_id"].isin(registers)]
    ids = [i for anchor in SECTION_HEADINGS for i in _section_ids(anchor)]
    position = {indicator_id: n for n, indicator_id in enumerate(ids)}
    order = rows["indicator_id"].map(position).fillna(len(ids))
    return rows.iloc[order.argsort(kind="stable")]


def benchmarking(p: Profile) -> None:
    """Spine chart, the page's one benchmark table and funnel plots."""
    counts = p.indicators["comparison"].value_counts()
    summary = ", ".join(
        f"{int(counts[c])} {c}"
        for c in ("worse", "higher", "similar", "lower", "better")
        if c in counts
    )
    _open(
        "benchmarking",
        f"Every indicator against {p.comparator} (95% limits): {summary or 'none compared'}. "
        "The table has the values, limits, parent and method"
        + ("; each register's are under Long-term conditions." if p.long_term_conditions else "."),
    )
    # supply (workforce) is rated by fair share, which a spine cannot show: it has its own
    # charts under Workforce against need and The whole team
    spine = p.spine[p.spine["kind"] != "supply"] if "kind" in p.spine else p.spine
    if len(spine):
        fig = charts.spine_chart_spec(
            spine, title=f"{p.area['area_name']} compared with {p.comparator}", **_spine_labels(p)
        ).update_layout(height=_rows_height(len(spine)) - 30)
        charts.show(
            fig,
            caption=f"Spine chart: each row is a need or outcome indicator; the marker is the "
            f"area, coloured by its comparison with {p.comparator}; the bar spans the range of "
            "peers. Workforce indicators are compared by fair share in their own sections. Every "
            "value is in the table below (select to open).",
        )
    rows = _benchmark_rows(p)
    # collapsed so the page reads in about five screens; the spine above shows every row
    charts.show_html(
        tables.collapsible(
            f"Every indicator: values, 95% limits, {_benchmarks(p)} and method ({len(rows)})",
            tables.benchmark_table(
                rows,
                area_label=p.area["area_name"],
                parent_label=_parent_label(p),
                england_label=p.comparator,
                caption=f"Indicators for {p.area['area_name']} (select a heading to sort)",
            ),
        )
    )
    if p.funnels:
        positions = _funnel_positions(p)
        charts.show(
            _funnel_grid(p),
            caption=_funnel_caption(p, positions),
            collapsed=f"Funnel plots: {_funnel_summary(positions)}",
        )


def _funnel_grid(p: Profile) -> charts.FigureSpec:
    """Every funnel as one figure of small multiples, one legend for all."""
    panels = []
    for f in p.funnels.values():
        panel = charts.funnel_plot_spec(
            f["points"],
            f["limits"],
            target=f["target"],
            title=f["title"],
            highlight_code=p.area["area_code"],
            value_label=f["unit"],
        )
        for trace in panel.data:
            # the panels share one legend: names without each panel's own numbers
            if str(trace.get("name", "")).startswith("Target / average"):
                trace["name"] = "Target / average"
            if trace.get("mode") == "markers+text":
                trace["mode"], trace["text"] = "markers", None
        panel.update_xaxes(title={"text": "Denominator"})
        panels.append(panel)
    return charts.small_multiples_spec(
        panels,
        title=f"Funnel plots: {p.area['area_name']} among peer areas",
        columns=5,
    )


def _funnel_position(funnel: dict, code: str) -> str:
    """'above' / 'below' the 99.8% or 95% limits, 'within', or '' (no value)."""
    points, limits = funnel["points"], funnel["limits"]
    if not isinstance(points, pd.DataFrame) or not len(limits):
        return ""
    at = np.flatnonzero(points["area_code"].to_numpy(dtype=object) == code)
    if not len(at):
        return ""
    return charts.funnel_position(
        limits, points["denominator"].to_numpy()[at[0]], points["value"].to_numpy()[at[0]]
    )


def _funnel_positions(p: Profile) -> dict[str, str]:
    """Funnel key -> where the area sits in it (:func:`_funnel_position`), each worked out once."""
    code = p.area["area_code"]
    return {key: _funnel_position(f, code) for key, f in p.funnels.items()}


def _funnel_summary(positions: dict[str, str]) -> str:
    """How many outcomes fall outside their funnels' 99.8% and 95% limits (the summary line)."""
    wide = sum("99.8%" in x for x in positions.values())
    narrow = sum("95%" in x and "within" not in x for x in positions.values())
    return (
        f"{len(positions)} outcomes among peer areas; {wide} outside the 99.8% limits, "
        f"{narrow} more outside the 95% limits"
    )


def _funnel_caption(p: Profile, positions: dict[str, str]) -> str:
    """The funnels in words: where this area sits in each, against its target."""
    parts = []
    for key, f in p.funnels.items():
        position = positions[key]
        if position:
            parts.append(f"{f['title']} {position} (target {f['target']:,.1f} {f['unit']})")
    return (
        "Each panel is an outcome; dots are peer areas by population size (denominator), the "
        "line is the target, dashed lines the 95% and solid lines the 99.8% limits; the large "
        f"dot is {p.area['area_name']}. " + ("; ".join(parts) + "." if parts else "")
    )


def basis_comparison(p: Profile) -> None:
    """System profiles: registered and resident populations side by side."""
    _open(
        "basis-comparison",
        "The same indicators for the patients registered with the system's practices and for "
        "the people living in its area.",
    )
    if len(p.basis_comparison):
        charts.show_html(tables.basis_table(p.basis_comparison))


def change_over_time(p: Profile) -> None:
    """Trends, key trend charts with the comparator, and what changed since the last release.

    Each indicator with three or more periods gets a sparkline and its direction in words (SPC
    or the recent-trend test) in the collapsed trend table; an indicator with two values (e.g.
    two QOF years) shows both and "not enough data for a trend". The trend charts sit side by
    side. QOF indicators have one period per QOF year (docs/history.md).
    """
    tr = p.trends or {}
    summary = tr.get("summary")
    if summary is None or not len(summary):
        _open(
            "change-over-time",
            "Not enough releases in the prepared store for trends (at least three periods "
            "are needed; add monthly releases with pophealth prepare --add).",
            short=True,
        )
        return
    periods = tr["periods"]
    qof_years = tr.get("qof_years") or {}
    significance = tr["significance"]
    changed = (
        f"{len(significance)} indicators' comparison with {p.comparator} changed since the "
        "last release"
        if len(significance)
        else f"no indicator's comparison with {p.comparator} changed since the last release"
    )
    years = (
        f" and {len(qof_years)} QOF years ({', '.join(qof_years.values())})" if qof_years else ""
    )
    _open(
        "change-over-time",
        f"{len(summary)} indicators over {len(periods)} releases, {periods[0]} to "
        f"{periods[-1]}{years}, with today's neighbourhood membership: {changed}.",
    )
    for _, rows in tr["series"].groupby("indicator_id", sort=False):
        title, unit = rows["title"].iloc[0], rows["unit"].iloc[0]
        fig = charts.trend_chart_spec(
            rows,
            title=f"{title}: {p.area['area_name']} and {p.comparator}",
            area_label=p.area["area_name"],
            comparator_label=p.comparator,
            y_title=f"{title} ({unit})",
            source_note=_source(p, "Monthly releases in the prepared store."),
        )
        fig.update_layout(height=250)
        charts.show(
            fig,
            width="third",
            caption=f"{title} in each release: {p.area['area_name']} against {p.comparator}."
            + _spc_caption(rows),
        )
    detail = tables.collapsible(
        f"Every indicator's trend and direction ({len(summary)})",
        tables.text_block(
            "Change over time reads Making Data Count statistical process control for 12 or "
            "more points (the latest point's variation) and the chi-squared test for trend over "
            "the last 5 points for shorter series of percentages (docs/history.md). QOF "
            "indicators have one value per QOF year, at the month the year ends (QOF 2024-25: "
            "March 2025); with two years there is not enough data for a trend and both values "
            "are shown."
        )
        + tables.trend_table(summary, p.comparator),
    )
    since = tables.subheading(
        f"What changed since the last release ({periods[-2]} to {periods[-1]})"
        if len(periods) >= 2
        else "What changed since the last release"
    )
    if len(tr["changes"]):
        since += tables.changes_table(tr["changes"])
    if len(significance):
        since += tables.text_block(
            f"Indicators whose comparison with {p.comparator} changed: "
            + "; ".join(
                f"{r.title} ({r.previous or 'none'} → {r.latest or 'none'}"
                + (f", {r.period_label}" if r.qof else "")
                + ")"
                for r in significance.itertuples()
            )
        )
    else:
        since += tables.text_block(f"No indicator's comparison with {p.comparator} changed.")
    if len(tr["membership"]):
        since += tables.text_block(
            "Membership changes over the history are listed under data quality."
        )
    label = f"What changed since {periods[-2]}" if len(periods) >= 2 else "What changed"
    charts.show_html(detail + tables.collapsible(label, since))


def _spc_caption(rows: pd.DataFrame) -> str:
    """The latest point's Making Data Count reading, in words, where there are limits."""
    if "variation" not in rows or "upper_process_limit" not in rows:
        return ""
    latest = rows.sort_values("period").iloc[-1]
    if not np.isfinite(float(latest["upper_process_limit"])):
        return " Too few releases for process limits."
    return (
        f" Grey line: the mean; dotted lines: process limits (XmR); orange and blue points: "
        "special cause concern and improvement; latest release: "
        f"{str(latest['variation']).lower()}."
    )


def similar_areas(p: Profile) -> None:
    """Similar areas: the 10 nearest peers on needs, their average and the area's position."""
    if not len(p.similar_list):
        _open(
            "similar-areas",
            "No similar areas: too few comparable areas in the loaded data, or a needs "
            "variable is missing for this area.",
            short=True,
        )
        return
    used = p.similar_method.loc[p.similar_method["status"] == "used", "variable"]
    dropped = p.similar_method[p.similar_method["status"] != "used"]
    nearest = ", ".join(str(n) for n in p.similar_list["peer_name"].head(3))
    _open(
        "similar-areas",
        f"The {len(p.similar_list)} {p.area['level']}s most like {p.area['area_name']} on "
        f"{', '.join(used)}, nearest first ({nearest}), and where it stands among them.",
        short=True,
    )
    method = "Euclidean distance on z-scores of the needs variables (docs/peers.md)." + (
        " Left out as near-duplicates: "
        + "; ".join(
            f"{r.variable} ({r.status.removeprefix('dropped: ')})" for r in dropped.itertuples()
        )
        if len(dropped)
        else ""
    )
    charts.show_html(
        tables.collapsible(
            f"Each indicator against the similar areas ({len(p.similar)})",
            tables.similar_areas_table(p.similar, area_label=p.area["area_name"]),
        )
        + tables.collapsible(
            f"The similar areas and how they were found ({len(p.similar_list)})",
            tables.text_block(method) + tables.peer_list_table(p.similar_list),
        )
        + _region_peers(p)
    )


def _region_peers(p: Profile) -> str:
    """The most similar areas within the area's NHS England region (collapsed)."""
    region = p.similar_region_list
    if not p.similar_region or not len(region):
        return ""
    same = set(region["peer_code"]) == set(p.similar_list["peer_code"])
    note = (
        f"The same {len(region)} as across the loaded data: they are all in {p.similar_region}."
        if same
        else f"Only areas in {p.similar_region}, nearest first, by the same distance."
    )
    return tables.collapsible(
        f"The most similar areas within {p.similar_region} ({len(region)})",
        tables.text_block(note) + tables.peer_list_table(region),
    )


def data_quality(p: Profile) -> None:
    """Coverage (patients that could not be placed), notes, provenance and definitions."""
    _open(
        "data-quality",
        "How completely the population could be placed in neighbourhoods of residence, and "
        "(collapsed) what to bear in mind, every source file and indicator definition.",
    )
    changes = (p.trends or {}).get("membership")
    membership = (
        tables.collapsible(
            f"Practice membership changes over the release history ({len(changes)})",
            tables.membership_changes_table(changes),
        )
        if changes is not None and len(changes)
        else ""
    )
    charts.show_html(
        tables.data_quality_table(p.coverage)
        + tables.collapsible(
            f"Notes on sources and methods ({len(p.notes)})", tables.bullet_list(p.notes)
        )
        + tables.collapsible(
            f"Sources and checksums ({len(p.provenance)} files)",
            tables.provenance_table(p.provenance),
        )
        + membership
        + tables.collapsible(
            f"Indicator definitions ({len(p.definitions)})",
            tables.definitions_table(p.definitions),
            css=tables.DEFINITIONS_CSS,  # a run folder links its one definitions page instead
        )
    )
