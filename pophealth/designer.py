"""Neighbourhood designer: profiles of ad-hoc groups of practices, and a widget to draw them.

Integrated Neighbourhood Teams are being drawn now. An analyst groups practices into candidate
neighbourhoods and wants, before deciding, each candidate's population, deprivation, needs and
fair share of GP workforce, and to see that no practice is left in no neighbourhood.

The functions here work without widgets::

    >>> data = pophealth.load("runs/demo/prepared")                      # doctest: +SKIP
    >>> g = data.profile_of_practices(["Y90001", "Y90002"], name="North")  # doctest: +SKIP
    >>> g.headline, g.indicators, g.fair_share                           # doctest: +SKIP

:class:`NeighbourhoodDesigner` puts them behind a practice list and a map (each practice drawn
at the patient-weighted centre of the LSOAs its patients live in, so no geocoding is needed)
and saves the groupings as the YAML that ``pophealth run --neighbourhoods`` reads.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pophealth import attribution, geography, indicators, profile_frames
from pophealth.config import (
    ConfigError,
    load_neighbourhood_groupings,
    neighbourhood_groupings_frame,
    neighbourhood_groupings_yaml,
)

GROUPING_COLUMNS = ["neighbourhood_code", "neighbourhood_name", "practice_code"]
SUMMARY_INDICATORS = ("list_size", "imd_score", "pct_core20", "pct_age_65_plus", "pct_bad_health")


@dataclass
class GroupProfile:
    """Headline profile of a group of practices (a candidate neighbourhood)."""

    area: dict
    indicators: pd.DataFrame
    fair_share: pd.DataFrame
    practices: pd.DataFrame
    comparator: str = "England"

    @cached_property
    def headline(self) -> str:
        """The plain-English headline sentence, as on a profile (built when first read)."""
        if not len(self.indicators):
            return ""
        area = {**self.area, "basis": "registered"}
        return profile_frames.headline_text(area, self.indicators, self.comparator)

    @property
    def population(self) -> float:
        """Registered patients of the group's practices."""
        return float(self.practices["registered_patients"].sum())

    @cached_property
    def values(self) -> dict[str, float]:
        """``indicator_id -> value`` for the indicators built."""
        return dict(zip(self.indicators["indicator_id"], self.indicators["value"], strict=True))

    def value(self, indicator_id: str) -> float:
        """The group's value of one indicator (NaN when not built)."""
        return float(self.values.get(indicator_id, float("nan")))


# -- geometry: LSOA and practice centres ---------------------------------------------------


def lsoa_centres(data) -> pd.DataFrame:
    """``lsoa21_code, lon, lat``: the centroid of every LSOA boundary in the store (WGS84)."""

    def build() -> pd.DataFrame:
        path = data.prepared_dir / "boundaries.parquet"
        if not path.exists():
            return pd.DataFrame(columns=["lsoa21_code", "lon", "lat"])
        import geopandas as gpd
        import shapely

        shapes = gpd.read_parquet(path)
        if shapes.crs is not None and shapes.crs.to_epsg() != 4326:
            shapes = shapes.to_crs(4326)
        # LSOAs are small: planar centroids in degrees are within metres of geodesic ones
        centres = shapely.centroid(shapes.geometry.to_numpy())
        return pd.DataFrame(
            {
                "lsoa21_code": shapes["lsoa21_code"].astype(str).to_numpy(),
                "lon": shapely.get_x(centres),
                "lat": shapely.get_y(centres),
            }
        )

    return data.memo.get(("lsoa_centres",), build)


