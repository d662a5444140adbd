"""Profile sections: what each notebook cell shows, built from chart and table functions.

Each function takes a :class:`pophealth.profile_frames.Profile` and displays one section, so the
three profile notebooks stay thin (a parameters cell, one build call, one cell per section) and show
the same section the same way.
"""

from __future__ import annotations

import pandas as pd

from pophealth import charts, indicators, tables
from pophealth.profile_frames import Profile


def _parent_label(p: Profile) -> str:
    return p.area.get("parent_name") or "Parent"


def _source(p: Profile, text: str) -> str:
    prefix = "SYNTHETIC DEMO DATA. " if p.synthetic else ""
    return prefix + text


def header(p: Profile) -> None:
    """Page set-up, the synthetic-data banner, area identity and the plain-English summary."""
    tables.inject_css()
    if p.synthetic:
        charts.show_html(tables.synthetic_banner())
    a = p.area
    level = {"neighbourhood": "Neighbourhood", "place": "Place", "system": "System"}[a["level"]]
    charts.show_html(
        tables.profile_heading(
            level=level,
            area_name=a["area_name"],
            area_code=a["area_code"],
            area_type=a["area_type"],
            basis=a["basis"],
            parent_name=a.get("parent_name"),
            comparator=p.comparator,
        )
    )
    charts.show_html(tables.styled_headline(p.headline))


def population(p: Profile) -> None:
    """List size, age indicators and the age-sex pyramid against the parent and comparator."""
    if len(p.pyramid):
        fig = charts.population_pyramid_spec(
            p.pyramid,
            title=f"Age and sex: {p.area['area_name']}",
            area_label=p.area["area_name"],
            parent_label=_parent_label(p),
            england_label=p.comparator,
            source_note=_source(p, "Patients registered at a GP practice, five-year age bands."),
        )
        charts.show(fig)
    _indicator_rows(p, "population")


def deprivation(p: Profile) -> None:
    """IMD score, Core20 share, deciles and a map of the LSOAs where the population lives."""
    _indicator_rows(p, "deprivation")
    charts.show(
        charts.deprivation_deciles_spec(
            p.deciles,
            title=f"Population by national IMD decile ({p.imd_release})",
            area_label=p.area["area_name"],
            parent_label=_parent_label(p),
            england_label=p.comparator,
            source_note=_source(p, f"English Indices of Deprivation, {p.imd_release}."),
            population_label="registered patients"
            if p.area["basis"] == "registered"
            else "residents",
        )
    )
    if p.map_geojson is not None and len(p.map_values):
        charts.show(
            charts.lsoa_choropleth_spec(
                p.map_geojson,
                p.map_values,
                title=f"Where the population lives: LSOAs by IMD decile ({p.imd_release})",
            )
        )
    else:
        charts.show_html(
            tables.text_block(
                "No LSOA boundaries in the prepared store: map not shown.", italic=True
            )
        )


def health(p: Profile) -> None:
    """General health and disability (Census 2021, attributed to the population)."""
    _indicator_rows(p, "health")


def ethnicity(p: Profile) -> None:
    """Ethnic minority groups (Census 2021)."""
    _indicator_rows(p, "ethnicity")


def workforce(p: Profile) -> None:
    """Workforce against need, inverse care law and fair share.

    Shows every practice's GP FTE per weighted patient against its IMD score,
    inverse care law by IMD quintile with SII, and the area's fair share of GP FTE.
    """
    _indicator_rows(p, "workforce")
    if len(p.practices):
        charts.show(
            charts.workforce_vs_need_spec(
                p.practices,
                title="GP FTE per 10,000 weighted patients against practice IMD score",
                highlight_label=p.area["area_name"],
            )
        )
    ic = p.inverse_care or {}
    if isinstance(ic.get("quintiles"), pd.DataFrame) and len(ic["quintiles"]):
        charts.show(
            charts.inverse_care_law_spec(
                ic["quintiles"],
                sii_text=ic.get("sii_text", ""),
                title="Inverse care law: GP FTE per 10,000 weighted patients by practice "
                "IMD quintile",
            )
        )
    if isinstance(ic.get("fair_share"), pd.DataFrame) and len(ic["fair_share"]):
        charts.show(
            charts.fair_share_bars_spec(
                ic["fair_share"], title=f"Fair share of GP FTE: {p.area['area_name']}"
            )
        )


