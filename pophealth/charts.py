"""Plotly figures for population-health needs profiles (Fingertips-style).

Every public chart function is pure: it takes a chart-ready DataFrame produced by the
``indicators`` stage and returns a new :class:`plotly.graph_objects.Figure`. Inputs are never
mutated and no pipeline work (joins, group-bys) happens here. Each figure has a title, axis
titles with units, hover text and ``fig.layout.meta`` holding ``{"chart": ..., "source_note": ...}``
so notebooks can print a caption under it.

Display in notebooks goes through :func:`show`, which emits an IPython mime bundle carrying both
the Plotly JSON mimetype (rendered natively by JupyterLab) and an HTML fragment that relies on a
global ``Plotly`` loaded once per exported page (nbconvert HTML export). ``pio.renderers`` is
deliberately not used: its defaults differ between kernels and break HTML export.
"""

from __future__ import annotations

import base64
import copy
import decimal
import difflib
import functools
import html
import math
import os
import re
import textwrap
import urllib.parse
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.io.json import to_json_plotly

from pophealth.checks import escape_html, is_missing, require_columns

NHS_BLUE = "#005EB8"
NHS_DARK_BLUE = "#003087"
NHS_GREY = "#425563"
NHS_LIGHT_BLUE = "#41B6E6"
NHS_MID_GREY = "#768692"
NHS_PALE_GREY = "#E8EDEE"

#: Fingertips comparison colours (benchmarked against a comparator).
COMPARISON_COLOURS: dict[str, str] = {
    # The GOV.UK palette FingertipsNext uses for its benchmark labels: green / yellow / red for
    # better / similar / worse, dark / light blue for higher / lower where no polarity applies.
    # Every table cell and legend also carries the word, so colour is never the only cue.
    "better": "#00703C",
    "similar": "#FFDD00",
    "worse": "#D4351C",
    "not compared": "#B1B4B6",
    "higher": "#003078",
    "lower": "#5694CA",
    # need-related context: a neutral sequential blue, not performance red/green
    "higher need": "#08519C",
    "similar need": "#9ECAE1",
    "lower need": "#DEEBF7",
    # supply against its fair share (a diverging orange-purple, not red/green)
    "fewer than fair share": "#B35806",
    "about fair share": "#F7F7F7",
    "more than fair share": "#542788",
    # context described by its value and position, not judged
    "not rated": "#FFFFFF",
}

#: Legend / hover wording for each comparison category.
COMPARISON_LABELS: dict[str, str] = {
    "better": "Better than {comparator}",
    "similar": "Similar to {comparator}",
    "worse": "Worse than {comparator}",
    "higher": "Higher than {comparator}",
    "lower": "Lower than {comparator}",
    "not compared": "Not compared",
    "higher need": "Higher need than {comparator}",
    "similar need": "Similar need to {comparator}",
    "lower need": "Lower need than {comparator}",
    "fewer than fair share": "Fewer than its fair share at {comparator}'s rate",
    "about fair share": "About its fair share at {comparator}'s rate",
    "more than fair share": "More than its fair share at {comparator}'s rate",
    "not rated": "Not rated (context)",
}

_COMPARISON_ALIASES: dict[str, str] = {
    "better": "better",
    "worse": "worse",
    "similar": "similar",
    "same": "similar",
    "not different": "similar",
    "higher": "higher",
    "lower": "lower",
    "not compared": "not compared",
    "not_compared": "not compared",
    "higher need": "higher need",
    "similar need": "similar need",
    "lower need": "lower need",
    "fewer than fair share": "fewer than fair share",
    "about fair share": "about fair share",
    "more than fair share": "more than fair share",
    "not rated": "not rated",
    "none": "not compared",
    "": "not compared",
}

#: Discrete colours for national IMD deciles 1 (most deprived, darkest) to 10 (viridis: CVD-safe).
IMD_DECILE_COLOURS: tuple[str, ...] = (
    "#440154",
    "#482878",
    "#3E4989",
    "#31688E",
    "#26828E",
    "#1F9E89",
    "#35B779",
    "#6ECE58",
    "#B5DE2B",
    "#FDE725",
)

#: Deprivation quintile colours, 1 (most deprived, darkest) to 5.
QUINTILE_COLOURS: tuple[str, ...] = ("#003087", "#005EB8", "#4A90D9", "#8DB9E8", "#C6DCF3")

PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

_FONT_FAMILY = "Frutiger, Arial, Helvetica, sans-serif"
_AXIS_STYLE: dict[str, Any] = {
    "gridcolor": "#E8EDEE",
    "linecolor": "#AEB7BD",
    "zerolinecolor": "#AEB7BD",
    "automargin": True,
    "title": {"standoff": 12},
}
# A lean template: plotly_white would add ~7 kB of JSON to every figure on every page.
_TEMPLATE: dict[str, Any] = {
    "layout": {
        "paper_bgcolor": "#FFFFFF",
        "plot_bgcolor": "#FFFFFF",
        "colorway": [NHS_BLUE, NHS_GREY, NHS_DARK_BLUE, NHS_LIGHT_BLUE, "#000000"],
        "hovermode": "closest",
        "xaxis": _AXIS_STYLE,
        "yaxis": _AXIS_STYLE,
    }
}
# Empty TopoJSON registered under the geo base-map name before a geo figure is drawn: plotly.js
# otherwise downloads world_110m.json from cdn.plot.ly for every choropleth (even with the base
# map hidden), which fails offline / on NHS networks and leaves the map blank.
_GEO_SCOPE = "world"
_GEO_RESOLUTION = 110
_GEO_TOPOJSON_NAME = f"{_GEO_SCOPE}_{_GEO_RESOLUTION}m"
GEO_ASSETS_SCRIPT = (
    "<script>window.PlotlyGeoAssets=window.PlotlyGeoAssets||{topojson:{}};"
    f'window.PlotlyGeoAssets.topojson["{_GEO_TOPOJSON_NAME}"]='
    f'window.PlotlyGeoAssets.topojson["{_GEO_TOPOJSON_NAME}"]||'
    '{"type":"Topology","objects":{},"arcs":[]};</script>'
)
#: plotly.js config for map figures: the base map is fetched from ``topojsonURL + "/" + name +
#: ".json"``, so a data: URL ending in "#" makes that fetch return an empty topology without the
#: network. JupyterLab draws figures from the Plotly JSON with their config, so maps also work
#: offline there (exported pages additionally get :data:`GEO_ASSETS_SCRIPT`).
OFFLINE_GEO_CONFIG: dict[str, Any] = {
    "topojsonURL": "data:application/json,"
    + urllib.parse.quote('{"type":"Topology","objects":{},"arcs":[]}')
    + "#"
}
_GEOJSON_DECIMALS = 5


# --------------------------------------------------------------------------------------
# Validation and formatting helpers
# --------------------------------------------------------------------------------------


#: Columns of the practices frame :func:`workforce_vs_need` draws (profile_frames builds it).
WORKFORCE_VS_NEED_COLUMNS = (
    "practice_code",
    "practice_name",
    "imd_score",
    "gp_fte_per_10k_weighted",
    "registered_patients",
    "in_area",
)


def _require_columns(
    frame: pd.DataFrame, required: Sequence[str], *, function: str, frame_name: str
) -> None:
    """Raise a helpful error when ``frame`` lacks any of ``required`` columns."""
    require_columns(
        frame,
        required,
        f"{function}: frame `{frame_name}`",
        fix="Rename the columns in the indicators stage output to match the contract",
        examples=True,
    )


def _float_values(
    frame: pd.DataFrame, column: str, *, function: str, frame_name: str
) -> np.ndarray:
    """Return ``frame[column]`` as a float array (NaN for missing); reject non-numeric text."""
    raw = frame[column]
    if raw.dtype.kind in "fiu":  # already numeric: nothing to reject (called per trace)
        return raw.to_numpy(dtype=float, na_value=np.nan)
    converted = pd.to_numeric(raw, errors="coerce")
    bad = converted.isna() & raw.notna()
    if bool(bad.any()):
        example = frame.loc[bad].head(3).to_string()
        raise ValueError(
            f"{function}: column `{column}` of `{frame_name}` has non-numeric values "
            f"{raw[bad].head(3).tolist()}. Convert them to numbers or NaN before charting.\n"
            f"Example rows:\n{example}"
        )
    return converted.to_numpy(dtype=float, na_value=np.nan)


def _text_values(frame: pd.DataFrame, column: str) -> list[str]:
    """Return ``frame[column]`` as a list of strings (missing values become '')."""
    return ["" if _is_missing(v) else str(v) for v in frame[column].tolist()]


_is_missing = is_missing


def _esc(text: Any) -> str:
    """Escape data-derived text for Plotly's HTML-like labels, titles and hover templates.

    Tags become entities (no tag can sneak in), and ``%{`` becomes ``%&#123;`` so a name placed
    in a hover template shows literally instead of being filled in by plotly.js (which renders
    the entity back as ``{``).
    """
    return escape_html(text, quote=False).replace("%{", "%&#123;")


def format_number(value: float, unit: str = "", decimals: int | None = None) -> str:
    """Format a value for hover text and labels.

    Percentages get 1 decimal place; other values 2 dp below 10, 1 dp below 1,000 and whole
    numbers with thousands separators above that. Missing values become an en dash.

    Args:
        value: The number (NaN allowed).
        unit: The indicator unit; a ``%`` in it selects one decimal place.
        decimals: Fixed number of decimal places (overrides the rules above).

    Returns:
        The formatted number (without the unit).
    """
    if _is_missing(value) or not math.isfinite(float(value)):
        return "–"
    value = float(value)
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    if "%" in (unit or ""):
        return f"{value:,.1f}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _js_fixed(value: float, decimals: int) -> str:
    """``value`` as plotly.js writes it with the d3 format ``,.{decimals}f``.

    d3's ``f`` is JavaScript's ``toFixed``: the exact binary value rounded, a tie (``0.125``,
    ``2.5``) rounded up, where Python's ``format`` rounds a tie to even. Non-negative values.
    """
    exact = decimal.Decimal(value).quantize(
        decimal.Decimal(1).scaleb(-decimals), rounding=decimal.ROUND_HALF_UP
    )
    return f"{exact:,.{decimals}f}"


def _number_template(
    values: np.ndarray,
    unit: str = "",
    decimals: int | None = None,
    *,
    carried_decimals: int | None = None,
) -> tuple[str, np.ndarray] | None:
    """A d3 format that writes every value in a hover exactly as :func:`format_number` does.

    A page carries values rounded to :data:`CHART_DIGITS` significant digits and plotly.js
    formats those, so a value just past a rounding boundary (``1.4500028`` carried as
    ``1.45``) or on an exact tie (d3 rounds ``0.125`` up, Python to even) could read
    differently from :func:`format_number` of the value itself. Such a value is carried one
    unit of its last digit towards the right side instead (``1.45001``): the same precision,
    the right text.

    Args:
        values: The values.
        unit: As for :func:`format_number`.
        decimals: As for :func:`format_number`.
        carried_decimals: Carry values rounded to this many decimal places instead of
            :data:`CHART_DIGITS` significant digits.

    Returns:
        ``(",.1f", values to carry)`` (``,.0f``, ``,.1f`` or ``,.2f``), or None when no one
        format writes them all the same (values of mixed magnitude under the magnitude rule,
        missing or negative values): the caller then keeps pre-formatted text.
    """
    numbers = np.asarray(values, dtype=float)
    if not numbers.size or not np.isfinite(numbers).all() or (numbers < 0).any():
        return None

    def carry(array: np.ndarray) -> np.ndarray:
        if carried_decimals is None:
            return _carry(array)
        return np.round(array, carried_decimals)

    shown = carry(numbers)
    expected = [format_number(v, unit, decimals) for v in numbers.tolist()]
    for places in (0, 1, 2):
        carried = shown.copy()
        for i, (value, text) in enumerate(zip(shown.tolist(), expected, strict=True)):
            if _js_fixed(value, places) == text:
                continue
            if carried_decimals is not None:
                step = 10.0**-carried_decimals
            elif value:
                step = 10.0 ** (math.floor(math.log10(value)) - CHART_DIGITS + 1)
            else:
                step = 0.0
            towards = 1.0 if numbers[i] >= value else -1.0
            for nudged in (value + towards * step, value - towards * step):
                nudged = float(carry(np.array([nudged]))[0])
                if nudged >= 0 and _js_fixed(nudged, places) == text:
                    carried[i] = nudged
                    break
            else:
                break
        else:
            return f",.{places}f", carried
    return None


