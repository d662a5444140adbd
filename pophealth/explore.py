"""Interactive explorer for JupyterLab: pick any area, see its profile, map and rank it.

The widgets live here so ``notebooks/explore.ipynb`` stays thin::

    >>> from pophealth import explore                                   # doctest: +SKIP
    >>> explore.Explorer(pophealth.load(explore.store_path()))          # doctest: +SKIP

Choose a level and an area (type to search by name or code) to see its headline, formatted
indicator tables and charts (the same sections as the published profiles); choose an indicator
to see every area of the level on a map and in rank order (click either to select an area);
pick two to four areas to compare them side by side.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from pophealth import charts, indicators, sections, tables
from pophealth.designer import lsoa_centres, practice_centres

#: Environment variable ``pophealth lab`` sets to the prepared store the explorer opens.
STORE_ENV = "POPHEALTH_DATA"
#: Environment variable for an optional neighbourhoods YAML (``pophealth lab --neighbourhoods``).
NEIGHBOURHOODS_ENV = "POPHEALTH_NEIGHBOURHOODS"
LEVEL_LABELS = {"neighbourhood": "Neighbourhood", "place": "Place", "system": "System"}
MAX_COMPARE = 4


def store_path(default: str | Path | None = None) -> Path:
    """The prepared store to explore: ``$POPHEALTH_DATA``, else ``default``, else the demo's.

    Raises:
        pophealth.api.StoreError: when no prepared store is found there.
    """
    from pophealth.api import StoreError

    chosen = os.environ.get(STORE_ENV) or default or "runs/demo/prepared"
    path = Path(chosen).expanduser()
    if not (path / "manifest.json").exists():
        raise StoreError(
            f"No prepared store at {path} (from ${STORE_ENV} or the notebook's data_path). "
            "Start the explorer with `pophealth lab` (builds the demo store) or "
            "`pophealth lab --data PREPARED`."
        )
    return path


def area_label(row) -> str:
    """The label an area has in the search box: 'Name (CODE, basis)'."""
    return f"{row['area_name']} ({row['area_code']}, {row['basis']})"


def area_centres(data, level: str) -> pd.DataFrame:
    """``area_code, basis, lon, lat, population`` for every area of a level.

    Registered-basis areas sit at the list-weighted centre of their practices (each at the
    patient-weighted centre of its patients' LSOAs); resident-basis areas at the patient-weighted
    centre of their LSOAs.
    """

    def build() -> pd.DataFrame:
        parts = []
        practices = practice_centres(data).dropna(subset=["lon", "lat"])
        members = data.practice_membership_table.merge(
            practices[["practice_code", "lon", "lat", "registered_patients"]], on="practice_code"
        ).rename(columns={"registered_patients": "_w"})
        if len(members):
            parts.append(_weighted_centres(members).assign(basis="registered"))
        lsoa = lsoa_centres(data)
        residents = data.registrations.groupby("lsoa_code")["patients"].sum()
        lsoa_members = data.lsoa_membership_table.merge(lsoa, on="lsoa21_code")
        if len(lsoa_members):
            weights = lsoa_members["lsoa21_code"].map(residents).fillna(0.0)
            parts.append(
                _weighted_centres(lsoa_members.assign(_w=weights)).assign(basis="resident")
            )
        if not parts:
            return pd.DataFrame(columns=["area_code", "basis", "lon", "lat", "population"])
        return pd.concat(parts, ignore_index=True)

    centres = data.memo.get(("area_centres",), build)
    register = data.register[data.register["level"] == level][["area_code", "basis"]]
    return register.merge(centres, on=["area_code", "basis"], how="inner")


def _weighted_centres(members: pd.DataFrame) -> pd.DataFrame:
    """Weighted mean lon/lat per area_code of ``area_code, lon, lat, _w`` rows."""
    w = members["_w"].clip(lower=0).to_numpy(dtype=float)
    frame = pd.DataFrame(
        {
            "area_code": members["area_code"].to_numpy(),
            "wx": members["lon"].to_numpy() * w,
            "wy": members["lat"].to_numpy() * w,
            "population": w,
        }
    )
    sums = frame.groupby("area_code", as_index=False).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        sums["lon"] = sums["wx"] / sums["population"]
        sums["lat"] = sums["wy"] / sums["population"]
    return sums[["area_code", "lon", "lat", "population"]]


def indicator_values(data, level: str, indicator_id: str, system: str | None) -> pd.DataFrame:
    """Every area of a level (optionally one system) with one indicator, centre and rank."""
    table = data.indicator_table
    rows = table[(table["level"] == level) & (table["indicator_id"] == indicator_id)]
    if system:
        rows = rows[rows["system_code"] == system]
    if level == "system":
        # one point per system: the registered basis where it exists
        rows = rows.sort_values("basis").drop_duplicates("area_code")
    rows = rows.merge(area_centres(data, level), on=["area_code", "basis"], how="left")
    rows = rows.dropna(subset=["value"]).sort_values("value", ascending=False)
    return rows.assign(rank=np.arange(1, len(rows) + 1)).reset_index(drop=True)


def comparison_table(data, keys: list[tuple[str, str]]) -> str:
    """HTML table of every indicator for two to four areas side by side, with the comparator."""
    table = data.indicator_table
    chosen = table.set_index(["area_code", "basis"]).loc[keys].reset_index()
    order = indicators.load_catalogue().set_index("id")["order"]
    chosen = chosen.assign(order=chosen["indicator_id"].map(order))
    wide = chosen.pivot_table(
        index=["order", "title", "unit"],
        columns=["area_code", "basis"],
        values="value",
        aggfunc="first",
    )
    comparator = chosen.drop_duplicates(["indicator_id"]).set_index(["order", "title", "unit"])
    names = chosen.drop_duplicates(["area_code", "basis"]).set_index(["area_code", "basis"])
    head = "".join(
        f'<th scope="col" class="ph-num">{html.escape(names.loc[k, "area_name"])}'
        f"<br><small>{html.escape(k[0])} · {html.escape(k[1])}</small></th>"
        for k in keys
    )
    head += f'<th scope="col" class="ph-num">{html.escape(data.comparator)}</th>'
    body = []
    for (order, title, unit), row in wide.sort_index().iterrows():
        cells = "".join(
            f'<td class="ph-num">{tables.format_value(row.get(k), unit)}</td>' for k in keys
        )
        reference = comparator.loc[(order, title, unit), "comparator_value"]
        unit_text = f" ({html.escape(unit)})" if unit else ""
        body.append(
            f"<tr><td>{html.escape(title)}{unit_text}</td>{cells}"
            f'<td class="ph-num">{tables.format_value(reference, unit)}</td></tr>'
        )
    return (
        f'<table class="ph-table"><thead><tr><th scope="col">Indicator</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _hover(rows: pd.DataFrame) -> list[str]:
    return [
        f"<b>{html.escape(str(n))}</b><br>{html.escape(str(c))} · {b}<br>"
        f"{html.escape(str(t))}: {charts.format_number(v, u)}{html.escape(str(u or ''))}"
        f"<br>Rank {r} of {len(rows)}"
        for n, c, b, t, v, u, r in zip(
            rows["area_name"],
            rows["area_code"],
            rows["basis"],
            rows["title"],
            rows["value"],
            rows["unit"],
            rows["rank"],
            strict=True,
        )
    ]


class Explorer(widgets.VBox):
    """Level, area search, indicator map and rank chart, profile sections and comparison.

    Args:
        data: A loaded :class:`pophealth.api.PopHealthData`.
        level: Level shown first.
        indicator: Indicator mapped first.
    """

    def __init__(self, data, *, level: str = "neighbourhood", indicator: str = "imd_score"):
        self.data = data
        self.selected: tuple[str, str] | None = None
        systems = data.areas("system").drop_duplicates("area_code")
        self.level = widgets.Dropdown(
            options=[(v, k) for k, v in LEVEL_LABELS.items()], value=level, description="Level"
        )
        self.system = widgets.Dropdown(
            options=[("All systems", "")]
            + [(f"{r.area_name} ({r.area_code})", r.area_code) for r in systems.itertuples()],
            value="",
            description="System",
        )
        self.area = widgets.Combobox(
            placeholder="Type a name or code", description="Area", ensure_option=True
        )
        built = set(data.indicator_table["indicator_id"])
        available = [r for r in indicators.load_catalogue().itertuples() if r.id in built]
        self.indicator = widgets.Dropdown(
            options=[(r.title, r.id) for r in available],
            value=indicator if indicator in built else None,
            description="Indicator",
        )
        self.compare = widgets.SelectMultiple(
            description="Compare", rows=6, layout=widgets.Layout(width="420px")
        )
        self.headline = widgets.HTML()
        self.status = widgets.HTML()
        self.comparison = widgets.HTML()
        self.profile_output = widgets.Output()
        self.map = go.FigureWidget()
        self.ranked = go.FigureWidget()
        self._labels: dict[str, tuple[str, str]] = {}
        self._values = pd.DataFrame()
        self.level.observe(self._on_level, names="value")
        self.system.observe(self._on_level, names="value")
        self.area.observe(self._on_area_text, names="value")
        self.indicator.observe(lambda _: self._draw_indicator(), names="value")
        self.compare.observe(self._on_compare, names="value")
        tables.inject_css()
        super().__init__(
            [
                widgets.HBox([self.level, self.system]),
                widgets.HBox([self.area, self.indicator]),
                self.status,
                self.headline,
                widgets.HBox([self.map, self.ranked]),
                widgets.HTML("<h3>Compare two to four areas</h3>"),
                self.compare,
                self.comparison,
                widgets.HTML("<h3>Profile of the selected area</h3>"),
                self.profile_output,
            ]
        )
        self._on_level()

    # -- callbacks -------------------------------------------------------------------------
    def _on_level(self, _change=None) -> None:
        areas = self.data.areas(self.level.value, system=self.system.value or None)
        self._labels = {area_label(r): (r["area_code"], r["basis"]) for _, r in areas.iterrows()}
        labels = list(self._labels)
        self.area.options = labels
        self.compare.options = labels
        self._draw_indicator()
        if labels:
            self.select(*self._labels[labels[0]])

    def _on_area_text(self, change) -> None:
        key = self._labels.get(change["new"])
        if key is not None and key != self.selected:
            self.select(*key)

    def _on_compare(self, change) -> None:
        chosen = list(change["new"])
        if len(chosen) > MAX_COMPARE:
            self.compare.value = tuple(chosen[:MAX_COMPARE])
            return
        if len(chosen) < 2:
            self.comparison.value = "<p><i>Pick two to four areas (Ctrl/Cmd-click).</i></p>"
            return
        self.comparison.value = comparison_table(self.data, [self._labels[c] for c in chosen])

    def _on_click(self, trace, points, _state) -> None:
        if points.point_inds:
            row = self._values.iloc[points.point_inds[0]]
            self.select(row["area_code"], row["basis"])

    # -- drawing ---------------------------------------------------------------------------
    def select(self, area_code: str, basis: str) -> None:
        """Show one area: headline, highlighted point on the map and rank chart, profile."""
        self.selected = (area_code, basis)
        label = next((k for k, v in self._labels.items() if v == (area_code, basis)), None)
        if label is not None and self.area.value != label:
            self.area.value = label
        profile = self.data.profile(area_code, basis)
        self.headline.value = tables.styled_headline(profile.headline)
        self._highlight()
        self.profile_output.clear_output(wait=True)
        with self.profile_output:
            sections.header(profile)
            sections.population(profile)
            sections.deprivation(profile)
            sections.workforce(profile)
            sections.benchmarking(profile)

    def _draw_indicator(self) -> None:
        if self.indicator.value is None:
            return
        values = indicator_values(
            self.data, self.level.value, self.indicator.value, self.system.value or None
        )
        self._values = values
        title = values["title"].iloc[0] if len(values) else ""
        unit = values["unit"].iloc[0] if len(values) else ""
        hover = _hover(values)
        placed = values["lon"].notna().to_numpy()
        size = np.sqrt(values["population"].fillna(0).to_numpy(dtype=float))
        size = 6 + 24 * size / size.max() if len(size) and size.max() > 0 else 10
        with self.map.batch_update():
            self.map.data = []
            self.map.add_trace(
                go.Scattergl(
                    x=values["lon"].where(placed),
                    y=values["lat"].where(placed),
                    mode="markers",
                    marker={
                        "color": values["value"],
                        "size": size,
                        "colorbar": {"title": {"text": html.escape(str(unit or title))}},
                        "line": {"width": 0.5, "color": "#FFFFFF"},
                        "colorscale": "Viridis",
                    },
                    text=hover,
                    hovertemplate="%{text}<extra></extra>",
                    name="areas",
                )
            )
            self.map.add_trace(
                go.Scattergl(
                    x=[],
                    y=[],
                    mode="markers",
                    name="selected",
                    hoverinfo="skip",
                    marker={
                        "size": 22,
                        "color": "rgba(0,0,0,0)",
                        "line": {"width": 3, "color": "#DA291C"},
                    },
                )
            )
            self.map.update_layout(
                title={"text": f"{html.escape(title)}: every {self.level.value} (click to select)"},
                xaxis={"visible": False},
                yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1.6},
                showlegend=False,
                height=520,
                width=560,
                margin={"l": 10, "r": 10, "t": 50, "b": 10},
                plot_bgcolor="#F0F4F5",
            )
        with self.ranked.batch_update():
            self.ranked.data = []
            self.ranked.add_trace(
                go.Scatter(
                    x=values["rank"],
                    y=values["value"],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": (values["upper_ci"] - values["value"]).fillna(0),
                        "arrayminus": (values["value"] - values["lower_ci"]).fillna(0),
                        "color": "#AEB7BD",
                        "thickness": 1,
                    },
                    mode="markers",
                    marker={"color": "#005EB8", "size": 7},
                    text=hover,
                    hovertemplate="%{text}<extra></extra>",
                    name="areas",
                )
            )
            self.ranked.add_trace(
                go.Scatter(
                    x=[],
                    y=[],
                    mode="markers",
                    name="selected",
                    hoverinfo="skip",
                    marker={"size": 14, "color": "#DA291C"},
                )
            )
            comparator = values["comparator_value"].dropna()
            shapes = []
            if len(comparator):
                shapes.append(
                    {
                        "type": "line",
                        "xref": "paper",
                        "x0": 0,
                        "x1": 1,
                        "y0": float(comparator.iloc[0]),
                        "y1": float(comparator.iloc[0]),
                        "line": {"color": "#231F20", "dash": "dash", "width": 1},
                    }
                )
            self.ranked.update_layout(
                title={
                    "text": f"Ranked, highest first (dashed: {html.escape(self.data.comparator)})"
                },
                xaxis={"title": {"text": "Rank"}},
                yaxis={"title": {"text": html.escape(f"{title} ({unit})" if unit else title)}},
                shapes=shapes,
                showlegend=False,
                height=520,
                width=560,
                margin={"l": 60, "r": 10, "t": 50, "b": 50},
            )
        self.map.data[0].on_click(self._on_click)
        self.ranked.data[0].on_click(self._on_click)
        self._highlight()

    def _highlight(self) -> None:
        if self.selected is None or not len(self._values) or len(self.map.data) < 2:
            return
        code, basis = self.selected
        hit = self._values[(self._values["area_code"] == code)]
        hit = hit[hit["basis"] == basis] if (hit["basis"] == basis).any() else hit
        lon = hit["lon"].tolist()
        lat = hit["lat"].tolist()
        with self.map.batch_update():
            self.map.data[1].x, self.map.data[1].y = lon, lat
        with self.ranked.batch_update():
            self.ranked.data[1].x = hit["rank"].tolist()
            self.ranked.data[1].y = hit["value"].tolist()
        if len(hit):
            r = hit.iloc[0]
            self.status.value = (
                f"<b>{html.escape(str(r['area_name']))}</b>: {html.escape(str(r['title']))} "
                f"{tables.format_value(r['value'], r['unit'])}{html.escape(str(r['unit'] or ''))}"
                f", rank {int(r['rank'])} of {len(self._values)}"
            )


def explore(data_path: str | Path | None = None, *, neighbourhoods=None, imd: str = "2025"):
    """Load the store (``$POPHEALTH_DATA`` by default) and display the explorer.

    Returns:
        The :class:`Explorer` widget.
    """
    import pophealth

    neighbourhoods = neighbourhoods or os.environ.get(NEIGHBOURHOODS_ENV) or None
    data = pophealth.load(store_path(data_path), neighbourhoods=neighbourhoods, imd=imd)
    explorer = Explorer(data)
    display(explorer)
    return explorer


def design(data, *, system: str | None = None, path: str | Path = "neighbourhoods.yaml"):
    """Display the neighbourhood designer for a loaded store (see :mod:`pophealth.designer`).

    Returns:
        The :class:`pophealth.designer.NeighbourhoodDesigner`.
    """
    from pophealth.designer import NeighbourhoodDesigner

    designer = NeighbourhoodDesigner(data, system=system, path=path)
    display(designer.widget)
    return designer