def workforce_team(p: Profile) -> None:
    """The whole team (practice + PCN-employed staff) by staff group against England.

    The team chart (FTE per 10,000 weighted patients, practice and PCN parts, England's rate),
    the team table with fair shares, gaps and skill mix, the team indicators, and the practices
    whose workforce figures are missing or estimated.
    """
    if p.team is None or not len(p.team):
        charts.show_html(
            tables.text_block(
                "No PCN workforce in the prepared store: the whole team is not shown.", italic=True
            )
        )
        return
    charts.show(
        charts.team_chart_spec(
            p.team,
            title=f"The whole team: FTE per 10,000 weighted patients, {p.area['area_name']}",
            area_label=p.area["area_name"],
            comparator=p.comparator,
            source_note=_source(
                p,
                "NHS England GP workforce (practice level, detailed) and PCN workforce "
                "(individual level); PCN staff shared among practices by registered patients.",
            ),
        )
    )
    charts.show_html(tables.team_table(p.team, p.comparator))
    if p.workforce_findings:
        charts.show_html(
            tables.text_block("Largest gaps relative to need: " + p.workforce_findings[0]["text"])
        )
    _indicator_rows(p, "workforce_team")
    if not (p.indicators["indicator_id"] == "team_fte_per_1k_register").any():
        charts.show_html(
            tables.text_block(
                "The team per 1,000 patients on disease registers is shown when QOF registers "
                "are loaded.",
                italic=True,
            )
        )
    if len(p.workforce_quality):
        charts.show_html(tables.workforce_quality_table(p.workforce_quality))
    if p.roles is not None and len(p.roles):
        charts.show_html(
            tables.text_block("Practice staff by role (GP workforce, practice level, detailed)")
        )
        charts.show_html(tables.roles_table(p.roles, p.area["area_name"], p.comparator))


def workforce_heatmap(p: Profile) -> None:
    """System profiles: every neighbourhood x staff group, coloured by the fair-share gap."""
    if p.team_heatmap is None or not len(p.team_heatmap):
        charts.show_html(
            tables.text_block("No neighbourhood team figures for this system.", italic=True)
        )
        return
    charts.show(
        charts.workforce_heatmap_spec(
            p.team_heatmap,
            title="Neighbourhood teams against need: FTE per 10,000 weighted patients "
            "(most deprived first)",
            comparator=p.comparator,
            source_note=_source(
                p,
                "Colour: gap to the fair share at the comparator's FTE per weighted patient. "
                "NHS England GP and PCN workforce; IMD score of the registered population.",
            ),
        )
    )


def benchmarking(p: Profile) -> None:
    """Spine chart, sortable benchmark table and funnel plots."""
    if len(p.spine):
        charts.show(
            charts.spine_chart_spec(
                p.spine,
                title=f"{p.area['area_name']} compared with {p.comparator}",
                area_label=p.area["area_name"],
                comparator_label=p.comparator,
                peer_label=f"{p.area['level']}s ({p.area['basis']} basis) in the loaded data",
            )
        )
    charts.show_html(
        tables.benchmark_table(
            p.indicators,
            area_label=p.area["area_name"],
            parent_label=_parent_label(p),
            england_label=p.comparator,
        )
    )
    for f in p.funnels.values():
        charts.show(
            charts.funnel_plot_spec(
                f["points"],
                f["limits"],
                target=f["target"],
                title=f"Funnel plot: {f['title']}",
                highlight_code=p.area["area_code"],
                value_label=f"{f['title']} ({f['unit']})",
                source_note=f.get("method", ""),
            )
        )


def similar_areas(p: Profile) -> None:
    """Similar areas: the 10 nearest peers on needs, their average and the area's position."""
    if not len(p.similar_list):
        charts.show_html(
            tables.text_block(
                "No similar areas: too few comparable areas in the loaded data, or a needs "
                "variable is missing for this area.",
                italic=True,
            )
        )
        return
    used = p.similar_method.loc[p.similar_method["status"] == "used", "variable"]
    dropped = p.similar_method[p.similar_method["status"] != "used"]
    text = (
        f"The {len(p.similar_list)} {p.area['level']}s most like {p.area['area_name']} on "
        f"{', '.join(used)} (Euclidean distance on z-scores, see docs/peers.md)."
    )
    if len(dropped):
        text += " Left out as near-duplicates: " + "; ".join(
            f"{r.variable} ({r.status.removeprefix('dropped: ')})" for r in dropped.itertuples()
        )
    charts.show_html(tables.text_block(text))
    charts.show_html(tables.similar_areas_table(p.similar, area_label=p.area["area_name"]))
    charts.show_html(tables.peer_list_table(p.similar_list))


def change_over_time(p: Profile) -> None:
    """Trends, key trend charts with the comparator, and what changed since the last release.

    Each indicator with three or more periods gets a sparkline and its direction in words (SPC
    or the recent-trend test).
    """
    tr = p.trends or {}
    summary = tr.get("summary")
    if summary is None or not len(summary):
        charts.show_html(
            tables.text_block(
                "Not enough releases in the prepared store for trends (at least three periods "
                "are needed; add monthly releases with pophealth prepare --add).",
                italic=True,
            )
        )
        return
    periods = tr["periods"]
    charts.show_html(
        tables.text_block(
            f"{len(periods)} releases, {periods[0]} to {periods[-1]}, counted with today's "
            "neighbourhood membership (see the data-quality section). Change over time reads "
            "Making Data Count statistical process control for 12 or more points (the latest "
            "point's variation) and the chi-squared test for trend over the last 5 points for "
            "shorter series of percentages (docs/history.md)."
        )
    )
    charts.show_html(tables.trend_table(summary, p.comparator))
    series = tr["series"]
    for _, rows in series.groupby("indicator_id", sort=False):
        title, unit = rows["title"].iloc[0], rows["unit"].iloc[0]
        charts.show(
            charts.trend_chart_spec(
                rows,
                title=f"{title}: {p.area['area_name']} and {p.comparator}",
                area_label=p.area["area_name"],
                comparator_label=p.comparator,
                y_title=f"{title} ({unit})",
                source_note=_source(p, "Monthly releases in the prepared store."),
            )
        )
    charts.show_html(
        tables.subheading(f"What changed since the last release ({periods[-2]} to {periods[-1]})")
    )
    if len(tr["changes"]):
        charts.show_html(tables.changes_table(tr["changes"]))
    significance = tr["significance"]
    if len(significance):
        charts.show_html(
            tables.text_block(
                "Indicators whose comparison with "
                f"{p.comparator} changed: "
                + "; ".join(
                    f"{r.title} ({r.previous or 'none'} → {r.latest or 'none'})"
                    for r in significance.itertuples()
                )
            )
        )
    else:
        charts.show_html(
            tables.text_block(f"No indicator's comparison with {p.comparator} changed.")
        )
    latest_moves = tr["membership"]
    if len(latest_moves):
        charts.show_html(
            tables.text_block("Membership changes over the history are listed under data quality.")
        )