class _HoverFields:
    """Hover lines of a trace's points: a plotly template where one format writes all.

    Numbers go in the template (``%{y:,.1f}``) when :func:`_number_template` finds a format
    that gives each drawn point exactly :func:`format_number`'s text (the trace then carries
    :attr:`values` of that axis); otherwise their text goes into the points' ``customdata``,
    as does every text field. ``drawn`` marks the points the traces will draw (only their
    values need to fit the format).
    """

    def __init__(self, drawn: np.ndarray) -> None:
        self.drawn = np.asarray(drawn, dtype=bool)
        self.columns: list[list[str]] = []
        #: per template reference (``x``, ``y``): the values the traces must carry
        self.values: dict[str, np.ndarray] = {}

    def text(self, values: Sequence[str]) -> str:
        """Template reference to per-point text (already escaped)."""
        self.columns.append(list(values))
        return f"\x00{len(self.columns) - 1}\x00"

    def number(
        self,
        reference: str,
        values: np.ndarray,
        unit: str = "",
        decimals: int | None = None,
        *,
        carried_decimals: int | None = None,
    ) -> str:
        """``%{x:,.0f}`` for ``reference`` ``x`` when exact, else per-point text.

        With a template, :attr:`values` ``[reference]`` holds the values to plot (each one
        within a unit of its last carried digit of ``values``; see :func:`_number_template`).
        """
        values = np.asarray(values, dtype=float)
        found = _number_template(
            values[self.drawn], unit, decimals, carried_decimals=carried_decimals
        )
        if found is not None:
            spec, carried = found
            plotted = values.copy()
            plotted[self.drawn] = carried
            self.values[reference] = plotted
            return f"%{{{reference}:{spec}}}"
        self.values[reference] = (
            values if carried_decimals is None else np.round(values, carried_decimals)
        )
        return self.text([format_number(v, unit, decimals) for v in values.tolist()])

    def data_number(self, values: np.ndarray, unit: str = "", decimals: int | None = None) -> str:
        """A number that is no axis of the point, in its customdata (``%{customdata[2]:,.0f}``).

        Carried as a number when one format writes every drawn value exactly (whole numbers
        without ``.0``), else as its text.
        """
        values = np.asarray(values, dtype=float)
        found = _number_template(values[self.drawn], unit, decimals)
        if found is None:
            return self.text([format_number(v, unit, decimals) for v in values.tolist()])
        spec, carried = found
        numbers = values.copy()
        numbers[self.drawn] = carried
        self.columns.append(
            [int(v) if math.isfinite(v) and v == int(v) else v for v in numbers.tolist()]
        )
        return f"\x00{len(self.columns) - 1}:{spec}\x00"

    def template(self, text: str) -> str:
        """``text`` with the per-point fields' references (``%{customdata[1]}``) filled in."""
        single = len(self.columns) == 1

        def reference(match: re.Match) -> str:
            field = "customdata" if single else f"customdata[{match.group(1)}]"
            return f"%{{{field}{match.group(2) or ''}}}"

        return re.sub("\x00(\\d+)(:[^\x00]*)?\x00", reference, text)

    def customdata(self, mask: np.ndarray) -> list[Any] | None:
        """The masked points' customdata (None when every field is in the template)."""
        if not self.columns:
            return None
        keep = np.asarray(mask, dtype=bool).tolist()
        if len(self.columns) == 1:
            return [v for v, k in zip(self.columns[0], keep, strict=True) if k]
        rows = zip(*self.columns, strict=True)
        return [list(row) for row, k in zip(rows, keep, strict=True) if k]


def _with_unit(value: float, unit: str) -> str:
    """Format ``value`` and append its unit ('12.3%' or '45.6 per 1,000')."""
    number = format_number(value, unit)
    if number == "–" or not unit:
        return number
    if unit.strip() == "%":
        return f"{number}%"
    return f"{number} {_esc(unit)}"


def _normalise_comparison(values: Iterable[Any], *, function: str) -> list[str]:
    """Map comparison labels to the canonical categories of :data:`COMPARISON_COLOURS`."""
    normalised = []
    for raw in values:
        key = "" if _is_missing(raw) else str(raw).strip().lower()
        if key not in _COMPARISON_ALIASES:
            close = difflib.get_close_matches(key, list(_COMPARISON_ALIASES), n=2)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"{function}: unknown comparison value {raw!r} in column `comparison`. "
                f"Expected one of {sorted(set(_COMPARISON_ALIASES.values()))}.{hint}"
            )
        normalised.append(_COMPARISON_ALIASES[key])
    return normalised


def _polarity_direction(polarity: Any) -> int:
    """Return -1 when low values are good (axis flipped so better is to the right), else +1."""
    if _is_missing(polarity):
        return 1
    text = re.sub(r"[^a-z]+", " ", str(polarity).lower())
    if "low" in text and "good" in text:
        return -1
    return 1


def _wrap(text: str, width: int = 45) -> str:
    """Insert Plotly line breaks (``<br>``) so long indicator titles stay readable."""
    words = text.split()
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return "<br>".join(lines)


def _deep_update(target: dict[str, Any], updates: dict[str, Any]) -> None:
    """Merge ``updates`` into ``target`` as plotly's ``update_layout`` does (dicts merge)."""
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def _trace(trace_type: str, props: dict[str, Any]) -> dict[str, Any]:
    # None means "not set", as in plotly's trace constructors.
    return {"type": trace_type, **{k: v for k, v in props.items() if v is not None}}


def _bar(**props: Any) -> dict[str, Any]:
    return _trace("bar", props)


def _scatter(**props: Any) -> dict[str, Any]:
    return _trace("scatter", props)


def _choropleth(**props: Any) -> dict[str, Any]:
    return _trace("choropleth", props)


class FigureSpec:
    """A plotly figure held as plain dicts while a chart function builds it.

    ``go.Figure`` validates and copies on every ``add_trace``/``update_layout`` call, which made
    building a profile's ten figures most of its cost in a batch run (about 25 ms a figure);
    a spec is built in about a millisecond. :meth:`to_figure` validates the finished figure
    once (the public chart functions return that); :func:`show` renders a spec directly.
    Property names are plotly's, nested explicitly (``title={"text": ...}``, not
    ``title_text=``).
    """

    def __init__(self, data: Iterable[dict[str, Any]] = ()) -> None:
        """Start a figure, optionally with traces (dicts with a ``type`` key)."""
        self.data: list[dict[str, Any]] = list(data)
        self.layout: dict[str, Any] = {}

    def add_trace(self, trace: dict[str, Any]) -> FigureSpec:
        """Append a trace dict (see ``_bar``, ``_scatter``, ``_choropleth``)."""
        self.data.append(trace)
        return self

    def update_layout(self, **props: Any) -> FigureSpec:
        """Merge layout properties (nested dicts merge, other values replace)."""
        _deep_update(self.layout, props)
        return self

    def update_xaxes(self, **props: Any) -> FigureSpec:
        """Merge properties into the x axis."""
        return self.update_layout(xaxis=props)

    def update_yaxes(self, **props: Any) -> FigureSpec:
        """Merge properties into the y axis."""
        return self.update_layout(yaxis=props)

    def update_geos(self, **props: Any) -> FigureSpec:
        """Merge properties into the geo subplot."""
        return self.update_layout(geo=props)

    def add_annotation(self, **props: Any) -> FigureSpec:
        """Append an annotation."""
        self.layout.setdefault("annotations", []).append(props)
        return self

    def add_shape(self, **props: Any) -> FigureSpec:
        """Append a shape."""
        self.layout.setdefault("shapes", []).append(props)
        return self

    def add_vrect(self, x0: float, x1: float, **props: Any) -> FigureSpec:
        """A rectangle spanning the plot's full height between ``x0`` and ``x1``."""
        return self.add_shape(
            type="rect", xref="x", yref="y domain", x0=x0, x1=x1, y0=0, y1=1, **props
        )

    @property
    def title(self) -> str:
        """The figure title text ('' when none)."""
        return str((self.layout.get("title") or {}).get("text") or "")

    def to_dict(self) -> dict[str, Any]:
        """``{"data": [...], "layout": {...}}`` with the lean template; arrays may be numpy."""
        layout = dict(self.layout)
        layout["template"] = copy.deepcopy(_TEMPLATE)
        return {"data": list(self.data), "layout": layout}

    def to_figure(self) -> go.Figure:
        """The figure as a validated :class:`plotly.graph_objects.Figure`."""
        return go.Figure(self.to_dict())


def _public_chart(spec_function: Any) -> Any:
    """Make the public chart function: same arguments, returns a validated ``go.Figure``."""

    @functools.wraps(spec_function)
    def chart(*args: Any, **kwargs: Any) -> go.Figure:
        return spec_function(*args, **kwargs).to_figure()

    name = spec_function.__name__.removesuffix("_spec")
    chart.__name__ = chart.__qualname__ = name
    chart.__annotations__ = {**spec_function.__annotations__, "return": go.Figure}
    chart.__doc__ = (spec_function.__doc__ or "") + (
        f"\n    ``{name}`` returns a validated ``plotly.graph_objects.Figure``; "
        f"``{name}_spec`` returns the same figure as a :class:`FigureSpec`, which is faster to "
        "display in batch runs.\n"
    )
    del chart.__wrapped__  # signature from the spec function, return type from here
    return chart


def _finish(
    fig: FigureSpec,
    *,
    chart: str,
    title: str,
    source_note: str,
    height: int,
    x_title: str | None = None,
    y_title: str | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> FigureSpec:
    """Apply the common NHS look, title, axis titles and caption metadata."""
    # meta travels with the figure JSON into notebooks: escaped like every other data text
    meta: dict[str, Any] = {
        "chart": chart,
        "title": _esc(title),
        "source_note": _esc(source_note or ""),
    }
    if extra_meta:
        meta.update(extra_meta)
    fig.update_layout(
        title={
            "text": _esc(title),
            "x": 0.0,
            "xanchor": "left",
            "font": {"color": NHS_DARK_BLUE, "size": 16},
        },
        font={"family": _FONT_FAMILY, "size": 13, "color": "#212B32"},
        height=height,
        margin={"l": 60, "r": 30, "t": 60, "b": 60},
        hoverlabel={"font": {"family": _FONT_FAMILY}},
        # Legend above the plot area but below the title (which sits in the top margin).
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0.0},
        meta=meta,
    )
    if x_title is not None:
        fig.update_xaxes(title={"text": x_title})
    if y_title is not None:
        fig.update_yaxes(title={"text": y_title})
    return fig


def _finite_max(*arrays: np.ndarray) -> float:
    """Largest finite value across arrays (0.0 when there is none)."""
    stacked = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    finite = stacked[np.isfinite(stacked)]
    return float(finite.max()) if finite.size else 0.0