def practice_centres(data) -> pd.DataFrame:
    """Every practice placed at the patient-weighted centre of the LSOAs its patients live in.

    Returns:
        ``practice_code, practice_name, pcn_code, pcn_name, sicbl_code, icb_code,
        registered_patients, lon, lat`` (lon/lat NaN for a practice with no matched patients in
        an LSOA with a boundary).
    """

    def build() -> pd.DataFrame:
        arrays = data.matched_arrays
        centres = lsoa_centres(data).set_index("lsoa21_code")
        lon = centres["lon"].reindex(arrays["lsoa_codes"]).to_numpy()[arrays["lsoa"]]
        lat = centres["lat"].reindex(arrays["lsoa_codes"]).to_numpy()[arrays["lsoa"]]
        ok = np.isfinite(lon) & np.isfinite(lat)
        n = len(arrays["practice_codes"])
        weights = np.where(ok, arrays["patients"], 0.0)
        total = np.bincount(arrays["practice"], weights=weights, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_lon = np.bincount(arrays["practice"], np.where(ok, lon, 0) * weights, n) / total
            mean_lat = np.bincount(arrays["practice"], np.where(ok, lat, 0) * weights, n) / total
        placed = pd.DataFrame(
            {"practice_code": arrays["practice_codes"], "lon": mean_lon, "lat": mean_lat}
        )
        columns = ["practice_code", "practice_name", "pcn_code", "pcn_name", "sicbl_code"]
        columns += ["icb_code", "registered_patients"]
        practices = data.practices[[c for c in columns if c in data.practices]]
        return practices.merge(placed, on="practice_code", how="left").reset_index(drop=True)

    return data.memo.get(("practice_centres",), build)


# -- groupings -----------------------------------------------------------------------------


def groupings_frame(groups: dict[str, tuple[str, list[str]]]) -> pd.DataFrame:
    """``{code: (name, [practice codes])}`` as a checked groupings table (empty groups dropped)."""
    doc = {
        "neighbourhoods": [
            {"code": code, "name": name, "practices": list(practices)}
            for code, (name, practices) in groups.items()
            if len(practices)
        ]
    }
    if not doc["neighbourhoods"]:
        return pd.DataFrame(columns=GROUPING_COLUMNS)
    return neighbourhood_groupings_frame(doc, source="candidate neighbourhoods")


def group_indicator_table(data, groupings: pd.DataFrame) -> pd.DataFrame:
    """The tidy indicator table for candidate neighbourhoods, benchmarked like PCNs are.

    Each candidate's parent is the sub-ICB location holding most of its patients; its
    comparator is England (from the national files), as for every other area.

    Args:
        data: A loaded :class:`pophealth.api.PopHealthData`.
        groupings: ``neighbourhood_code, neighbourhood_name, practice_code``.

    Returns:
        Rows of the tidy indicator table (``indicators.TIDY_COLUMNS``) for the candidates only.
    """
    if not len(groupings):
        return data.indicator_table.iloc[:0]
    members = geography.neighbourhood_practices(data.practices, groupings)
    clash = sorted(set(members["area_code"]) & set(data.register["area_code"]))
    if clash:
        raise ConfigError(
            f"Candidate neighbourhood code(s) {clash} are already area codes in the loaded data; "
            "choose other codes (e.g. INT01)."
        )
    weights = data.practices[["practice_code", "sicbl_code", "registered_patients"]]
    parent = geography._majority_parent(
        members.merge(weights, on="practice_code"),
        "area_code",
        "sicbl_code",
        "registered_patients",
    ).rename(columns={"sicbl_code": "parent_code"})
    candidates = members.drop_duplicates("area_code")[["area_code", "area_name", "area_type"]]
    candidates = candidates.merge(parent, on="area_code", how="left").assign(
        level="neighbourhood", basis="registered"
    )
    register = data.register[data.register["basis"] == "registered"]
    context = register[
        register["area_code"].isin(set(candidates["parent_code"]) | {geography.ALL_LOADED_CODE})
    ]
    by_code = register.drop_duplicates("area_code").set_index("area_code")
    candidates["parent_name"] = candidates["parent_code"].map(by_code["area_name"])
    candidates["system_code"] = candidates["parent_code"].map(by_code["parent_code"])
    measures = pd.concat(
        [
            attribution.aggregate_measures(
                data.practice_measures, members[["practice_code", "area_code"]], "practice_code"
            ),
            data.registered_measures[
                data.registered_measures["area_code"].isin(context["area_code"])
            ],
        ],
        ignore_index=True,
    )
    table = indicators.compute_indicator_table(
        pd.concat([candidates[geography.AREA_COLUMNS], context], ignore_index=True),
        measures,
        None,
        ethnicity_definition=attribution.ethnicity_definition(data.lsoa),
    )
    return table[table["area_code"].isin(candidates["area_code"])].reset_index(drop=True)


def group_profiles(data, groupings: pd.DataFrame) -> dict[str, GroupProfile]:
    """A :class:`GroupProfile` for each candidate neighbourhood in ``groupings``."""
    table = group_indicator_table(data, groupings)
    by_code = dict(tuple(table.groupby("area_code", sort=False)))
    practices = data.practices.set_index("practice_code")
    names = data.register.drop_duplicates("area_code").set_index("area_code")["area_name"]
    out = {}
    for code, members in groupings.groupby("neighbourhood_code", sort=False):
        rows = by_code.get(code, table.iloc[:0]).reset_index(drop=True)
        rows = rows.assign(comparison=rows["comparison_95"])
        area = {"area_code": code, "area_name": members["neighbourhood_name"].iloc[0]}
        if len(rows):
            area = {c: rows.iloc[0][c] for c in geography.AREA_COLUMNS if c in rows}
            area["parent_name"] = names.get(area.get("parent_code"))
        listed = practices.reindex(members["practice_code"])
        out[str(code)] = GroupProfile(
            area=area,
            indicators=rows,
            fair_share=profile_frames.fair_share_frame(rows),
            practices=listed[["practice_name", "registered_patients"]].reset_index(),
            comparator=data.comparator,
        )
    return out


def profile_of_practices(
    data, practices, *, name: str = "Candidate neighbourhood", code: str = "CANDIDATE"
) -> GroupProfile:
    """Headline profile of one ad-hoc list of practices (see :func:`group_profiles`)."""
    codes = [str(p).strip().upper() for p in practices]
    return group_profiles(data, groupings_frame({code: (name, codes)}))[code]


def unassigned_practices(data, groupings: pd.DataFrame, system: str | None = None) -> pd.DataFrame:
    """Practices (of one system, or all) in no candidate neighbourhood, largest list first."""
    practices = data.practices
    if system is not None:
        practices = practices[practices["icb_code"] == system]
    loose = practices[~practices["practice_code"].isin(groupings["practice_code"])]
    return loose[["practice_code", "practice_name", "registered_patients"]].sort_values(
        "registered_patients", ascending=False
    )


def save_groupings(groupings: pd.DataFrame, path: str | Path, name: str) -> Path:
    """Write groupings as the YAML that ``pophealth run --neighbourhoods`` reads.

    Returns:
        The path written.
    """
    text = neighbourhood_groupings_yaml(groupings, name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def summary_table(profiles: dict[str, GroupProfile], comparator: str) -> str:
    """HTML table: one row per candidate with population, deprivation, needs and fair share."""
    from pophealth.tables import format_count, format_value

    head = (
        "<tr><th>Neighbourhood</th><th>Practices</th><th>Registered patients</th>"
        "<th>IMD score</th><th>Core20 %</th><th>Aged 65+ %</th><th>GP FTE (actual)</th>"
        f"<th>GP FTE fair share at {html.escape(comparator)} rate</th><th>Gap</th></tr>"
    )
    body = []
    for g in profiles.values():
        fair = g.fair_share[g.fair_share["benchmark"] == "Comparator rate"]
        actual = fair["actual_fte"].iloc[0] if len(fair) else np.nan
        share = fair["fair_share_fte"].iloc[0] if len(fair) else np.nan
        gap = fair["gap_fte"].iloc[0] if len(fair) else np.nan
        cells = [
            html.escape(str(g.area.get("area_name", ""))),
            format_count(len(g.practices)),
            format_count(g.population),
            format_value(g.value("imd_score")),
            format_value(g.value("pct_core20"), "%"),
            format_value(g.value("pct_age_65_plus"), "%"),
            format_value(actual),
            format_value(share),
            ("+" if gap > 0 else "") + format_value(gap),
        ]
        body.append(
            "<tr>"
            + "".join(
                f'<td style="text-align:{"left" if i == 0 else "right"}">{c}</td>'
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )
    return (
        '<table class="ph-designer-summary" style="border-collapse:collapse">'
        f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
    )


def load_groupings(path: str | Path) -> pd.DataFrame:
    """Read a neighbourhoods YAML (as written by :func:`save_groupings`)."""
    return load_neighbourhood_groupings(path)


# -- the widget ----------------------------------------------------------------------------

PALETTE = (
    "#005EB8",
    "#DA291C",
    "#009639",
    "#ED8B00",
    "#7C2855",
    "#00A9CE",
    "#FFB81C",
    "#330072",
    "#78BE20",
    "#AE2573",
    "#006747",
    "#8A1538",
)
UNASSIGNED_COLOUR = "#AEB7BD"


class NeighbourhoodDesigner:
    """Group a system's practices into candidate neighbourhoods and see their profiles live.

    Pick practices in the list (type to filter) or on the map (click one, or lasso several),
    add them to the current neighbourhood, and every candidate's population, deprivation,
    needs and fair-share GP FTE is recomputed; practices in no neighbourhood are listed.
    Save writes the YAML that ``pophealth run --neighbourhoods`` reads; Load reads one back.

    Args:
        data: A loaded :class:`pophealth.api.PopHealthData`.
        system: ICB code (ONS or ODS) whose practices are grouped (default: the first).
        path: Default file for Save and Load.
    """

    def __init__(
        self, data, *, system: str | None = None, path: str | Path = "neighbourhoods.yaml"
    ):
        import ipywidgets as widgets
        import plotly.graph_objects as go

        self.data = data
        systems = data.practices.dropna(subset=["icb_code"]).drop_duplicates("icb_code")
        systems = systems.sort_values("icb_code")
        self.groups: dict[str, tuple[str, list[str]]] = {}
        self.profiles: dict[str, GroupProfile] = {}
        self._computed: dict[str, tuple[tuple, GroupProfile]] = {}
        self.system = widgets.Dropdown(
            options=[(f"{r.icb_name} ({r.icb_code})", r.icb_code) for r in systems.itertuples()],
            value=data.resolve_system(system) if system else systems["icb_code"].iloc[0],
            description="System",
        )
        self.current = widgets.Dropdown(options=[], description="Editing")
        self.new_name = widgets.Text(placeholder="New neighbourhood name")
        self.add_group = widgets.Button(description="New neighbourhood", icon="plus")
        self.from_pcns = widgets.Button(description="Start from PCNs")
        self.clear = widgets.Button(description="Clear all")
        self.filter = widgets.Text(placeholder="Filter practices by name or code")
        self.practice_list = widgets.SelectMultiple(rows=10, layout=widgets.Layout(width="520px"))
        self.add_practices = widgets.Button(description="Add to neighbourhood", icon="arrow-right")
        self.remove_practices = widgets.Button(description="Remove from any")
        self.map = go.FigureWidget()
        self.summary = widgets.HTML()
        self.headlines = widgets.HTML()
        self.unassigned = widgets.HTML()
        self.status = widgets.HTML()
        self.set_name = widgets.Text(value="Candidate neighbourhoods", description="Title")
        self.path = widgets.Text(value=str(path), description="File")
        self.save = widgets.Button(description="Save YAML", icon="save")
        self.load = widgets.Button(description="Load YAML", icon="folder-open")
        self.system.observe(lambda _: self._on_system(), names="value")
        self.current.observe(lambda _: self._show_headline(), names="value")
        self.filter.observe(lambda _: self._fill_list(), names="value")
        self.add_group.on_click(lambda _: self.new_group(self.new_name.value))
        self.from_pcns.on_click(lambda _: self.start_from_pcns())
        self.clear.on_click(lambda _: self._reset())
        self.add_practices.on_click(lambda _: self.assign(self._listed_codes()))
        self.remove_practices.on_click(lambda _: self.unassign(self._listed_codes()))
        self.save.on_click(lambda _: self._guard(lambda: self.save_yaml(self.path.value)))
        self.load.on_click(lambda _: self._guard(lambda: self.load_yaml(self.path.value)))
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.system, self.from_pcns, self.clear]),
                widgets.HBox([self.current, self.new_name, self.add_group]),
                widgets.HBox(
                    [
                        widgets.VBox(
                            [
                                self.filter,
                                self.practice_list,
                                widgets.HBox([self.add_practices, self.remove_practices]),
                            ]
                        ),
                        self.map,
                    ]
                ),
                self.status,
                widgets.HTML("<h3>Candidate neighbourhoods</h3>"),
                self.summary,
                self.headlines,
                widgets.HTML("<h3>Practices in no neighbourhood</h3>"),
                self.unassigned,
                widgets.HBox([self.set_name, self.path, self.save, self.load]),
            ]
        )
        self._on_system()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- state changes ---------------------------------------------------------------------
    @property
    def practices(self) -> pd.DataFrame:
        """The system's practices with their map positions."""
        centres = practice_centres(self.data)
        return centres[centres["icb_code"] == self.system.value].reset_index(drop=True)

    def groupings(self) -> pd.DataFrame:
        """The candidate neighbourhoods as a groupings table (empty ones left out)."""
        return groupings_frame(self.groups)

    def new_group(self, name: str = "", code: str | None = None) -> str:
        """Add an empty neighbourhood and make it the one being edited; returns its code."""
        number = len(self.groups) + 1
        while f"INT{number:02d}" in self.groups:
            number += 1
        code = code or f"INT{number:02d}"
        self.groups[code] = ((name or "").strip() or f"Neighbourhood {number}", [])
        self.new_name.value = ""
        self._fill_groups(code)
        return code

    def assign(self, practice_codes, group: str | None = None) -> None:
        """Move practices into a neighbourhood (the one being edited by default)."""
        codes = [str(c) for c in practice_codes]
        if not codes:
            return
        group = group or self.current.value or self.new_group()
        for other, (name, members) in self.groups.items():
            self.groups[other] = (name, [m for m in members if m not in codes])
        name, members = self.groups[group]
        self.groups[group] = (name, members + codes)
        self.refresh()

    def unassign(self, practice_codes) -> None:
        """Take practices out of every neighbourhood."""
        codes = {str(c) for c in practice_codes}
        for group, (name, members) in self.groups.items():
            self.groups[group] = (name, [m for m in members if m not in codes])
        self.refresh()

    def start_from_pcns(self) -> None:
        """One candidate per PCN of the system (a starting point to redraw)."""
        practices = self.practices.dropna(subset=["pcn_code"])
        self.groups = {
            str(code): (str(rows["pcn_name"].iloc[0]), rows["practice_code"].tolist())
            for code, rows in practices.groupby("pcn_code", sort=True)
        }
        # PCN codes are area codes already; candidates need codes of their own
        self.groups = {f"INT{i:02d}": g for i, g in enumerate(self.groups.values(), start=1)}
        self._fill_groups(next(iter(self.groups), None))
        self.refresh()

    def save_yaml(self, path: str | Path) -> Path:
        """Write the candidates as a neighbourhoods YAML; returns the path."""
        written = save_groupings(self.groupings(), path, self.set_name.value)
        self.status.value = (
            f"Saved {len(self.groupings()):,} practices to {html.escape(str(written))}."
        )
        return written

    def load_yaml(self, path: str | Path) -> None:
        """Replace the candidates with the groupings in a neighbourhoods YAML."""
        frame = load_groupings(path)
        geography.neighbourhood_practices(self.data.practices, frame)  # unknown codes: clear error
        systems = self.data.practices.set_index("practice_code")["icb_code"]
        first = frame["practice_code"].map(systems).mode()
        if len(first) and first.iloc[0] != self.system.value:
            self.system.value = first.iloc[0]
        self.groups = {
            str(code): (str(rows["neighbourhood_name"].iloc[0]), rows["practice_code"].tolist())
            for code, rows in frame.groupby("neighbourhood_code", sort=False)
        }
        self._fill_groups(next(iter(self.groups), None))
        self.refresh()
        self.status.value = (
            f"Loaded {len(self.groups)} neighbourhoods from {html.escape(str(path))}."
        )

    # -- display ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Recompute every candidate's profile and redraw the summary, map and lists."""
        groupings = self.groupings()
        # only candidates whose name or practices changed are recomputed
        keys = {
            code: (name, tuple(members)) for code, (name, members) in self.groups.items() if members
        }
        stale = groupings[
            groupings["neighbourhood_code"].map(
                lambda c: self._computed.get(c, (None, None))[0] != keys[c]
            )
        ]
        if len(stale):
            for code, profile in group_profiles(self.data, stale).items():
                self._computed[code] = (keys[code], profile)
        self.profiles = {code: self._computed[code][1] for code in keys}
        comparator = self.data.comparator
        self.summary.value = (
            summary_table(self.profiles, comparator)
            if self.profiles
            else "<p><i>No neighbourhood has practices yet.</i></p>"
        )
        self._show_headline()
        loose = unassigned_practices(self.data, groupings, self.system.value)
        listed = "".join(
            f"<li>{html.escape(str(r.practice_name))} ({html.escape(str(r.practice_code))}, "
            f"{r.registered_patients:,.0f} patients)</li>"
            for r in loose.head(50).itertuples()
        )
        more = f"<li>… and {len(loose) - 50:,} more</li>" if len(loose) > 50 else ""
        self.unassigned.value = (
            f"<p class='ph-unassigned'><b>{len(loose):,}</b> practice(s), "
            f"{loose['registered_patients'].sum():,.0f} registered patients, in no "
            f"neighbourhood.</p><ul>{listed}{more}</ul>"
            if len(loose)
            else "<p class='ph-unassigned'>Every practice of the system is in a neighbourhood.</p>"
        )
        self._fill_list()
        self._colour_map()

    def _show_headline(self) -> None:
        editing = self.profiles.get(self.current.value)
        self.headlines.value = (
            f"<p class='ph-headline'>{html.escape(editing.headline)}</p>" if editing else ""
        )

    def _on_system(self) -> None:
        self.groups = {}
        self._fill_groups(None)
        self._draw_map()
        self.refresh()

    def _reset(self) -> None:
        self.groups = {}
        self._fill_groups(None)
        self.refresh()

    def _guard(self, action) -> None:
        from pophealth.errors import PopHealthError

        try:
            action()
        except (PopHealthError, OSError) as exc:
            self.status.value = f"<span style='color:#DA291C'>{html.escape(str(exc))}</span>"

    def _fill_groups(self, selected: str | None) -> None:
        self.current.options = [
            (f"{name} ({code})", code) for code, (name, _) in self.groups.items()
        ]
        self.current.value = selected if selected in self.groups else None

    def _membership(self) -> dict[str, str]:
        return {p: code for code, (_, members) in self.groups.items() for p in members}

    def _fill_list(self) -> None:
        practices = self.practices
        text = self.filter.value.strip().lower()
        if text:
            hit = practices["practice_name"].str.lower().str.contains(text, regex=False)
            hit |= practices["practice_code"].str.lower().str.contains(text, regex=False)
            practices = practices[hit]
        member_of = self._membership()
        names = {p: self.groups[code][0] for p, code in member_of.items()}
        self.practice_list.options = [
            (
                f"{r.practice_name} ({r.practice_code}) · {r.registered_patients:,.0f} patients"
                f" · {names.get(r.practice_code, 'no neighbourhood')}",
                r.practice_code,
            )
            for r in practices.itertuples()
        ]

    def _listed_codes(self) -> list[str]:
        return list(self.practice_list.value)

    def _draw_map(self) -> None:
        import plotly.graph_objects as go

        practices = self.practices
        size = np.sqrt(practices["registered_patients"].fillna(0).to_numpy(dtype=float))
        size = 6 + 16 * size / size.max() if len(size) and size.max() > 0 else 8
        with self.map.batch_update():
            self.map.data = []
            self.map.add_trace(
                go.Scatter(
                    x=practices["lon"],
                    y=practices["lat"],
                    mode="markers",
                    marker={
                        "size": size,
                        "color": UNASSIGNED_COLOUR,
                        "line": {"width": 0.5, "color": "#FFFFFF"},
                    },
                    customdata=practices["practice_code"],
                    hovertemplate="%{text}<extra></extra>",
                    name="practices",
                )
            )
            self.map.update_layout(
                title={"text": "Practices at their patients' centre (click or lasso to add)"},
                xaxis={"visible": False},
                yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1.6},
                dragmode="lasso",
                showlegend=False,
                height=480,
                width=560,
                margin={"l": 10, "r": 10, "t": 50, "b": 10},
                plot_bgcolor="#F0F4F5",
            )
        self.map.data[0].on_click(self._on_map_points)
        self.map.data[0].on_selection(self._on_map_points)

    def _colour_map(self) -> None:
        if not self.map.data:
            return
        practices = self.practices
        member_of = self._membership()
        order = {code: i for i, code in enumerate(self.groups)}
        colours, text = [], []
        for r in practices.itertuples():
            group = member_of.get(r.practice_code)
            colours.append(
                PALETTE[order[group] % len(PALETTE)] if group is not None else UNASSIGNED_COLOUR
            )
            where = self.groups[group][0] if group is not None else "no neighbourhood"
            text.append(
                f"<b>{html.escape(str(r.practice_name))}</b> ({html.escape(r.practice_code)})"
                f"<br>{r.registered_patients:,.0f} patients<br>{html.escape(where)}"
            )
        with self.map.batch_update():
            self.map.data[0].marker.color = colours
            self.map.data[0].text = text

    def _on_map_points(self, trace, points, _state=None) -> None:
        codes = [self.practices["practice_code"].iloc[i] for i in points.point_inds]
        self.assign(codes)