def basis_comparison(p: Profile) -> None:
    """System profiles: registered and resident populations side by side."""
    if len(p.basis_comparison):
        charts.show_html(p.basis_comparison.to_html(index=False, float_format="{:,.1f}".format))


def data_quality(p: Profile) -> None:
    """Coverage (patients that could not be placed), notes, provenance and definitions."""
    charts.show_html(tables.data_quality_table(p.coverage))
    charts.show_html(tables.text_block(list(p.notes)))
    charts.show_html(tables.provenance_table(p.provenance))
    membership = (p.trends or {}).get("membership")
    if membership is not None and len(membership):
        charts.show_html(tables.subheading("Practice membership changes over the release history"))
        charts.show_html(tables.membership_changes_table(membership))
    charts.show_html(tables.definitions_table(p.definitions))


def _indicator_rows(p: Profile, section: str) -> None:
    """The benchmark table of the section's indicators (catalogue ``section``)."""
    _benchmark_rows(p, indicators.section_indicators(section))


def _benchmark_rows(p: Profile, ids: list[str]) -> None:
    """The benchmark table of the given indicators."""
    rows = p.indicators[p.indicators["indicator_id"].isin(ids)]
    if len(rows):
        charts.show_html(
            tables.benchmark_table(
                rows,
                area_label=p.area["area_name"],
                parent_label=_parent_label(p),
                england_label=p.comparator,
            )
        )
    else:
        charts.show_html(
            tables.text_block(
                "These indicators could not be built from the loaded sources.", italic=True
            )
        )


def long_term_conditions(p: Profile) -> None:
    """Recorded prevalence against England, recorded vs expected, multimorbidity and workforce.

    Prevalence spine (each register over its own QOF denominator), recorded vs expected per
    condition with the largest estimated gaps first, and register burden and GP FTE per
    register entry beside the Carr-Hill weighted rate.
    """
    ltc = p.long_term_conditions
    if not ltc:
        charts.show_html(
            tables.text_block(
                "No QOF data in the prepared store: long-term conditions not shown.", italic=True
            )
        )
        return
    note = _source(p, "NHS England, Quality and Outcomes Framework (registers and list sizes).")
    if len(ltc["spine"]):
        charts.show(
            charts.spine_chart_spec(
                ltc["spine"],
                title=f"Recorded prevalence: {p.area['area_name']} compared with {p.comparator}",
                area_label=p.area["area_name"],
                comparator_label=p.comparator,
                peer_label=f"{p.area['level']}s ({p.area['basis']} basis) in the loaded data",
            )
        )
    gaps = ltc["table"].dropna(subset=["ratio"])
    if len(gaps):
        charts.show(
            charts.recorded_vs_expected_spec(
                gaps,
                title=f"Recorded against expected register: {p.area['area_name']}",
                source_note=note,
            )
        )
    charts.show_html(tables.findings_list(ltc["gaps"], empty="No register is significantly "
                     "below what national average recording would give."))  # fmt: skip
    _benchmark_rows(
        p, ["qof_registers_per_100", "gp_fte_per_1k_on_registers", "gp_fte_per_10k_weighted"]
    )


def core20plus5(p: Profile) -> None:
    """Core20PLUS5: Core20 share, PLUS groups (Census 2021) and the five clinical areas."""
    # Core20 (deprivation section) beside the PLUS groups (catalogue section core20plus5)
    _benchmark_rows(p, ["pct_core20", *indicators.section_indicators("core20plus5")])
    ltc = p.long_term_conditions
    clinical = ltc.get("core20plus5") if ltc else None
    if clinical is not None and len(clinical):
        ids = [f"qof_oe_{g.lower()}" for g in clinical["group_code"]]
        ids += [f"qof_prev_{g.lower()}" for g in clinical["group_code"]]
        _benchmark_rows(p, ids)
    else:
        charts.show_html(
            tables.text_block(
                "No QOF data in the prepared store: clinical areas not shown.", italic=True
            )
        )