def _nice_step(span: float, target_ticks: int = 4) -> float:
    """A 1/2/2.5/5 x 10^n tick step giving about ``target_ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power:
            return multiple * power
    return 10 * power


# --------------------------------------------------------------------------------------
# Display helpers
# --------------------------------------------------------------------------------------


Chart = go.Figure | FigureSpec


def _figure_objects(fig: Chart, width: str = "third") -> tuple[list, dict, bool]:
    """Data (rounded) and layout (title and legend sized to ``width``), and whether a map."""
    if isinstance(fig, FigureSpec):
        spec = fig.to_dict()
    elif isinstance(fig, go.Figure):
        spec = fig.to_plotly_json()
    else:
        raise TypeError(
            f"Expected a plotly Figure or a FigureSpec from a pophealth chart function; got "
            f"{type(fig).__name__}."
        )
    data, layout = spec.get("data", []), spec.get("layout", {})
    data = [_compact(trace) for trace in data]
    is_map = any(trace.get("type") in ("choropleth", "scattergeo") for trace in data)
    return data, _clear_title_and_legend(layout, data, width), is_map


def _figure_parts(fig: Chart, width: str = "third") -> tuple[str, str, bool, Any]:
    """JSON of data and layout (script-safe), whether it is a map, and the layout height."""
    data, layout, is_map = _figure_objects(fig, width)
    return _lean_json(data), _lean_json(layout), is_map, layout.get("height")


def _plain_json(value: Any) -> Any:
    """``value`` as plain JSON types (numpy arrays, NaN and the like as plotly's JSON has them)."""
    import orjson

    try:
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # e.g. dates or pandas values: plotly's encoder cleans them
        text = to_json_plotly(value)
    return orjson.loads(text)


def _lean_json(value: Any) -> str:
    """Plotly's JSON, safe inside ``<script>``, without escaping every ``<``, ``>`` and ``/``.

    ``to_json_plotly`` writes each ``<`` of ``<br>`` as a six-character escape; hover texts are
    full of tags, so that was a sixth of a page. Inside a script only ``</``, ``<!--`` and
    ``<script`` matter: they stay escaped. Data text was HTML-escaped before it became a label
    (:func:`_esc`), so no tag can come from data.
    """
    text = _PLOTLY_ESCAPES.sub(_unescape, to_json_plotly(value))
    return _SCRIPT_BREAKERS.sub(r"\\u003c", text)


# an escape of <, > or / that is not itself an escaped backslash followed by text "u003c"
_PLOTLY_ESCAPES = re.compile(r"(?<!\\)((?:\\\\)*)\\u00(3c|3e|2f)")
_UNESCAPED = {"3c": "<", "3e": ">", "2f": "/"}
# what can end or re-open a script element: "</", "<!--" and "<script" stay escaped
_SCRIPT_BREAKERS = re.compile(r"<(?=/|!|script)", re.IGNORECASE)


def _unescape(match: re.Match) -> str:
    return match.group(1) + _UNESCAPED[match.group(2)]


#: Significant digits kept in chart data: far beyond what a chart or its hover shows, and
#: about half the JSON of full doubles (pages are mostly chart data).
CHART_DIGITS = 6


def _round_significant(values: np.ndarray, digits: int = CHART_DIGITS) -> np.ndarray:
    """Round floats to ``digits`` significant digits (NaN and infinities kept)."""
    finite = np.isfinite(values) & (values != 0)
    out = values.astype(float, copy=True)
    if finite.any():
        magnitude = np.floor(np.log10(np.abs(values[finite])))
        scale = 10.0 ** (digits - 1 - magnitude)
        out[finite] = np.round(values[finite] * scale) / scale
    return out


#: Whole numbers up to this size are written without a fraction (``8212`` for ``8212.0``).
_EXACT_INTEGER = 2.0**53


def _whole(values: np.ndarray) -> bool:
    """Whether every finite value is a whole number that a double holds exactly."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(
        ((np.abs(finite) < _EXACT_INTEGER) & (finite == np.round(finite))).all()
    )


def _carry(values: np.ndarray) -> np.ndarray:
    """The values a page carries for a float array.

    Whole numbers exactly (``1234567``: rounding would leave as many digits), others to
    :data:`CHART_DIGITS` significant digits.
    """
    return values.astype(float, copy=True) if _whole(values) else _round_significant(values)


def _lean_numbers(values: np.ndarray) -> Any:
    """Float values as a page carries them (:func:`_carry`), whole numbers without ``.0``.

    A float array is written ``[8212.0, 8742.0]``; denominators, counts and limit grids are
    whole numbers, so an array of them (NaN allowed) becomes Python ints (``None`` for NaN and
    infinities, which plotly's JSON writes as ``null`` anyway). Other arrays stay floats.
    """
    rounded = _carry(values)
    finite = np.isfinite(rounded)
    whole = finite & (np.abs(rounded) < _EXACT_INTEGER)
    whole[whole] = rounded[whole] == np.round(rounded[whole])
    if not whole.any() or (whole != finite).any():
        return rounded
    if finite.all():
        return rounded.astype(np.int64).reshape(values.shape)
    if rounded.ndim != 1:
        return rounded
    return [int(v) if ok else None for v, ok in zip(rounded.tolist(), finite.tolist(), strict=True)]


def _compact(value: Any) -> Any:
    """A trace with its float arrays rounded (see :data:`CHART_DIGITS`); text untouched.

    Arrays of whole numbers are written without ``.0`` (:func:`_lean_numbers`).
    """
    if isinstance(value, dict):
        if {"dtype", "bdata"} <= set(value) and str(value["dtype"]).startswith("f"):
            # a validated Figure holds its arrays base64-encoded: the same rounding as a spec's
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            return _lean_numbers(array)
        # a map's GeoJSON is the store's, already at its own precision: not walked per chart
        return {k: v if k == "geojson" else _compact(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":  # e.g. a validated Figure's mixed numbers
            return _compact(value.tolist())
        return _lean_numbers(value) if value.dtype.kind == "f" else value
    if isinstance(value, (list, tuple)) and value:
        numbers = all(
            (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None for v in value
        )
        if numbers and any(isinstance(v, float) for v in value):
            lean = _lean_numbers(np.asarray(value, dtype=float))
            return lean.tolist() if isinstance(lean, np.ndarray) else lean
        return [_compact(v) for v in value]
    return value


# Pixels per title line and legend row, and characters per title line and legend row for each
# share of a wide page a chart takes, for reserving the top margin. A full width chart counts
# as about 900 px: the width a printed page (and a narrow window) draws it at.
_TITLE_LINE_PX = 22
_LEGEND_ROW_PX = 21
_TITLE_WRAP_CHARS = {"third": 50, "half": 70, "full": 100}
_LEGEND_ROW_CHARS = {"third": 55, "half": 66, "full": 110}


def _legend_rows(data: list[dict[str, Any]], row_chars: int = _LEGEND_ROW_CHARS["third"]) -> int:
    """How many rows a horizontal legend of these traces takes in ``row_chars`` a row."""
    rows, used = 0, row_chars
    for trace in data:
        name = trace.get("name")
        if trace.get("showlegend") is False or not name:
            continue
        if trace.get("type") == "choropleth" and trace.get("showlegend") is not True:
            continue
        width = len(re.sub(r"<[^>]+>", "", str(name))) + 6
        if used + width > row_chars:
            rows, used = rows + 1, width
        else:
            used += width
    return rows


def _clear_title_and_legend(
    layout: dict[str, Any], data: list[dict[str, Any]], width: str = "third"
) -> dict[str, Any]:
    """Keep a chart's legend clear of its title at its width (``full``, ``half``, ``third``).

    The title (wrapped to lines that fit the chart's share of a wide page) is pinned to the top
    of the figure; a horizontal legend above the plot area sits on the plot area's top edge and
    grows upward; the top margin is made tall enough for both. Returns a new layout dict.
    """
    title = layout.get("title") or {}
    legend = layout.get("legend") or {}
    if not isinstance(title, dict) or not title.get("text"):
        return layout
    layout = dict(layout)
    text = str(title["text"])
    if "<br>" not in text:
        text = _wrap(text, _TITLE_WRAP_CHARS.get(width, _TITLE_WRAP_CHARS["third"]))
    lines = text.count("<br>") + 1
    layout["title"] = {
        **title,
        "text": text,
        "yref": "container",
        "y": 1.0,
        "yanchor": "top",
        "pad": {"t": 10},
    }
    needed = 14 + lines * _TITLE_LINE_PX
    top_legend = legend.get("orientation") == "h" and float(legend.get("y", 1.0)) >= 1.0
    if top_legend and layout.get("showlegend", True) is not False:
        layout["legend"] = {**legend, "yref": "paper", "y": 1.0, "yanchor": "bottom"}
        row_chars = _LEGEND_ROW_CHARS.get(width, _LEGEND_ROW_CHARS["third"])
        needed += _legend_rows(data, row_chars) * _LEGEND_ROW_PX + 6
    margin = dict(layout.get("margin") or {})
    margin["t"] = max(int(margin.get("t", 0) or 0), needed)
    layout["margin"] = margin
    return layout


def _config(is_map: bool) -> dict[str, Any]:
    return {**PLOTLY_CONFIG, **OFFLINE_GEO_CONFIG} if is_map else dict(PLOTLY_CONFIG)


def _html_fragment(
    data_json: str,
    layout_json: str,
    is_map: bool,
    height: Any,
    *,
    width: str = "full",
    caption: str = "",
    label: str = "",
    collapsed: str = "",
) -> str:
    """A div plus ``Plotly.newPlot`` call, as plotly's ``to_html(full_html=False)`` writes it.

    With ``collapsed`` (the summary text) the figure sits in a closed ``<details>`` and is drawn
    when first opened: plotly cannot size a chart inside a closed element. A page printed with
    every ``<details>`` opened draws it at once.

    The outer ``<figure>`` carries ``ph-chart ph-chart-<width>`` (the exported page lays half
    and third width charts side by side on wide screens), the chart title as its accessible
    name and, when given, a ``<figcaption>`` with the chart's main message in words: the
    chart's text alternative.
    """
    div_id = str(uuid.uuid4())
    div_height = f"{height}px" if isinstance(height, (int, float)) else "100%"
    config_json = to_json_plotly(_config(is_map))
    # A <figure> named by the chart title; its <figcaption> is the text alternative. (The
    # drawing holds plotly's toolbar buttons, so it cannot itself be an image role.)
    label_attr = f' aria-label="{escape_html(label)}"' if label else ""
    caption_html = (
        f'<figcaption class="ph-caption">{escape_html(caption)}</figcaption>' if caption else ""
    )
    draw = f'Plotly.newPlot("{div_id}", {data_json}, {layout_json}, {config_json})'
    if collapsed:
        draw = (
            f'(function () {{var el = document.getElementById("{div_id}"); if (!el) return;'
            f"var draw = function () {{{draw}}}; var d = el.closest('details');"
            "if (!d || d.open) { draw(); return; }"
            "d.addEventListener('toggle', function once() { if (d.open) {"
            "d.removeEventListener('toggle', once); draw(); } });})()"
        )
    else:
        draw = f'if (document.getElementById("{div_id}")) {{{draw}}}'
    fragment = (
        f'<figure class="ph-chart ph-chart-{escape_html(width)}"{label_attr}>'
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{div_height}; width:100%;">'
        '</div><script type="text/javascript">window.PLOTLYENV=window.PLOTLYENV || {};'
        f"{draw};</script>{caption_html}</figure>"
    )
    if collapsed:
        fragment = (
            f'<details class="ph-details ph-chart-details"><summary>{escape_html(collapsed)}'
            f"</summary>{fragment}</details>"
        )
    return (GEO_ASSETS_SCRIPT + fragment) if is_map else fragment


def figure_to_html(fig: Chart) -> str:
    """Return an HTML fragment that draws ``fig`` with a page-global ``Plotly``.

    The fragment does not embed plotly.js (the batch runner puts one local ``plotly.min.js``
    in every page's head), so exported pages stay small and work offline. Figures with geo
    traces get :data:`GEO_ASSETS_SCRIPT` first so plotly.js does not fetch a base map.
    """
    return _html_fragment(*_figure_parts(fig))


#: Key of a figure output's metadata holding how its page fragment is laid out (see
#: :func:`figure_output`).
FIGURE_METADATA_KEY = "pophealth"

#: Set (to ``export``) in the batch runner's kernel: figure outputs then carry only Plotly JSON
#: and their layout metadata, and the runner's exporter writes each page fragment from them
#: (:func:`figure_html_from_output`). The fragment repeats the figure's JSON, so this halves
#: what every figure costs the kernel to send and the runner to receive.
FIGURE_HTML_ENV = "POPHEALTH_FIGURE_HTML"


def figure_output(
    fig: Chart,
    *,
    width: str = "full",
    caption: str = "",
    collapsed: str = "",
    with_html: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The display data and metadata of a figure output.

    The data is Plotly JSON (JupyterLab draws it), ``text/plain`` and, ``with_html``, the HTML
    fragment nbconvert's export uses. The metadata records ``width``, ``caption`` and
    ``collapsed`` (the last two as escaped HTML text) so the fragment can be written later
    from the JSON alone (what :func:`figure_html_from_output` does for the batch runner).
    """
    data, layout, is_map = _figure_objects(fig, width)
    plotly_json = {
        "data": _plain_json(data),
        "layout": _plain_json(layout),
        "config": _config(is_map),
    }
    label = _figure_label(plotly_json["layout"])
    bundle: dict[str, Any] = {PLOTLY_MIMETYPE: plotly_json}
    if with_html:
        bundle["text/html"] = _html_fragment(
            _lean_json(data),
            _lean_json(layout),
            is_map,
            layout.get("height"),
            width=width,
            caption=caption,
            label=label,
            collapsed=collapsed,
        )
    # escaped too: notebooks and their JSON are shared, and a viewer may render it as HTML
    bundle["text/plain"] = f"<Figure: {html.escape(label)}>" + (
        f"\n{html.escape(caption)}" if caption else ""
    )
    # caption and summary as HTML text, like every data text a notebook carries
    layout_meta = {
        "width": width,
        "caption": escape_html(caption),
        "collapsed": escape_html(collapsed),
    }
    return bundle, {FIGURE_METADATA_KEY: layout_meta}


def figure_bundle(
    fig: Chart, *, width: str = "full", caption: str = "", collapsed: str = ""
) -> dict[str, Any]:
    """Build the IPython mime bundle for ``fig`` (Plotly JSON + HTML fragment).

    The figure is encoded to JSON once; the Plotly JSON part is parsed back from it so it holds
    plain JSON types (numpy arrays would not survive nbformat).

    Args:
        fig: A Figure or a FigureSpec.
        width: ``full``, ``half`` or ``third``: the share of a wide page the chart takes.
        caption: The chart's main message in words, shown under it (its text alternative).
        collapsed: When given, the page shows the chart collapsed under this summary (detail
            a reader opens); JupyterLab shows it open.
    """
    return figure_output(fig, width=width, caption=caption, collapsed=collapsed)[0]


def figure_html_from_output(data: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """The page fragment of a figure output that carries only Plotly JSON, else None.

    Such outputs come from the batch runner's kernel (:data:`FIGURE_HTML_ENV`). The fragment
    is what :func:`figure_output` would have put in ``text/html``: the same JSON (chart data
    were rounded in the kernel), made safe inside ``<script>`` the same way.
    """
    plotly_json = data.get(PLOTLY_MIMETYPE)
    layout_meta = metadata.get(FIGURE_METADATA_KEY)
    if not isinstance(plotly_json, dict) or not isinstance(layout_meta, dict):
        return None
    traces = plotly_json.get("data") or []
    layout = plotly_json.get("layout") or {}
    is_map = any(trace.get("type") in ("choropleth", "scattergeo") for trace in traces)
    return _html_fragment(
        _script_safe_json(traces),
        _script_safe_json(layout),
        is_map,
        layout.get("height"),
        width=str(layout_meta.get("width") or "full"),
        caption=html.unescape(str(layout_meta.get("caption") or "")),
        label=_figure_label(layout),
        collapsed=html.unescape(str(layout_meta.get("collapsed") or "")),
    )


def _figure_label(layout: dict[str, Any]) -> str:
    """A chart's accessible name: its title as plain text."""
    title = (layout.get("title") or {}).get("text") or "untitled"
    label = re.sub(r"<[^>]+>", " ", html.unescape(str(title)))
    return " ".join(label.split())


def _script_safe_json(value: Any) -> str:
    """JSON of plain JSON values, safe inside ``<script>`` as :func:`_lean_json` makes it."""
    import orjson

    text = orjson.dumps(value).decode("utf-8")
    return _SCRIPT_BREAKERS.sub(r"\\u003c", text)


def show(fig: Chart, *, width: str = "full", caption: str = "", collapsed: str = "") -> None:
    """Display ``fig`` (a Figure or a FigureSpec) in a notebook as a mime bundle.

    JupyterLab renders the Plotly JSON natively; nbconvert's HTML export uses the
    ``text/html`` fragment, which needs ``plotly.min.js`` loaded once in the page head.
    ``width``, ``caption`` and ``collapsed`` are as in :func:`figure_bundle`. In the batch
    runner's kernel (:data:`FIGURE_HTML_ENV`) the fragment is left to the runner's export.
    """
    from IPython.display import display

    bundle, metadata = figure_output(
        fig,
        width=width,
        caption=caption,
        collapsed=collapsed,
        with_html=os.environ.get(FIGURE_HTML_ENV) != "export",
    )
    display(bundle, metadata=metadata, raw=True)


def show_html(html_text: str) -> None:
    """Display an HTML string (tables, banners) in a notebook output."""
    from IPython.display import display

    display({"text/html": html_text, "text/plain": "<HTML output>"}, raw=True)


# --------------------------------------------------------------------------------------
# 1. Population pyramid
# --------------------------------------------------------------------------------------


def _age_band_start(band: str) -> int:
    """Numeric start of an age band label ('0-4', '0_4', '95+', '90+' ...)."""
    match = re.match(r"\s*(\d+)", str(band))
    if not match:
        raise ValueError(
            f"population_pyramid: age_band {band!r} does not start with an age; expected labels "
            "like '0-4', '5-9', …, '90-94', '95+'."
        )
    return int(match.group(1))


def population_pyramid_spec(
    age_sex: pd.DataFrame,
    title: str,
    area_label: str,
    parent_label: str = "Parent",
    england_label: str = "England",
    *,
    source_note: str = "",
) -> FigureSpec:
    """Population pyramid: area as bars, parent and England as outlines.

    Args:
        age_sex: Columns ``age_band, sex`` (``male``/``female``), ``area_pct, parent_pct,
            england_pct`` (percent of the whole population in that band and sex; NaN allowed).
        title: Figure title.
        area_label: Name of the area shown as bars.
        parent_label: Name of the parent area (outline).
        england_label: Name of the comparator (outline).
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        A figure with males on the left (negative x) and females on the right.
    """
    function = "population_pyramid"
    _require_columns(
        age_sex,
        ["age_band", "sex", "area_pct", "parent_pct", "england_pct"],
        function=function,
        frame_name="age_sex",
    )
    bands = _text_values(age_sex, "age_band")
    sexes = [s.strip().lower() for s in _text_values(age_sex, "sex")]
    unknown = sorted({s for s in sexes if s not in ("male", "female")})
    if unknown:
        raise ValueError(
            f"{function}: column `sex` has values {unknown}; expected 'male' or 'female'."
        )
    pct = {
        col: _float_values(age_sex, col, function=function, frame_name="age_sex")
        for col in ("area_pct", "parent_pct", "england_pct")
    }
    order = sorted(set(bands), key=_age_band_start)
    position = {band: i for i, band in enumerate(order)}
    # Pivot by hand into (sex, band) arrays so the input frame is untouched.
    grid = {(col, sex): np.full(len(order), np.nan) for col in pct for sex in ("male", "female")}
    for i, (band, sex) in enumerate(zip(bands, sexes, strict=True)):
        for col in pct:
            grid[(col, sex)][position[band]] = pct[col][i]

    fig = FigureSpec()
    bar_colours = {"male": NHS_BLUE, "female": NHS_LIGHT_BLUE}
    for sex in ("male", "female"):
        values = grid[("area_pct", sex)]
        sign = -1.0 if sex == "male" else 1.0
        fig.add_trace(
            _bar(
                y=order,
                x=sign * values,
                orientation="h",
                name=f"{_esc(area_label)}: {sex}s",
                marker={"color": bar_colours[sex]},
                customdata=np.round(values, 2),
                hovertemplate=(
                    f"{_esc(area_label)}<br>{sex.capitalize()}s aged %{{y}}: "
                    "%{customdata:.1f}% of the population<extra></extra>"
                ),
            )
        )
    outlines = (
        ("parent_pct", parent_label, NHS_GREY, "dash"),
        ("england_pct", england_label, "#000000", "solid"),
    )
    for col, label, colour, dash in outlines:
        for sex in ("male", "female"):
            values = grid[(col, sex)]
            if not np.isfinite(values).any():
                continue
            sign = -1.0 if sex == "male" else 1.0
            fig.add_trace(
                _scatter(
                    y=order,
                    x=sign * values,
                    mode="lines",
                    line={"color": colour, "width": 2, "dash": dash, "shape": "hvh"},
                    name=_esc(label),
                    legendgroup=col,
                    showlegend=sex == "male",
                    connectgaps=False,
                    customdata=np.round(values, 2),
                    hovertemplate=(
                        f"{_esc(label)}<br>{sex.capitalize()}s aged %{{y}}: "
                        "%{customdata:.1f}% of the population<extra></extra>"
                    ),
                )
            )
    limit = _finite_max(*(np.abs(v) for v in grid.values()))
    step = _nice_step(limit)
    top = step * math.ceil(limit / step) if limit > 0 else 1.0
    ticks = np.arange(-top, top + step / 2, step)
    fig.update_layout(barmode="overlay", bargap=0.08)
    fig.update_xaxes(
        range=[-top * 1.05, top * 1.05],
        tickvals=ticks.tolist(),
        ticktext=[format_number(abs(t), "%") for t in ticks],
        zeroline=True,
        zerolinecolor=NHS_GREY,
    )
    fig.update_yaxes(categoryorder="array", categoryarray=order)
    # Inside the plot's top corners (the oldest bands are short there), clear of the legend
    # that sits on the plot's top edge.
    for text, x, anchor in (("Males", 0.0, "left"), ("Females", 1.0, "right")):
        fig.add_annotation(
            x=x,
            y=1.0,
            xref="paper",
            yref="paper",
            text=text,
            showarrow=False,
            xanchor=anchor,
            yanchor="top",
        )
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=max(420, 22 * len(order) + 160),
        x_title="Percentage of the total population (%)",
        y_title="Age band (years)",
    )
    return fig


# --------------------------------------------------------------------------------------
# 2. LSOA choropleth
# --------------------------------------------------------------------------------------


def _round_coordinates(coordinates: Any) -> Any:
    """Round nested GeoJSON coordinates, dropping points duplicated by the rounding."""
    if not coordinates:
        return coordinates
    if isinstance(coordinates[0], (int, float)):
        return [round(float(c), _GEOJSON_DECIMALS) for c in coordinates]
    if isinstance(coordinates[0][0], (int, float)):
        ring: list[list[float]] = []
        for point in coordinates:
            rounded = [round(float(c), _GEOJSON_DECIMALS) for c in point]
            if not ring or rounded != ring[-1]:
                ring.append(rounded)
        return ring
    return [_round_coordinates(part) for part in coordinates]


def _ring_signed_area(ring: list[list[float]]) -> float:
    """Shoelace signed area (positive = anticlockwise in lon/lat)."""
    xs = np.asarray([p[0] for p in ring])
    ys = np.asarray([p[1] for p in ring])
    return 0.5 * float(np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys))


def _rewind_polygon(polygon: list[Any]) -> list[Any]:
    """Wind exterior rings clockwise and holes anticlockwise (d3-geo's spherical convention).

    RFC 7946 GeoJSON uses the opposite order; d3-geo (used by plotly's geo maps) would then fill
    the whole globe except the LSOA.
    """
    rewound = []
    for index, ring in enumerate(polygon):
        clockwise = _ring_signed_area(ring) < 0
        want_clockwise = index == 0
        rewound.append(ring if clockwise == want_clockwise else ring[::-1])
    return rewound


#: Member of a GeoJSON FeatureCollection saying its geometries are already in display form:
#: coordinates on the 1e-5 degree grid and rings wound as d3-geo wants (exterior clockwise),
#: as ``PopHealthData.lsoa_geometries`` stores them. Such geometries are embedded as they are.
DISPLAY_READY = "pophealth_display_ready"


def _display_geometry(geometry: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    """Rounded, re-wound copy of a Polygon or MultiPolygon geometry (``ready``: as it is)."""
    kind = geometry.get("type")
    if ready and kind in ("Polygon", "MultiPolygon"):
        return geometry
    coordinates = _round_coordinates(geometry.get("coordinates"))
    if kind == "Polygon":
        coordinates = _rewind_polygon(coordinates)
    elif kind == "MultiPolygon":
        coordinates = [_rewind_polygon(polygon) for polygon in coordinates]
    else:
        raise ValueError(
            f"lsoa_choropleth: geometry type {kind!r} is not supported; LSOA boundaries must be "
            "Polygon or MultiPolygon."
        )
    return {"type": kind, "coordinates": coordinates}


def lsoa_choropleth_spec(
    lsoas_geojson: dict[str, Any],
    lsoa_values: pd.DataFrame,
    title: str,
    *,
    source_note: str = "",
) -> FigureSpec:
    """Map of the area's LSOAs coloured by national IMD decile (no map tiles needed).

    Uses ``go.Choropleth`` on a hidden geo base map fitted to the LSOAs, so nothing is fetched
    from the network when the page is viewed. Only features present in ``lsoa_values`` are
    embedded, with coordinates rounded to 5 decimal places.

    Args:
        lsoas_geojson: GeoJSON FeatureCollection in EPSG:4326 with ``properties.lsoa21_code``.
        lsoa_values: Columns ``lsoa21_code, imd_decile`` (1–10 national), ``imd_score,
            patients`` (patients of this area living in the LSOA).
        title: Figure title.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        A choropleth figure (one trace, plus a grey one for LSOAs without a decile).
    """
    function = "lsoa_choropleth"
    _require_columns(
        lsoa_values,
        ["lsoa21_code", "imd_decile", "imd_score", "patients"],
        function=function,
        frame_name="lsoa_values",
    )
    if not isinstance(lsoas_geojson, dict) or lsoas_geojson.get("type") != "FeatureCollection":
        raise ValueError(
            f"{function}: `lsoas_geojson` must be a GeoJSON FeatureCollection dict "
            "(e.g. json.loads(geodataframe.to_crs(4326).to_json()))."
        )
    codes = _text_values(lsoa_values, "lsoa21_code")
    wanted = set(codes)
    if len(wanted) != len(codes):
        duplicated = lsoa_values.loc[lsoa_values["lsoa21_code"].duplicated(keep=False)]
        raise ValueError(
            f"{function}: `lsoa_values` has duplicated lsoa21_code values; expected one row per "
            f"LSOA (aggregate patients per LSOA first).\nExample rows:\n"
            f"{duplicated.head(4).to_string()}"
        )
    features = []
    ready = lsoas_geojson.get(DISPLAY_READY) is True
    for feature in lsoas_geojson.get("features", []):
        code = (feature.get("properties") or {}).get("lsoa21_code")
        if code in wanted and feature.get("geometry"):
            # the code is the feature's id (plotly's featureidkey "id"): no properties needed
            features.append(
                {
                    "type": "Feature",
                    "id": code,
                    "geometry": _display_geometry(feature["geometry"], ready),
                }
            )
    found = {f["id"] for f in features}
    if wanted and not found:
        sample = [
            (f.get("properties") or {}).get("lsoa21_code")
            for f in lsoas_geojson.get("features", [])[:3]
        ]
        raise ValueError(
            f"{function}: none of the {len(wanted)} LSOA codes in `lsoa_values` (e.g. "
            f"{codes[:3]}) has a feature in `lsoas_geojson` (feature codes e.g. {sample}). "
            "Check the boundaries are LSOA 2021 and carry `properties.lsoa21_code`."
        )
    geojson = {"type": "FeatureCollection", "features": features}
    decile = _float_values(lsoa_values, "imd_decile", function=function, frame_name="lsoa_values")
    score = _float_values(lsoa_values, "imd_score", function=function, frame_name="lsoa_values")
    patients = _float_values(lsoa_values, "patients", function=function, frame_name="lsoa_values")
    bad = np.isfinite(decile) & ~np.isin(decile, np.arange(1, 11))
    if bad.any():
        raise ValueError(
            f"{function}: `imd_decile` must be whole numbers 1–10; got {decile[bad][:3].tolist()}."
        )
    hover = [
        f"<b>{_esc(code)}</b><br>IMD decile (national): {int(d) if np.isfinite(d) else '–'}"
        f"<br>IMD score: {format_number(s, decimals=1)}"
        f"<br>Patients of this area living here: {format_number(p, '')}"
        for code, d, s, p in zip(codes, decile, score, patients, strict=True)
    ]
    # Stepped colour scale so each decile gets exactly one colour.
    colorscale = []
    for i, colour in enumerate(IMD_DECILE_COLOURS):
        colorscale.append([i / 10, colour])
        colorscale.append([(i + 1) / 10, colour])
    has_decile = np.isfinite(decile)
    fig = FigureSpec()
    fig.add_trace(
        _choropleth(
            geojson=geojson,
            featureidkey="id",
            locations=[c for c, ok in zip(codes, has_decile, strict=True) if ok],
            z=decile[has_decile],
            zmin=0.5,
            zmax=10.5,
            colorscale=colorscale,
            marker={"line": {"color": "#FFFFFF", "width": 0.4}},
            # numbers per LSOA and one template, not a sentence per LSOA (a map's text was a
            # fifth of its page)
            customdata=np.column_stack([score, patients])[has_decile].round(1),
            hovertemplate="<b>%{location}</b><br>IMD decile (national): %{z}<br>IMD score: "
            "%{customdata[0]:.1f}<br>Patients of this area living here: "
            "%{customdata[1]:,.0f}<extra></extra>",
            name="IMD decile",
            colorbar={
                "title": {"text": "National IMD<br>decile"},
                "tickvals": list(range(1, 11)),
                "ticktext": ["1 most deprived"]
                + [str(i) for i in range(2, 10)]
                + ["10 least deprived"],
                "len": 0.9,
            },
        )
    )
    if (~has_decile).any():
        fig.add_trace(
            _choropleth(
                geojson=geojson,
                featureidkey="id",
                locations=[c for c, ok in zip(codes, has_decile, strict=True) if not ok],
                z=np.zeros(int((~has_decile).sum())),
                colorscale=[[0, "#C9C9C9"], [1, "#C9C9C9"]],
                showscale=False,
                marker={"line": {"color": "#FFFFFF", "width": 0.4}},
                text=[h for h, ok in zip(hover, has_decile, strict=True) if not ok],
                hovertemplate="%{text}<extra></extra>",
                name="No IMD decile",
                showlegend=True,
            )
        )
    fig.update_geos(
        fitbounds="locations",
        visible=False,
        projection={"type": "mercator"},
        scope=_GEO_SCOPE,
        resolution=_GEO_RESOLUTION,
    )
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=560,
        extra_meta={
            "lsoas": len(wanted),
            "lsoas_without_geometry": sorted(wanted - found)[:20],
            "lsoas_without_geometry_count": len(wanted - found),
        },
    )
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


# --------------------------------------------------------------------------------------
# 3. Deprivation deciles
# --------------------------------------------------------------------------------------


def deprivation_deciles_spec(
    decile_shares: pd.DataFrame,
    title: str,
    *,
    area_label: str = "This area",
    parent_label: str = "Parent",
    england_label: str = "England",
    source_note: str = "",
    population_label: str = "registered patients",
) -> FigureSpec:
    """Share of patients by national IMD decile: area bars, parent and England markers.

    Core20 deciles (1–2, the most deprived 20% of England) are shaded and their bars darker.

    Args:
        decile_shares: Columns ``imd_decile`` (1–10), ``area_pct, parent_pct, england_pct``.
        population_label: Who the percentages are of (e.g. "residents" for resident-based areas).
        title: Figure title.
        area_label: Legend name for the bars.
        parent_label: Legend name for the parent markers.
        england_label: Legend name for the England markers.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        The figure.
    """
    function = "deprivation_deciles"
    _require_columns(
        decile_shares,
        ["imd_decile", "area_pct", "parent_pct", "england_pct"],
        function=function,
        frame_name="decile_shares",
    )
    values = {
        col: _float_values(decile_shares, col, function=function, frame_name="decile_shares")
        for col in ("imd_decile", "area_pct", "parent_pct", "england_pct")
    }
    decile = values["imd_decile"]
    if not np.isin(decile[np.isfinite(decile)], np.arange(1, 11)).all() or np.isnan(decile).any():
        raise ValueError(f"{function}: `imd_decile` must be whole numbers 1–10; got {decile}.")
    order = np.argsort(decile, kind="stable")
    x = decile[order]
    is_core20 = x <= 2
    fig = FigureSpec()
    fig.add_vrect(
        x0=0.5, x1=2.5, fillcolor=NHS_PALE_GREY, opacity=0.8, line={"width": 0}, layer="below"
    )
    fig.add_annotation(
        x=1.5,
        y=1.0,
        yref="paper",
        text="Core20<br>(most deprived 20%)",
        showarrow=False,
        yanchor="top",
        font={"size": 11, "color": NHS_DARK_BLUE},
    )
    area = values["area_pct"][order]
    fig.add_trace(
        _bar(
            x=x,
            y=area,
            name=_esc(area_label),
            marker={"color": np.where(is_core20, NHS_DARK_BLUE, NHS_BLUE).tolist()},
            customdata=np.round(area, 2),
            hovertemplate=(
                f"{_esc(area_label)}<br>IMD decile %{{x}}: %{{customdata:.1f}}% of patients"
                "<extra></extra>"
            ),
        )
    )
    markers = (
        ("parent_pct", parent_label, "diamond", NHS_GREY, 11),
        ("england_pct", england_label, "line-ew", "#000000", 28),
    )
    for col, label, symbol, colour, size in markers:
        series = values[col][order]
        if not np.isfinite(series).any():
            continue
        fig.add_trace(
            _scatter(
                x=x,
                y=series,
                mode="markers",
                name=_esc(label),
                marker={
                    "symbol": symbol,
                    "color": colour,
                    "size": size,
                    "line": {"color": colour, "width": 3},
                },
                customdata=np.round(series, 2),
                hovertemplate=(
                    f"{_esc(label)}<br>IMD decile %{{x}}: %{{customdata:.1f}}% of patients"
                    "<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(
        tickvals=list(range(1, 11)),
        ticktext=["1<br>most<br>deprived"]
        + [str(i) for i in range(2, 10)]
        + ["10<br>least<br>deprived"],
        range=[0.5, 10.5],
    )
    fig.update_yaxes(rangemode="tozero")
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=440,
        x_title="National IMD decile of patients' LSOA (1 = most deprived)",
        y_title=f"Percentage of {population_label} (%)",
        extra_meta={"core20_area_pct": float(np.nansum(area[is_core20]))},
    )
    return fig


# --------------------------------------------------------------------------------------
# 4. Workforce versus need
# --------------------------------------------------------------------------------------


def weighted_trend(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares straight line ``y = slope * x + intercept``.

    ``numpy.polyfit`` multiplies residuals by ``w``, so ``w = sqrt(weights)`` minimises
    ``sum(weights * residual**2)``.

    Args:
        x: Explanatory values.
        y: Responses.
        weights: Non-negative weights (e.g. registered patients).

    Returns:
        ``(slope, intercept)``; NaN pair when fewer than two distinct usable points.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    weights = np.asarray(weights, dtype=float)
    usable = np.isfinite(x) & np.isfinite(y) & np.isfinite(weights) & (weights > 0)
    if usable.sum() < 2 or np.unique(x[usable]).size < 2:
        return (math.nan, math.nan)
    slope, intercept = np.polyfit(x[usable], y[usable], 1, w=np.sqrt(weights[usable]))
    return (float(slope), float(intercept))


def workforce_vs_need_spec(
    practices: pd.DataFrame,
    title: str,
    highlight_label: str,
    *,
    source_note: str = "",
) -> FigureSpec:
    """Practice GP FTE per 10,000 weighted patients against deprivation, this area highlighted.

    Args:
        practices: Columns ``practice_code, practice_name, imd_score, gp_fte_per_10k_weighted,
            registered_patients, in_area`` (bool).
        title: Figure title.
        highlight_label: Name of the area whose practices are highlighted.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        Scatter (other practices, this area's practices) plus a patient-weighted trend line.
    """
    function = "workforce_vs_need"
    frame_name = "practices"
    _require_columns(practices, WORKFORCE_VS_NEED_COLUMNS, function=function, frame_name=frame_name)
    imd = _float_values(practices, "imd_score", function=function, frame_name=frame_name)
    fte = _float_values(
        practices, "gp_fte_per_10k_weighted", function=function, frame_name=frame_name
    )
    patients = _float_values(
        practices, "registered_patients", function=function, frame_name=frame_name
    )
    in_area_raw = practices["in_area"]
    if in_area_raw.isna().any():
        raise ValueError(f"{function}: column `in_area` has missing values; use True/False.")
    unexpected = [v for v in in_area_raw.unique().tolist() if v not in (True, False)]
    if unexpected:
        raise ValueError(
            f"{function}: column `in_area` must be True/False; got {unexpected[:3]} "
            "(text such as 'False' would silently count as True)."
        )
    in_area = in_area_raw.astype(bool).to_numpy()
    codes = _text_values(practices, "practice_code")
    names = _text_values(practices, "practice_name")
    plotted = np.isfinite(imd) & np.isfinite(fte)
    sizes = np.sqrt(np.where(np.isfinite(patients) & (patients > 0), patients, 0.0))
    max_size = float(sizes.max()) if sizes.size and sizes.max() > 0 else 1.0
    marker_size = 5 + 17 * sizes / max_size
    # one template for every practice; names, codes (and numbers no one format writes
    # exactly) are the points' data
    hover = _HoverFields(plotted)
    name_field = hover.text([_esc(n) for n in names])
    code_field = hover.text([_esc(c) for c in codes])
    imd_field = hover.number("x", imd, decimals=1, carried_decimals=3)
    fte_field = hover.number("y", fte, decimals=1, carried_decimals=3)
    patients_field = hover.data_number(patients)
    template = hover.template(
        f"<b>{name_field}</b> ({code_field})<br>IMD score: {imd_field}"
        f"<br>GP FTE per 10,000 weighted patients: {fte_field}"
        f"<br>Registered patients: {patients_field}<extra></extra>"
    )
    fig = FigureSpec()
    groups = (
        (~in_area, "Other practices", "rgba(118,134,146,0.45)", NHS_MID_GREY),
        (in_area, f"Practices in {_esc(highlight_label)}", NHS_BLUE, NHS_DARK_BLUE),
    )
    for mask, name, fill, outline in groups:
        keep = mask & plotted
        fig.add_trace(
            _scatter(
                x=hover.values["x"][keep],
                y=hover.values["y"][keep],
                mode="markers",
                name=name,
                marker={
                    "size": np.round(marker_size[keep], 1),
                    "color": fill,
                    "line": {"color": outline, "width": 1},
                },
                customdata=hover.customdata(keep),
                hovertemplate=template,
            )
        )
    slope, intercept = weighted_trend(imd, fte, patients)
    if math.isfinite(slope):
        xs = np.array([np.nanmin(imd[plotted]), np.nanmax(imd[plotted])])
        fig.add_trace(
            _scatter(
                x=xs,
                y=slope * xs + intercept,
                mode="lines",
                name="Trend (weighted by list size)",
                line={"color": NHS_DARK_BLUE, "width": 2, "dash": "dash"},
                hovertemplate=(
                    f"Patient-weighted trend: {slope:+.2f} GP FTE per 10,000 per IMD point"
                    "<extra></extra>"
                ),
            )
        )
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=480,
        x_title="Practice deprivation (patient-weighted IMD score; higher = more deprived)",
        y_title="GP FTE per 10,000 weighted patients",
        extra_meta={
            "trend_slope": slope if math.isfinite(slope) else None,
            "trend_intercept": intercept if math.isfinite(intercept) else None,
            "practices_not_plotted": int((~plotted).sum()),
        },
    )
    return fig


# --------------------------------------------------------------------------------------
# 5. Spine chart
# --------------------------------------------------------------------------------------


def spine_scale(
    values: np.ndarray,
    comparator: np.ndarray,
    half_range: np.ndarray,
    direction: np.ndarray,
) -> np.ndarray:
    """Fingertips spine scaling: comparator at 0, the widest spread at ±1, better to the right."""
    return direction * (np.asarray(values, dtype=float) - comparator) / half_range


def spine_chart_spec(
    rows: pd.DataFrame,
    title: str,
    *,
    area_label: str = "This area",
    comparator_label: str = "England",
    peer_label: str = "comparable areas",
    source_note: str = "",
) -> FigureSpec:
    """Fingertips-style spine chart, one row per indicator, centred on the comparator.

    For each indicator the values are scaled so the comparator (England) sits on the centre
    line and the furthest of the peer minimum, peer maximum and area value sits at ±1. For
    indicators where low is good the scale is flipped, so better is always to the right (as in
    Fingertips). The peer range is a light grey bar, the inter-quartile range a darker one and
    the area value a circle coloured by its comparison.

    Args:
        rows: Columns ``indicator_id, title, unit, value, lower_ci, upper_ci, comparator_value,
            peer_min, peer_q25, peer_q75, peer_max, comparison, polarity``.
        title: Figure title.
        area_label: Name of the area (hover text).
        comparator_label: Name of the comparator on the centre line.
        peer_label: What the peers are (hover text).
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        The figure. Rows with a missing value keep their label but have no marker.
    """
    function = "spine_chart"
    _require_columns(
        rows,
        [
            "indicator_id",
            "title",
            "unit",
            "value",
            "lower_ci",
            "upper_ci",
            "comparator_value",
            "peer_min",
            "peer_q25",
            "peer_q75",
            "peer_max",
            "comparison",
            "polarity",
        ],
        function=function,
        frame_name="rows",
    )
    numbers = {
        col: _float_values(rows, col, function=function, frame_name="rows")
        for col in (
            "value",
            "lower_ci",
            "upper_ci",
            "comparator_value",
            "peer_min",
            "peer_q25",
            "peer_q75",
            "peer_max",
        )
    }
    titles = _text_values(rows, "title")
    units = _text_values(rows, "unit")
    comparisons = _normalise_comparison(rows["comparison"].tolist(), function=function)
    direction = np.array([_polarity_direction(p) for p in rows["polarity"].tolist()], dtype=float)
    n_rows = len(rows)
    positions = np.arange(n_rows, dtype=float)
    comparator = numbers["comparator_value"]
    spread = np.abs(
        np.column_stack([numbers["peer_min"], numbers["peer_max"], numbers["value"]]).reshape(
            n_rows, 3
        )
        - comparator.reshape(n_rows, 1)
    )
    half_range = np.nanmax(np.where(np.isfinite(spread), spread, 0.0), axis=1, initial=0.0)
    half_range = np.where(half_range > 0, half_range, 1.0)
    scaled = {
        col: spine_scale(numbers[col], comparator, half_range, direction)
        for col in ("value", "peer_min", "peer_q25", "peer_q75", "peer_max")
    }
    # one template; each row's numbers (with their units) and words are its data
    value_text, comparator_text, range_text, middle_text, comparison_text = [], [], [], [], []
    for i in range(n_rows):
        unit = units[i]
        ci = ""
        if np.isfinite(numbers["lower_ci"][i]) and np.isfinite(numbers["upper_ci"][i]):
            ci = (
                f" (95% CI {format_number(numbers['lower_ci'][i], unit)}–"
                f"{format_number(numbers['upper_ci'][i], unit)})"
            )
        value_text.append(f"{_with_unit(numbers['value'][i], unit)}{ci}")
        comparator_text.append(_with_unit(comparator[i], unit))
        range_text.append(
            f"{_with_unit(numbers['peer_min'][i], unit)} to "
            f"{_with_unit(numbers['peer_max'][i], unit)}"
        )
        middle_text.append(
            f"{_with_unit(numbers['peer_q25'][i], unit)} to "
            f"{_with_unit(numbers['peer_q75'][i], unit)}"
        )
        comparison_text.append(
            COMPARISON_LABELS[comparisons[i]].format(comparator=_esc(comparator_label))
        )
    hover = _HoverFields(np.ones(n_rows, dtype=bool))
    # labels in the template are escaped like every data text (``%{`` shows literally)
    row_lines = (
        f"<b>{hover.text([_esc(t) for t in titles])}</b>"
        f"<br>{_esc(area_label)}: {hover.text(value_text)}"
        f"<br>{_esc(comparator_label)}: {hover.text(comparator_text)}"
        f"<br>Range of {_esc(peer_label)}: {hover.text(range_text)}"
        f"<br>Middle half: {hover.text(middle_text)}"
    )
    # the range bar's rows say their comparison; a marker's trace name says it
    comparison_field = hover.text(comparison_text)
    row_template = hover.template(f"{row_lines}<br>{comparison_field}<extra></extra>")
    marker_hover = _HoverFields(np.ones(n_rows, dtype=bool))
    marker_hover.columns = hover.columns[:-1]
    marker_lines = marker_hover.template(row_lines)

    fig = FigureSpec()
    bars = (
        ("peer_min", "peer_max", f"Range of {_esc(peer_label)}", "#D9D9D9"),
        ("peer_q25", "peer_q75", "Middle half (25th to 75th percentile)", "#8C8C8C"),
    )
    for n, (low_col, high_col, name, colour) in enumerate(bars):
        low = np.fmin(scaled[low_col], scaled[high_col])
        high = np.fmax(scaled[low_col], scaled[high_col])
        both = np.isfinite(scaled[low_col]) & np.isfinite(scaled[high_col])
        # the row's text rides on the full range bar and the marker only (it was a page's
        # biggest text when every trace carried it)
        bar_hover = (
            {
                "customdata": hover.customdata(np.ones(n_rows, dtype=bool)),
                "hovertemplate": row_template,
            }
            if n == 0
            else {"hoverinfo": "skip"}
        )
        fig.add_trace(
            _bar(
                y=positions,
                x=np.where(both, high - low, np.nan),
                base=np.where(both, low, np.nan),
                orientation="h",
                width=0.55,
                name=name,
                marker={"color": colour, "line": {"width": 0}},
                **bar_hover,
            )
        )
    has_value = np.isfinite(scaled["value"])
    for category in ("better", "similar", "worse", "higher", "lower", "not compared"):
        mask = has_value & np.array([c == category for c in comparisons], dtype=bool)
        if not mask.any():
            continue
        name = COMPARISON_LABELS[category].format(comparator=_esc(comparator_label))
        fig.add_trace(
            _scatter(
                x=np.round(scaled["value"][mask], 4),
                y=positions[mask],
                mode="markers",
                name=name,
                marker={
                    "color": COMPARISON_COLOURS[category],
                    "size": 14,
                    "line": {"color": "#212B32", "width": 1},
                },
                customdata=marker_hover.customdata(mask),
                hovertemplate=f"{marker_lines}<br>{name}<extra></extra>",
            )
        )
    # Printed value column so the chart still reads without hover (PDF / print).
    value_x = 1.32
    fig.add_trace(
        _scatter(
            x=np.full(n_rows, value_x),
            y=positions,
            mode="text",
            text=[_with_unit(v, u) for v, u in zip(numbers["value"], units, strict=True)],
            textposition="middle center",
            showlegend=False,
            name="Value",
            hoverinfo="skip",
        )
    )
    fig.add_shape(
        type="line",
        x0=0,
        x1=0,
        y0=-0.5,
        y1=n_rows - 0.5,
        xref="x",
        yref="y",
        line={"color": NHS_DARK_BLUE, "width": 2},
        name="comparator",
    )
    fig.add_annotation(
        x=0,
        y=-0.5,
        xref="x",
        yref="y",
        text=_esc(comparator_label),
        showarrow=False,
        yanchor="bottom",
        font={"color": NHS_DARK_BLUE, "size": 11},
    )
    fig.add_annotation(
        x=value_x,
        y=-0.5,
        xref="x",
        yref="y",
        text=f"<b>{_esc(area_label)}</b>",
        showarrow=False,
        yanchor="bottom",
        font={"size": 11},
    )
    ticktext = [
        # The unit is in the printed value column (e.g. "5.73 per 10,000"), so labels stay at
        # two lines at most and rows can be compact.
        _wrap(_esc(t), 60)
        for t, u in zip(titles, units, strict=True)
    ]
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(
        tickvals=positions.tolist(),
        ticktext=ticktext,
        range=[n_rows - 0.4, -0.9],
        showgrid=False,
        automargin=True,
    )
    fig.update_xaxes(
        range=[-1.08, 1.55],
        tickvals=[-1, 0, 1],
        ticktext=["Worse / lower", _esc(comparator_label), "Better / higher"],
        showgrid=False,
        zeroline=False,
    )
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=max(300, 34 * n_rows + 170),
        x_title=(
            f"Scaled to {_esc(comparator_label)} (centre line); better to the right where "
            "an indicator has a polarity"
        ),
        y_title="Indicator",
        extra_meta={"indicator_ids": _text_values(rows, "indicator_id")},
    )
    fig.update_layout(margin={"l": 20})
    return fig


# --------------------------------------------------------------------------------------
# 6. Funnel plot
# --------------------------------------------------------------------------------------


def _funnel_side(sorted_limits: dict[str, np.ndarray], denominator: float, value: float) -> str:
    """``above``/``below the 99.8% (or 95%) limits``, ``within the 95% limits``, or ''.

    ``sorted_limits`` holds ``denominator`` and the four limit columns, in denominator order;
    the limits are interpolated at the point's denominator.
    """
    return _funnel_sides(sorted_limits, np.array([denominator]), np.array([value]))[0]


def _funnel_sides(
    sorted_limits: dict[str, np.ndarray], denominator: np.ndarray, value: np.ndarray
) -> list[str]:
    """:func:`_funnel_side` of many points at once (the limits interpolated for all)."""
    grid = sorted_limits["denominator"]
    n = len(value)
    placed = np.isfinite(value) & np.isfinite(denominator)
    if not grid.size:
        return [""] * n
    at = np.where(placed, denominator, 0.0)
    side = np.full(n, "within the 95% limits", dtype=object)
    decided = ~placed
    for level, label in (("99_8", "99.8%"), ("95", "95%")):
        above = ~decided & (value > np.interp(at, grid, sorted_limits[f"upper_{level}"]))
        side[above] = f"above the {label} limits"
        decided |= above
        below = ~decided & (value < np.interp(at, grid, sorted_limits[f"lower_{level}"]))
        side[below] = f"below the {label} limits"
        decided |= below
    side[~placed] = ""
    return side.tolist()


def funnel_position(limits: pd.DataFrame, denominator: float, value: float) -> str:
    """Where a value at a denominator sits in a funnel: see :func:`_funnel_side`.

    Args:
        limits: ``denominator, lower_95, upper_95, lower_99_8, upper_99_8`` (any order).
        denominator: The area's denominator.
        value: The area's value.
    """
    columns = ("denominator", "lower_95", "upper_95", "lower_99_8", "upper_99_8")
    order = np.argsort(limits["denominator"].to_numpy(dtype=float), kind="stable")
    return _funnel_side(
        {c: limits[c].to_numpy(dtype=float)[order] for c in columns},
        float(denominator),
        float(value),
    )


def _funnel_view(
    denominator: np.ndarray, value: np.ndarray, target: float, sorted_limits: dict[str, np.ndarray]
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The x and y axis ranges of a funnel (None without points).

    Fitted to the points (``denominator``, ``value``), the target and the limits over the
    points' denominators (not blown up by limits near a denominator of 0), padded 5%.
    """
    if not denominator.size:
        return None
    limit_x = sorted_limits["denominator"]
    x_low, x_high = float(np.nanmin(denominator)), float(np.nanmax(denominator))
    x_pad = (x_high - x_low) * 0.05 or x_high * 0.05 or 1.0
    x_low, x_high = max(0.0, x_low - x_pad), x_high + x_pad
    in_view = (limit_x >= x_low) & (limit_x <= x_high)
    y_parts = [value, [target]]
    for column in ("lower_99_8", "upper_99_8", "lower_95", "upper_95"):
        y_parts.append(sorted_limits[column][in_view])
    y_all = np.concatenate([np.asarray(p, dtype=float) for p in y_parts])
    y_low, y_high = float(np.nanmin(y_all)), float(np.nanmax(y_all))
    y_pad = (y_high - y_low) * 0.05 or abs(y_high) * 0.05 or 1.0
    return (x_low, x_high), (y_low - y_pad, y_high + y_pad)


#: Largest gap, as a share of the funnel's y axis, between a limit curve drawn through fewer
#: points and the same curve through every point of the limits' grid (a third of a pixel on a
#: small multiple's ~150 px high plot).
FUNNEL_CURVE_TOLERANCE = 0.002


def _funnel_curve_points(
    sorted_limits: dict[str, np.ndarray],
    view: tuple[tuple[float, float], tuple[float, float]] | None,
    tolerance: float = FUNNEL_CURVE_TOLERANCE,
) -> np.ndarray:
    """Indices of the limits' grid points that draw all four limit curves as smooth.

    The grid is dense where the limits bend (small denominators) and wherever the caller
    asked; the flat end needs far fewer points. A point is left out only when the straight
    line between the points kept either side of it passes within ``tolerance`` of the y axis
    span of every curve's value there, so every point drawn is an exact limit and the line
    differs from the full grid's by less than a fraction of a pixel. Points next to a missing
    limit are kept.
    """
    x = sorted_limits["denominator"]
    n = x.size
    if n <= 2:
        return np.arange(n)
    curves = np.vstack(
        [sorted_limits[c] for c in ("lower_99_8", "upper_99_8", "lower_95", "upper_95")]
    )
    # the areas of one system share their funnels (same limits, same points, same view): the
    # walk below is done once for them, not once per profile
    key = (x.tobytes(), curves.tobytes(), view, tolerance)
    found = _CURVE_POINTS.get(key)
    if found is None:
        if len(_CURVE_POINTS) >= _CURVE_POINTS_KEPT:
            _CURVE_POINTS.clear()
        found = _CURVE_POINTS[key] = _curve_points(x, curves, view, tolerance)
    return found.copy()


#: Funnel curve points worked out (:func:`_funnel_curve_points`), by limits, view, tolerance.
_CURVE_POINTS: dict[tuple, np.ndarray] = {}
_CURVE_POINTS_KEPT = 512


def _curve_points(
    x: np.ndarray,
    curves: np.ndarray,
    view: tuple[tuple[float, float], tuple[float, float]] | None,
    tolerance: float,
) -> np.ndarray:
    """The walk of :func:`_funnel_curve_points` over the grid ``x`` and the four ``curves``."""
    n = x.size
    if view is not None:
        span = view[1][1] - view[1][0]
    else:
        finite = curves[np.isfinite(curves)]
        span = float(finite.max() - finite.min()) if finite.size else 0.0
    allowed = tolerance * span if span > 0 else 0.0
    keep = [0]
    start = 0
    while start < n - 1:
        end = start + 1
        while end + 1 < n:
            candidate = end + 1
            inner = slice(start + 1, candidate)
            share = (x[inner] - x[start]) / (x[candidate] - x[start])
            line = curves[:, [start]] + (curves[:, [candidate]] - curves[:, [start]]) * share
            segment = curves[:, start : candidate + 1]
            if not np.isfinite(segment).all() or (np.abs(line - curves[:, inner]).max() > allowed):
                break
            end = candidate
        keep.append(end)
        start = end
    return np.asarray(keep)


def funnel_plot_spec(
    points: pd.DataFrame,
    limits: pd.DataFrame,
    target: float,
    title: str,
    highlight_code: str,
    value_label: str,
    *,
    denominator_label: str = "Denominator (number of patients)",
    source_note: str = "",
) -> FigureSpec:
    """Funnel plot of area values against denominators with 95% and 99.8% control limits.

    Args:
        points: Columns ``area_code, area_name, denominator, value``.
        limits: Columns ``denominator, lower_95, upper_95, lower_99_8, upper_99_8``.
        target: The target / comparator value (horizontal line).
        title: Figure title.
        highlight_code: ``area_code`` of the point to highlight.
        value_label: y-axis title including units, e.g. ``"Percentage of patients (%)"``.
        denominator_label: x-axis title.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        The figure: other areas, limit lines (dashed 95%, solid 99.8%), target, highlighted area.
    """
    function = "funnel_plot"
    _require_columns(
        points,
        ["area_code", "area_name", "denominator", "value"],
        function=function,
        frame_name="points",
    )
    _require_columns(
        limits,
        ["denominator", "lower_95", "upper_95", "lower_99_8", "upper_99_8"],
        function=function,
        frame_name="limits",
    )
    denominator = _float_values(points, "denominator", function=function, frame_name="points")
    value = _float_values(points, "value", function=function, frame_name="points")
    codes = _text_values(points, "area_code")
    names = _text_values(points, "area_name")
    limit_values = {
        col: _float_values(limits, col, function=function, frame_name="limits")
        for col in ("denominator", "lower_95", "upper_95", "lower_99_8", "upper_99_8")
    }
    order = np.argsort(limit_values["denominator"], kind="stable")
    sorted_limits = {col: arr[order] for col, arr in limit_values.items()}
    limit_x = sorted_limits["denominator"]

    def position(side: str) -> str:
        """Where a point falls relative to the interpolated limits."""
        if not side:
            return ""
        return (
            "Within the 95% limits"
            if side == "within the 95% limits"
            else f"Outside the {side.split(' the ', 1)[1]}"
        )

    highlight = np.array([c == highlight_code for c in codes], dtype=bool)
    plotted = np.isfinite(value) & np.isfinite(denominator)
    # the axes: fitted to the points, the target and the limits over the points' denominators
    # (not blown up by limits near a denominator of 0)
    view = _funnel_view(denominator[plotted], value[plotted], target, sorted_limits)
    # one template for every point; names, codes and positions are the points' data
    hover = _HoverFields(plotted)
    name_field = hover.text([_esc(n) for n in names])
    code_field = hover.text([_esc(c) for c in codes])
    value_field = hover.number("y", value, value_label)
    denominator_field = hover.number("x", denominator)
    positions = [position(side) for side in _funnel_sides(sorted_limits, denominator, value)]
    drawn_positions = [p for p, d in zip(positions, plotted.tolist(), strict=True) if d]
    if all(drawn_positions):
        where = "<br>" + hover.text(positions)
    elif any(drawn_positions):
        where = hover.text([f"<br>{p}" if p else "" for p in positions])
    else:  # no limits to place a point against: no line for it
        where = ""
    template = hover.template(
        f"<b>{name_field}</b> ({code_field})<br>Value: {value_field}"
        f"<br>Denominator: {denominator_field}{where}<extra></extra>"
    )
    fig = FigureSpec()
    keep = _funnel_curve_points(sorted_limits, view)
    for label, lower, upper, dash, width in (
        ("99.8% limits", "lower_99_8", "upper_99_8", "solid", 1.5),
        ("95% limits", "lower_95", "upper_95", "dash", 1.5),
    ):
        gap = np.array([np.nan])
        fig.add_trace(
            _scatter(
                x=np.concatenate([limit_x[keep], gap, limit_x[keep]]),
                y=np.concatenate([sorted_limits[lower][keep], gap, sorted_limits[upper][keep]]),
                mode="lines",
                name=label,
                line={"color": NHS_GREY, "dash": dash, "width": width},
                connectgaps=False,
                hovertemplate=f"{label}: %{{y:.2f}} at denominator %{{x:,.0f}}<extra></extra>",
            )
        )
    x_low = (
        np.nanmin(np.concatenate([limit_x, denominator[plotted]]))
        if plotted.any() or limit_x.size
        else 0.0
    )
    x_high = (
        np.nanmax(np.concatenate([limit_x, denominator[plotted]]))
        if plotted.any() or limit_x.size
        else 1.0
    )
    fig.add_trace(
        _scatter(
            x=[x_low, x_high],
            y=[target, target],
            mode="lines",
            name=f"Target / average ({format_number(target, value_label)})",
            line={"color": "#000000", "width": 2},
            hovertemplate=f"Target / average: {format_number(target, value_label)}<extra></extra>",
        )
    )
    for mask, name, marker in (
        (
            ~highlight & plotted,
            "Other areas",
            {"color": "rgba(118,134,146,0.6)", "size": 8, "line": {"width": 0}},
        ),
        (
            highlight & plotted,
            "This area",
            {"color": NHS_BLUE, "size": 14, "line": {"color": NHS_DARK_BLUE, "width": 2}},
        ),
    ):
        if not mask.any():
            continue
        fig.add_trace(
            _scatter(
                x=hover.values["x"][mask],
                y=hover.values["y"][mask],
                mode="markers+text" if name == "This area" else "markers",
                text=[_esc(n) for n, m in zip(names, mask, strict=True) if m]
                if name == "This area"
                else None,
                textposition="top center",
                name=name if name == "Other areas" else _esc(names[int(np.argmax(mask))]),
                marker=marker,
                customdata=hover.customdata(mask),
                hovertemplate=template,
            )
        )
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=480,
        x_title=denominator_label,
        y_title=value_label,
        extra_meta={"highlight_found": bool((highlight & plotted).any()), "target": target},
    )
    if view is not None:
        (x_low, x_high), (y_low, y_high) = view
        fig.update_xaxes(range=[x_low, x_high], autorange=False)
        fig.update_yaxes(range=[y_low, y_high], autorange=False)
    return fig


def small_multiples_spec(
    panels: Sequence[FigureSpec],
    title: str,
    *,
    columns: int = 5,
    panel_height: int = 230,
    source_note: str = "",
) -> FigureSpec:
    """Lay single-plot figures out as one figure of small multiples, ``columns`` to a row.

    Each panel keeps its traces, axis ranges and axis titles on its own axes; its title becomes
    a heading above it. The legend is the first panel's (the panels share their trace names),
    so one legend explains every panel. One figure instead of ten keeps a page short, and a
    notebook and a page show the same figure.

    Args:
        panels: Figures built by this module (one x and one y axis each).
        title: Title of the whole figure.
        columns: Panels in a row.
        panel_height: Height in px of a row of panels (plot area plus its heading).
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        The combined figure.
    """
    if not panels:
        raise ValueError("small_multiples_spec: no panels to lay out")
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    margin = {"l": 50, "r": 20, "t": 125, "b": 45}
    total = rows * panel_height + 110
    plot_px = total - margin["t"] - margin["b"]
    # between rows: the row above's x-axis title and this row's two-line panel headings
    gap_x, gap_y = 0.045, min(0.5, 95 / plot_px) if rows > 1 else 0.0
    heading_chars = max(20, 190 // columns)
    width = (1 - gap_x * (columns - 1)) / columns
    height = (1 - gap_y * (rows - 1)) / rows
    fig = FigureSpec()
    annotations: list[dict[str, Any]] = []
    for n, panel in enumerate(panels):
        row, col = divmod(n, columns)
        axis = "" if n == 0 else str(n + 1)
        x0 = col * (width + gap_x)
        y1 = 1 - row * (height + gap_y)
        for trace in panel.data:
            fig.add_trace({**trace, "xaxis": f"x{axis}", "yaxis": f"y{axis}", "showlegend": n == 0})
        x_axis = dict(panel.layout.get("xaxis") or {})
        y_axis = dict(panel.layout.get("yaxis") or {})
        small = {"font": {"size": 10}}
        x_axis["title"] = {**(x_axis.get("title") or {}), **small}
        y_axis["title"] = {**(y_axis.get("title") or {}), **small}
        fig.update_layout(
            **{
                f"xaxis{axis}": {
                    **x_axis,
                    "domain": [x0, x0 + width],
                    "anchor": f"y{axis}",
                    "tickfont": {"size": 10},
                },
                f"yaxis{axis}": {
                    **y_axis,
                    "domain": [y1 - height, y1],
                    "anchor": f"x{axis}",
                    "tickfont": {"size": 10},
                },
            }
        )
        annotations.append(
            {
                # escaped when the panel was built; wrapped at spaces (never inside an entity)
                "text": "<br>".join(textwrap.wrap(panel.title, heading_chars)[:2]),
                "x": x0,
                "xanchor": "left",
                "y": y1,
                "yanchor": "bottom",
                "xref": "paper",
                "yref": "paper",
                "showarrow": False,
                "align": "left",
                "font": {"size": 11, "color": NHS_DARK_BLUE},
            }
        )
    _finish(
        fig,
        chart="small_multiples",
        title=title,
        source_note=source_note,
        height=total,
        extra_meta={"panels": len(panels)},
    )
    fig.update_layout(
        annotations=annotations,
        margin=margin,
        height=total,
        # one legend for every panel, between the title and the first row's headings
        legend={"y": 1 + 42 / plot_px, "yanchor": "bottom", "font": {"size": 11}},
    )
    return fig


# --------------------------------------------------------------------------------------
# 7. Inverse care law
# --------------------------------------------------------------------------------------


def inverse_care_law_spec(
    quintiles: pd.DataFrame,
    sii_text: str,
    title: str,
    *,
    source_note: str = "",
) -> FigureSpec:
    """GP FTE per 10,000 weighted patients by practice deprivation quintile, with CIs and SII.

    Args:
        quintiles: Columns ``quintile`` (1 = most deprived … 5), ``value``, ``lower_ci``,
            ``upper_ci``, ``weighted_patients``.
        sii_text: Plain-English slope index of inequality sentence shown as an annotation.
        title: Figure title.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        A bar chart with asymmetric error bars.
    """
    function = "inverse_care_law"
    _require_columns(
        quintiles,
        ["quintile", "value", "lower_ci", "upper_ci", "weighted_patients"],
        function=function,
        frame_name="quintiles",
    )
    cols = {
        c: _float_values(quintiles, c, function=function, frame_name="quintiles")
        for c in ("quintile", "value", "lower_ci", "upper_ci", "weighted_patients")
    }
    quintile = cols["quintile"]
    if np.isnan(quintile).any() or not np.isin(quintile, np.arange(1, 6)).all():
        raise ValueError(f"{function}: `quintile` must be whole numbers 1–5; got {quintile}.")
    order = np.argsort(quintile, kind="stable")
    q = quintile[order].astype(int)
    value = cols["value"][order]
    lower = cols["lower_ci"][order]
    upper = cols["upper_ci"][order]
    weighted = cols["weighted_patients"][order]
    hover = [
        f"Quintile {qi}{' (most deprived)' if qi == 1 else ''}"
        f"{' (least deprived)' if qi == 5 else ''}"
        f"<br>GP FTE per 10,000 weighted patients: {format_number(v, decimals=1)}"
        f" (95% CI {format_number(lo, decimals=1)}–{format_number(hi, decimals=1)})"
        f"<br>Weighted patients: {format_number(w, '')}"
        for qi, v, lo, hi, w in zip(q, value, lower, upper, weighted, strict=True)
    ]
    fig = FigureSpec().add_trace(
        _bar(
            x=q,
            y=value,
            marker={"color": [QUINTILE_COLOURS[qi - 1] for qi in q]},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": np.where(np.isfinite(upper), upper - value, np.nan),
                "arrayminus": np.where(np.isfinite(lower), value - lower, np.nan),
                "color": "#212B32",
                "thickness": 1.5,
                "width": 6,
            },
            name="GP FTE per 10,000 weighted patients",
            text=hover,
            textposition="none",
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    # Above the plot area so it never hides a bar or an error bar.
    fig.add_annotation(
        x=0.0,
        y=1.02,
        xref="paper",
        yref="paper",
        text=_wrap(_esc(sii_text), 110),
        showarrow=False,
        xanchor="left",
        yanchor="bottom",
        align="left",
        bgcolor="rgba(255,255,255,0.9)",
        bordercolor=NHS_BLUE,
        borderwidth=1,
        borderpad=6,
    )
    fig.update_xaxes(
        tickvals=[1, 2, 3, 4, 5],
        ticktext=["1<br>most deprived", "2", "3", "4", "5<br>least deprived"],
        range=[0.4, 5.6],
    )
    fig.update_yaxes(rangemode="tozero")
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=440,
        x_title="Practice deprivation quintile (1 = most deprived)",
        y_title="GP FTE per 10,000 weighted patients",
        extra_meta={"sii_text": sii_text},
    )
    fig.update_layout(margin={"t": 120})
    return fig


# --------------------------------------------------------------------------------------
# 8. Fair share
# --------------------------------------------------------------------------------------


def fair_share_bars_spec(
    fair_share: pd.DataFrame,
    title: str,
    *,
    source_note: str = "",
) -> FigureSpec:
    """Actual GP FTE against the fair share implied by each benchmark rate.

    Args:
        fair_share: Columns ``benchmark`` (e.g. "System rate"), ``actual_fte``,
            ``fair_share_fte``, ``gap_fte`` (actual minus fair share).
        title: Figure title.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        Grouped bars (actual, fair share) with the gap annotated above each group.
    """
    function = "fair_share_bars"
    _require_columns(
        fair_share,
        ["benchmark", "actual_fte", "fair_share_fte", "gap_fte"],
        function=function,
        frame_name="fair_share",
    )
    benchmarks = [_esc(b) for b in _text_values(fair_share, "benchmark")]
    actual = _float_values(fair_share, "actual_fte", function=function, frame_name="fair_share")
    fair = _float_values(fair_share, "fair_share_fte", function=function, frame_name="fair_share")
    gap = _float_values(fair_share, "gap_fte", function=function, frame_name="fair_share")
    fig = FigureSpec()
    for values, name, colour in (
        (actual, "Actual GP FTE", NHS_BLUE),
        (fair, "Fair share GP FTE", NHS_GREY),
    ):
        fig.add_trace(
            _bar(
                x=benchmarks,
                y=values,
                name=name,
                marker={"color": colour},
                customdata=np.column_stack([actual, fair, gap]).round(2),
                hovertemplate=(
                    "%{x}<br>Actual: %{customdata[0]:,.1f} FTE<br>Fair share: "
                    "%{customdata[1]:,.1f} FTE<br>Gap (actual − fair share): "
                    "%{customdata[2]:+,.1f} FTE<extra></extra>"
                ),
            )
        )
    top = _finite_max(actual, fair)
    for name, a, f, g in zip(benchmarks, actual, fair, gap, strict=True):
        if not np.isfinite(g):
            continue
        fig.add_annotation(
            x=name,
            y=_finite_max(np.array([a, f])),
            text=f"Gap {g:+,.1f} FTE".replace("-", "−"),
            showarrow=False,
            yanchor="bottom",
            yshift=4,
            font={"color": COMPARISON_COLOURS["worse"] if g < 0 else NHS_DARK_BLUE},
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, top * 1.18 if top > 0 else 1])
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=420,
        x_title="Benchmark rate used for the fair share",
        y_title="GP full-time equivalent (FTE)",
    )
    return fig


#: Diverging, colour-blind-safe scale for workforce gaps (ColorBrewer PuOr: orange = short of
#: the fair share, white = at it, purple = above it); readable in greyscale by lightness.
GAP_COLOURSCALE: tuple[tuple[float, str], ...] = (
    (0.0, "#b35806"),
    (0.25, "#f1a340"),
    (0.5, "#f7f7f7"),
    (0.75, "#998ec3"),
    (1.0, "#542788"),
)


def workforce_heatmap_spec(
    cells: pd.DataFrame,
    title: str,
    *,
    comparator: str = "England",
    limit_pct: float = 50.0,
    source_note: str = "",
) -> FigureSpec:
    """Neighbourhoods x staff groups: FTE per 10,000 weighted patients, coloured by the gap.

    Rows are sorted by need (IMD score, most deprived at the top); each cell shows the FTE per
    10,000 weighted patients and is coloured by the gap to the fair share at the comparator's
    rate (a diverging colour-blind-safe scale, :data:`GAP_COLOURSCALE`, clipped at
    ±``limit_pct``).

    Args:
        cells: ``area_code, area_name, imd_score, group_label, fte_per_10k, benchmark_per_10k,
            gap_pct`` (one row per neighbourhood and staff group).
        title: Figure title.
        comparator: Name of the benchmark whose rate defines the fair share.
        limit_pct: Gap (percent) at which the colour saturates.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        A heatmap figure spec.
    """
    function = "workforce_heatmap"
    columns = ["area_code", "area_name", "imd_score", "group_label", "fte_per_10k"]
    columns += ["benchmark_per_10k", "gap_pct"]
    _require_columns(cells, columns, function=function, frame_name="cells")
    for column in ("imd_score", "fte_per_10k", "benchmark_per_10k", "gap_pct"):
        _float_values(cells, column, function=function, frame_name="cells")
    groups = list(dict.fromkeys(_text_values(cells, "group_label")))
    areas = (
        cells.drop_duplicates("area_code")
        .sort_values(["imd_score", "area_code"], ascending=[False, True], na_position="last")
        .reset_index(drop=True)
    )
    order = areas["area_code"].tolist()
    grid = cells.pivot_table(
        index="area_code", columns="group_label", values=["fte_per_10k", "gap_pct"], aggfunc="first"
    )
    rate = grid["fte_per_10k"].reindex(index=order, columns=groups).to_numpy(dtype=float)
    gap = grid["gap_pct"].reindex(index=order, columns=groups).to_numpy(dtype=float)
    bench = cells.drop_duplicates("group_label").set_index("group_label")["benchmark_per_10k"]
    labels = [
        f"{_esc(name)} (IMD {score:.1f})" if np.isfinite(score) else _esc(name)
        for name, score in zip(
            areas["area_name"].astype(str), areas["imd_score"].astype(float), strict=True
        )
    ]
    x_labels = [_esc(g) for g in groups]
    text = np.where(np.isfinite(rate), np.char.mod("%.1f", np.nan_to_num(rate)), "n/a")
    bench_row = np.array([float(bench.get(g, np.nan)) for g in groups])
    custom = np.dstack([gap.round(1), np.broadcast_to(bench_row.round(2), gap.shape)])
    fig = FigureSpec()
    fig.add_trace(
        _trace(
            "heatmap",
            {
                "z": np.clip(gap, -limit_pct, limit_pct).round(2),
                "x": x_labels,
                "y": labels,
                "text": text,
                "texttemplate": "%{text}",
                "customdata": custom,
                "colorscale": [list(stop) for stop in GAP_COLOURSCALE],
                "zmin": -limit_pct,
                "zmax": limit_pct,
                "zmid": 0,
                "xgap": 2,
                "ygap": 2,
                "colorbar": {
                    "title": {"text": f"Gap to fair share<br>at {_esc(comparator)} rate (%)"},
                    "ticksuffix": "%",
                },
                "hovertemplate": (
                    "%{y}<br>%{x}: %{text} FTE per 10,000 weighted patients<br>"
                    f"{_esc(comparator)}: " + "%{customdata[1]:.1f}<br>"
                    "Gap to fair share: %{customdata[0]:+.0f}%<extra></extra>"
                ),
            },
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(side="top")
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=max(320, 120 + 28 * len(order)),
        extra_meta={"rows": order, "groups": groups},
    )
    fig.update_layout(margin={"t": 110})
    return fig


def team_chart_spec(
    team: pd.DataFrame,
    title: str,
    *,
    area_label: str,
    comparator: str = "England",
    source_note: str = "",
) -> FigureSpec:
    """The area's team: FTE per 10,000 weighted patients by staff group against the comparator.

    Bars are stacked: staff of the practices, then staff employed by the PCN (apportioned by
    registered patients); a diamond marks the comparator's rate for the same group.

    Args:
        team: ``label, practice_per_10k, pcn_per_10k, benchmark_per_10k`` and optionally
            ``gap_fte`` (actual minus fair share), one row per staff group.
        title: Figure title.
        area_label: The area's name (legend).
        comparator: Name of the comparator.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        A horizontal stacked-bar figure spec.
    """
    function = "team_chart"
    columns = ["label", "practice_per_10k", "pcn_per_10k", "benchmark_per_10k"]
    _require_columns(team, columns, function=function, frame_name="team")
    labels = [_esc(v) for v in _text_values(team, "label")]
    practice = _float_values(team, "practice_per_10k", function=function, frame_name="team")
    pcn = _float_values(team, "pcn_per_10k", function=function, frame_name="team")
    bench = _float_values(team, "benchmark_per_10k", function=function, frame_name="team")
    gap = (
        _float_values(team, "gap_fte", function=function, frame_name="team")
        if "gap_fte" in team
        else np.full(len(team), np.nan)
    )
    fig = FigureSpec()
    for values, name, colour in (
        (practice, f"{_esc(area_label)}: practice staff", NHS_BLUE),
        (pcn, f"{_esc(area_label)}: PCN-employed staff", NHS_LIGHT_BLUE),
    ):
        fig.add_trace(
            _bar(
                y=labels,
                x=np.round(values, 3),
                name=name,
                orientation="h",
                marker={"color": colour},
                customdata=np.column_stack([practice + pcn, gap]).round(2),
                hovertemplate=(
                    "%{y}: %{x:.2f} FTE per 10,000 weighted patients<br>Whole group: "
                    "%{customdata[0]:.2f}<br>Gap to fair share: %{customdata[1]:+.1f} FTE"
                    "<extra></extra>"
                ),
            )
        )
    fig.add_trace(
        _scatter(
            y=labels,
            x=np.round(bench, 3),
            mode="markers",
            name=f"{_esc(comparator)} rate",
            marker={"symbol": "diamond", "size": 12, "color": "#212B32"},
            hovertemplate=f"{_esc(comparator)}: " + "%{x:.2f}<extra></extra>",
        )
    )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(autorange="reversed", automargin=True)
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=max(320, 140 + 48 * len(labels)),
        x_title="Full-time equivalent (FTE) per 10,000 weighted patients",
    )
    return fig


def recorded_vs_expected_spec(
    gaps: pd.DataFrame,
    title: str,
    *,
    source_note: str = "",
) -> FigureSpec:
    """Recorded vs expected register per condition: ratio with 95% limits against 1.

    Args:
        gaps: One row per condition, largest gap first: ``condition``, ``ratio``,
            ``ratio_low``, ``ratio_high``, ``expected``, ``register``, ``missing_patients``.
        title: Figure title.
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        Dots with horizontal error bars, a reference line at 1 (national average recording
        for the same age, sex and deprivation), red where the upper limit is below 1.
    """
    function = "recorded_vs_expected"
    columns = ["ratio", "ratio_low", "ratio_high", "expected", "register", "missing_patients"]
    _require_columns(gaps, ["condition", *columns], function=function, frame_name="gaps")
    values = {c: _float_values(gaps, c, function=function, frame_name="gaps") for c in columns}
    labels = [_esc(c) for c in _text_values(gaps, "condition")]
    ratio, low, high = values["ratio"], values["ratio_low"], values["ratio_high"]
    colours = np.where(
        high < 1,
        COMPARISON_COLOURS["worse"],
        np.where(low > 1, COMPARISON_COLOURS["higher"], COMPARISON_COLOURS["similar"]),
    )
    fig = FigureSpec()
    fig.add_trace(
        _scatter(
            x=ratio,
            y=labels,
            mode="markers",
            name="Recorded / expected",
            marker={"color": list(colours), "size": 10, "line": {"color": NHS_GREY, "width": 1}},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": np.nan_to_num(high - ratio),
                "arrayminus": np.nan_to_num(ratio - low),
                "color": NHS_GREY,
            },
            customdata=np.column_stack(
                [low, high, values["register"], values["expected"], values["missing_patients"]]
            ).round(2),
            hovertemplate=(
                "%{y}<br>Recorded / expected: %{x:.2f} (95% CI %{customdata[0]:.2f} to "
                "%{customdata[1]:.2f})<br>On register: %{customdata[2]:,.0f}; expected "
                "%{customdata[3]:,.0f}<br>Estimated not on a register: "
                "%{customdata[4]:,.0f}<extra></extra>"
            ),
        )
    )
    fig.add_shape(
        type="line", xref="x", yref="y domain", x0=1, x1=1, y0=0, y1=1,
        line={"color": NHS_DARK_BLUE, "dash": "dash"},
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", automargin=True)
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=max(320, 28 * len(labels) + 140),
        x_title="Recorded / expected register (1 = national average recording)",
        y_title="Condition (largest estimated gap first)",
    )
    return fig


# --------------------------------------------------------------------------------------
# 9. Change over time
# --------------------------------------------------------------------------------------


def trend_chart_spec(
    series: pd.DataFrame,
    title: str,
    area_label: str,
    comparator_label: str,
    *,
    y_title: str = "",
    source_note: str = "",
) -> FigureSpec:
    """One indicator over the releases: the area (with 95% limits where known) and its comparator.

    With :func:`pophealth.trends.xmr_chart`'s columns (``mean``, ``upper_process_limit``,
    ``lower_process_limit``, ``variation_code``) it is a Making Data Count chart too: the mean and
    process limits drawn, special-cause points coloured (orange concern, blue improvement,
    purple where the indicator has no polarity), as NHS England's SPC charts do.

    Args:
        series: Columns ``period`` (sortable labels, e.g. ``2025-10``), ``value``, ``lower_ci``,
            ``upper_ci`` (may be NaN) and ``england_value`` (the comparator; may be NaN);
            optional SPC columns as above.
        title: Figure title.
        area_label: Legend name of the area.
        comparator_label: Legend name of the comparator.
        y_title: Y-axis title (indicator and unit).
        source_note: Data source note stored in ``fig.layout.meta``.

    Returns:
        A line chart; the comparator on a second axis when its scale differs (counts).
    """
    function = "trend_chart"
    _require_columns(
        series,
        ["period", "value", "lower_ci", "upper_ci", "england_value"],
        function=function,
        frame_name="series",
    )
    ordered = series.sort_values("period")
    periods = _text_values(ordered, "period")
    cols = {
        c: _float_values(ordered, c, function=function, frame_name="series")
        for c in ("value", "lower_ci", "upper_ci", "england_value")
    }
    value, lower, upper, england = (
        cols[c] for c in ("value", "lower_ci", "upper_ci", "england_value")
    )
    has_limits = np.isfinite(lower).any() and np.isfinite(upper).any()
    # one template per line; the release is the point's x where it needs no escaping
    plain_periods = all(_esc(p) == p for p in periods)

    def line_hover(values: np.ndarray, label: str, ci: list[str]) -> tuple[_HoverFields, str]:
        hover = _HoverFields(np.isfinite(values))
        period = "%{x}" if plain_periods else hover.text([_esc(p) for p in periods])
        number = hover.number("y", values)
        interval = hover.text(ci) if any(ci) else ""
        return hover, hover.template(
            f"{period}<br>{_esc(label)}: {number}{interval}<extra></extra>"
        )

    area_hover, area_template = line_hover(
        value,
        area_label,
        [
            f" (95% CI {format_number(lo)}–{format_number(hi)})" if np.isfinite(lo) else ""
            for lo, hi in zip(lower, upper, strict=True)
        ],
    )
    everything = np.ones(len(periods), dtype=bool)
    fig = FigureSpec().add_trace(
        _scatter(
            x=periods,
            y=area_hover.values["y"],
            mode="lines+markers",
            name=area_label,
            line={"color": NHS_BLUE, "width": 2.5},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": np.where(np.isfinite(upper), upper - value, np.nan),
                "arrayminus": np.where(np.isfinite(lower), value - lower, np.nan),
                "color": NHS_LIGHT_BLUE,
                "thickness": 1,
                "width": 3,
            }
            if has_limits
            else None,
            customdata=area_hover.customdata(everything),
            hovertemplate=area_template,
        )
    )
    if np.isfinite(england).any():
        # a count (e.g. list size) is on another scale from its comparator: own axis
        own_axis = np.nanmax(np.abs(england)) > 5 * max(np.nanmax(np.abs(value)), 1e-9)
        england_hover, england_template = line_hover(england, comparator_label, [""] * len(periods))
        fig.add_trace(
            _scatter(
                x=periods,
                y=england_hover.values["y"],
                mode="lines",
                name=comparator_label + (" (right axis)" if own_axis else ""),
                line={"color": NHS_GREY, "width": 2, "dash": "dash"},
                yaxis="y2" if own_axis else None,
                customdata=england_hover.customdata(everything),
                hovertemplate=england_template,
            )
        )
        if own_axis:
            fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False})
    _add_process_limits(fig, ordered, periods, value)
    fig.update_xaxes(type="category")
    _finish(
        fig,
        chart=function,
        title=title,
        source_note=source_note,
        height=360,
        x_title="Release",
        y_title=y_title or "Value",
    )
    return fig


#: Making Data Count point colours: special cause concern, improvement, neither (no polarity).
SPC_COLOURS = {"concern": "#ED8B00", "improvement": "#00A9CE", "neither": "#7C2855"}


def _add_process_limits(
    fig: FigureSpec, ordered: pd.DataFrame, periods: list[str], value: np.ndarray
) -> None:
    """Mean, process limits and special-cause points of an XmR chart, where it has them."""
    needed = {"mean", "upper_process_limit", "lower_process_limit", "variation_code"}
    if not needed <= set(ordered.columns):
        return
    mean = ordered["mean"].to_numpy(dtype=float)
    if not np.isfinite(mean).any():
        return  # too few points for limits
    upper = ordered["upper_process_limit"].to_numpy(dtype=float)
    lower = ordered["lower_process_limit"].to_numpy(dtype=float)
    line = {"color": NHS_MID_GREY, "width": 1}
    fig.add_trace(
        # mean and limits are named in the caption: the legend keeps to a third of a page
        _scatter(
            x=periods,
            y=mean,
            mode="lines",
            name="Mean",
            line=line,
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.add_trace(
        _scatter(
            x=periods + [None] + periods,
            y=np.concatenate([upper, [np.nan], lower]),
            mode="lines",
            name="Process limits",
            line={**line, "dash": "dot"},
            connectgaps=False,
            hoverinfo="skip",
            showlegend=False,
        )
    )
    codes = ordered["variation_code"].astype(str).to_numpy()
    for kind, colour in SPC_COLOURS.items():
        marked = np.char.startswith(codes.astype(str), kind)
        if marked.any():
            fig.add_trace(
                _scatter(
                    x=[p for p, m in zip(periods, marked, strict=True) if m],
                    y=value[marked],
                    mode="markers",
                    name=f"Special cause {kind}" if kind != "neither" else "Special cause",
                    marker={"color": colour, "size": 10, "line": {"color": "#FFFFFF", "width": 1}},
                    hoverinfo="skip",
                )
            )


# Public chart functions: validated plotly Figures (the *_spec builders are for batch display).
population_pyramid = _public_chart(population_pyramid_spec)
lsoa_choropleth = _public_chart(lsoa_choropleth_spec)
deprivation_deciles = _public_chart(deprivation_deciles_spec)
workforce_vs_need = _public_chart(workforce_vs_need_spec)
spine_chart = _public_chart(spine_chart_spec)
funnel_plot = _public_chart(funnel_plot_spec)
inverse_care_law = _public_chart(inverse_care_law_spec)
fair_share_bars = _public_chart(fair_share_bars_spec)
workforce_heatmap = _public_chart(workforce_heatmap_spec)
team_chart = _public_chart(team_chart_spec)
recorded_vs_expected = _public_chart(recorded_vs_expected_spec)
trend_chart = _public_chart(trend_chart_spec)


__all__ = [
    "COMPARISON_COLOURS",
    "FigureSpec",
    "COMPARISON_LABELS",
    "IMD_DECILE_COLOURS",
    "NHS_BLUE",
    "NHS_DARK_BLUE",
    "NHS_GREY",
    "PLOTLY_CONFIG",
    "PLOTLY_MIMETYPE",
    "deprivation_deciles",
    "deprivation_deciles_spec",
    "fair_share_bars",
    "fair_share_bars_spec",
    "figure_bundle",
    "figure_html_from_output",
    "figure_output",
    "figure_to_html",
    "format_number",
    "funnel_plot",
    "funnel_plot_spec",
    "GAP_COLOURSCALE",
    "team_chart",
    "team_chart_spec",
    "workforce_heatmap",
    "workforce_heatmap_spec",
    "inverse_care_law",
    "inverse_care_law_spec",
    "lsoa_choropleth",
    "lsoa_choropleth_spec",
    "population_pyramid",
    "population_pyramid_spec",
    "recorded_vs_expected",
    "recorded_vs_expected_spec",
    "show",
    "show_html",
    "spine_chart",
    "spine_chart_spec",
    "spine_scale",
    "trend_chart",
    "trend_chart_spec",
    "weighted_trend",
    "workforce_vs_need",
    "workforce_vs_need_spec",
]
