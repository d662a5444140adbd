"""HTML tables and text boxes for population-health needs profiles.

Every function is pure and returns an HTML string built from a chart-ready DataFrame; inputs are
never mutated. Every data-derived string is escaped with :func:`html.escape`. Styling comes from
CSS classes in :data:`PROFILE_CSS` (injected once per notebook with :func:`inject_css`); the
significance colours are also inlined on the value cells so they survive without the stylesheet
(a table pasted elsewhere).
Nothing references external resources (no CDN, no web fonts).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pophealth.charts import (
    COMPARISON_COLOURS,
    _is_missing,
    _normalise_comparison,
    _require_columns,
    format_number,
    show_html,
)
from pophealth.checks import escape_html
from pophealth.store import records
from pophealth.trends import MIN_TREND_POINTS

#: Text colour that keeps contrast on each comparison background.
_COMPARISON_TEXT: dict[str, str] = {
    "better": "#FFFFFF",
    "similar": "#0B0C0C",
    "worse": "#FFFFFF",
    "not compared": "#0B0C0C",
    "higher": "#FFFFFF",
    "lower": "#0B0C0C",
    "higher need": "#FFFFFF",
    "similar need": "#000000",
    "lower need": "#000000",
    "fewer than fair share": "#FFFFFF",
    "about fair share": "#000000",
    "more than fair share": "#FFFFFF",
    "not rated": "#000000",
}

_COMPARISON_WORDS: dict[str, str] = {
    "better": "Better",
    "similar": "Similar",
    "worse": "Worse",
    "higher": "Higher",
    "lower": "Lower",
    "not compared": "Not compared",
    "higher need": "Higher need",
    "similar need": "Similar need",
    "lower need": "Lower need",
    "fewer than fair share": "Fewer than fair share",
    "about fair share": "About fair share",
    "more than fair share": "More than fair share",
    "not rated": "Not rated",
}

# Ids only need to be unique within one page; the counter also separates identical tables.
_TABLE_COUNTER = itertools.count(1)

PROFILE_CSS = """
.ph-profile, .ph-table, .ph-headline, .ph-banner {
  font-family: Frutiger, Arial, Helvetica, sans-serif; color: #212B32; line-height: 1.45;
}
.jp-RenderedHTMLCommon h1, .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h3,
.ph-profile h1, .ph-profile h2, .ph-profile h3 { color: #005EB8; font-weight: 700; }
.ph-table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 14px; width: 100%; }
.ph-table caption { text-align: left; font-weight: 700; color: #003087; padding: 0.3em 0; }
.ph-table th, .ph-table td {
  border: 1px solid #D8DDE0; padding: 4px 8px; vertical-align: top; text-align: left;
}
.ph-table thead th {
  background: #005EB8; color: #FFFFFF; font-weight: 600; white-space: normal;
  overflow-wrap: anywhere;
}
.ph-table td.ph-num, .ph-table th.ph-num {
  text-align: right; font-variant-numeric: tabular-nums;
}
.ph-table td.ph-num { white-space: nowrap; }
.ph-table tbody tr:nth-child(even) { background: #F0F4F5; }
.ph-sortable thead th { cursor: pointer; user-select: none; }
.ph-sortable thead th::after { content: " \\2195"; opacity: 0.6; font-size: 0.85em; }
.ph-sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; opacity: 1; }
.ph-sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; opacity: 1; }
.ph-cmp-better { background: #00703C; color: #FFFFFF; }
.ph-cmp-similar { background: #FFDD00; color: #0B0C0C; }
.ph-cmp-worse { background: #D4351C; color: #FFFFFF; }
.ph-cmp-not-compared { background: #B1B4B6; color: #0B0C0C; }
.ph-cmp-higher { background: #003078; color: #FFFFFF; }
.ph-cmp-lower { background: #5694CA; color: #0B0C0C; }
.ph-table td { overflow-wrap: anywhere; }
/* JupyterLab right-aligns every table cell: text reads left, numbers right. */
.jp-RenderedHTMLCommon .ph-table th, .jp-RenderedHTMLCommon .ph-table td,
.ph-table th, .ph-table td { text-align: left; }
.jp-RenderedHTMLCommon .ph-table .ph-num, .ph-table .ph-num { text-align: right; }
.ph-benchmark td:first-child { min-width: 20em; }
.ph-code { overflow-wrap: anywhere; word-break: break-word; }
/* the definition text takes the width, so long catalogues stay short */
.ph-definitions { table-layout: fixed; }
.ph-definitions th:nth-child(1) { width: 12%; }
.ph-definitions th:nth-child(2) { width: 15%; }
.ph-definitions th:nth-child(3) { width: 41%; }
.ph-definitions th:nth-child(4), .ph-definitions th:nth-child(5) { width: 10%; }
.ph-definitions th:nth-child(6), .ph-definitions th:nth-child(7) { width: 5%; }
.ph-definitions th:nth-child(8) { width: 2%; }
.ph-title { margin: 0.2em 0 0.1em; font-size: 1.9em; color: #005EB8; }
.ph-basis { margin: 0 0 0.5em; color: #4C6272; }
.ph-nav, .ph-toc { font-size: 14px; margin: 0.4em 0; }
.ph-nav a, .ph-toc a { color: #005EB8; }
.ph-nav ul, .ph-toc ol { display: flex; flex-wrap: wrap; gap: 0.2em 1.2em; list-style: none;
  padding: 0; margin: 0.2em 0; }
.ph-toc ol { counter-reset: none; }
.ph-tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr));
  gap: 0.6em; margin: 0.8em 0; }
.ph-tile { border: 1px solid #D8DDE0; border-top: 4px solid #005EB8; padding: 0.5em 0.8em;
  background: #FFFFFF; }
.ph-tile .ph-tile-label { font-size: 13px; color: #4C6272; margin: 0; }
.ph-tile .ph-tile-value { font-size: 24px; font-weight: 700; margin: 0.1em 0; color: #212B32; }
.ph-tile .ph-tile-note { font-size: 13px; margin: 0; color: #212B32; }
h2.ph-section { margin: 1.2em 0 0.2em; padding-top: 0.3em; border-top: 1px solid #D8DDE0;
  color: #005EB8; }
p.ph-lead { margin: 0 0 0.5em; font-size: 15px; max-width: 75em; }
.ph-caption { margin: 0.2em 0 0.6em; font-size: 13px; color: #4C6272; }
figure.ph-chart { margin: 0; }
details.ph-details { margin: 0.4em 0; }
details.ph-details > summary { cursor: pointer; color: #005EB8; font-weight: 600; }
.ph-cmp-higher-need { background: #08519C; color: #FFFFFF; }
.ph-cmp-similar-need { background: #9ECAE1; color: #000000; }
.ph-cmp-lower-need { background: #DEEBF7; color: #000000; }
.ph-cmp-fewer-than-fair-share { background: #B35806; color: #FFFFFF; }
.ph-cmp-about-fair-share { background: #F7F7F7; color: #000000; }
.ph-cmp-more-than-fair-share { background: #542788; color: #FFFFFF; }
.ph-cmp-not-rated { background: #FFFFFF; color: #000000; }
.ph-headline {
  border-left: 6px solid #005EB8; background: #E8F1FA; padding: 0.8em 1em; margin: 0.8em 0;
  font-size: 16px;
}
.ph-headline ul { margin: 0; padding-left: 1.2em; }
.ph-banner {
  border: 3px solid #C00000; background: #FFF3F3; color: #8A0000; padding: 0.8em 1em;
  margin: 0.8em 0; font-size: 17px; font-weight: 700;
}
.ph-banner span { display: block; font-weight: 400; font-size: 14px; color: #212B32; }
.ph-code { font-family: Consolas, "Courier New", monospace; font-size: 13px; }
@media print {
  .ph-table { font-size: 11px; page-break-inside: auto; }
  .ph-table tr { page-break-inside: avoid; }
  .ph-table thead { display: table-header-group; }
  .ph-sortable thead th::after { content: ""; }
  .ph-nav, .ph-toc, .modebar-container { display: none; }
  h2.ph-section { break-before: page; border-top: none; }
  h2.ph-section.ph-short { break-before: auto; }
  h2.ph-section, p.ph-lead { break-after: avoid; }
  .ph-chart, .ph-tiles, .ph-tile { break-inside: avoid; }
  .ph-tiles { grid-template-columns: repeat(4, 1fr); }
  .ph-definitions, .ph-provenance { font-size: 8px; }
  .ph-definitions td, .ph-provenance td { padding: 2px 4px; }
  details.ph-details > summary { list-style: none; }
  .ph-cmp-better, .ph-cmp-similar, .ph-cmp-worse, .ph-cmp-not-compared, .ph-cmp-higher,
  .ph-cmp-lower, .ph-table thead th, .ph-banner, .ph-headline {
    -webkit-print-color-adjust: exact; print-color-adjust: exact;
  }
}
"""

# Vanilla JS (no CDN) sorting the table with id __ID__ when a header is clicked; numbers sort
# numerically via data-sort on each cell, blanks last.
_SORT_SCRIPT = """<script>
(function () {
  var table = document.getElementById("__ID__");
  if (!table || !table.tHead) { return; }
  var headers = table.tHead.rows[0].cells;
  function key(row, col) {
    var cell = row.cells[col];
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    var num = parseFloat(raw);
    return { blank: raw === "", num: isNaN(num) || !isFinite(raw) ? null : num, text: raw };
  }
  Array.prototype.forEach.call(headers, function (th, col) {
    th.setAttribute("tabindex", "0");
    function sortBy() {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, col), y = key(b, col);
        if (x.blank !== y.blank) { return x.blank ? 1 : -1; }
        var cmp = (x.num !== null && y.num !== null) ? x.num - y.num
          : x.text.localeCompare(y.text, undefined, { numeric: true });
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(); } });
  });
})();
</script>"""


def _esc(value: Any) -> str:
    """Escape a data-derived value for HTML text or attributes ('' for missing)."""
    return escape_html(value, quote=True)


def _sort_key(value: Any) -> str:
    """The raw value used by the sorting script ('' for missing)."""
    if _is_missing(value):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            return ""
        if number == int(number) and abs(number) < 2**53:
            return str(int(number))  # a count, exactly
        # 6 significant digits (or every digit of the whole part) order any two values a table
        # shows apart: it shows at most 2 decimals, and no more than 6 digits below a million
        whole_digits = len(str(int(abs(number))))
        return f"{number:.{max(6, whole_digits)}g}"
    return str(value)


def _as_float(value: Any) -> float:
    """Float value or NaN (non-numeric text becomes NaN)."""
    if _is_missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def format_count(value: Any) -> str:
    """Whole number with thousands separators ('–' when missing)."""
    number = _as_float(value)
    return "–" if math.isnan(number) else f"{number:,.0f}"


def format_value(value: Any, unit: str = "") -> str:
    """Indicator value: 1 dp for percentages, thousands separators ('–' when missing)."""
    return format_number(_as_float(value), unit or "")


def _table_id(prefix: str, content: str) -> str:
    """A page-unique id: content hash plus a process-wide counter."""
    digest = hashlib.sha1(content.encode("utf-8")).hexdigest()[:8]
    return f"ph-{prefix}-{digest}-{next(_TABLE_COUNTER)}"


def _cell(
    text: str, *, numeric: bool = False, sort: Any = None, classes: str = "", attrs: str = ""
) -> str:
    """A ``<td>``; ``text`` must already be escaped, ``attrs`` already safe."""
    class_names = " ".join(c for c in ("ph-num" if numeric else "", classes) if c)
    class_attr = f' class="{class_names}"' if class_names else ""
    key = _sort_key(sort) if sort is not None else None
    # the sorting script falls back to the cell's text: no attribute when they are the same
    sort_attr = f' data-sort="{_esc(key)}"' if key is not None and _esc(key) != text else ""
    return f"<td{class_attr}{sort_attr}{attrs}>{text}</td>"


def _comparison_style(comparison: str) -> str:
    """The inline colours of a cell rated ``comparison`` (its ``ph-cmp-*`` class has them too).

    Inlined so a table pasted elsewhere keeps its colours; none for "not rated", whose white
    background and black text are what a cell has without them.
    """
    if comparison == "not rated":
        return ""
    colour = COMPARISON_COLOURS[comparison]
    return f' style="background:{colour};color:{_COMPARISON_TEXT[comparison]}"'


def _header(labels: Sequence[tuple[str, bool]]) -> str:
    """``<thead>`` from (escaped label, numeric) pairs."""
    cells = "".join(
        f'<th scope="col" class="ph-num">{label}</th>'
        if numeric
        else f'<th scope="col">{label}</th>'
        for label, numeric in labels
    )
    return f"<thead><tr>{cells}</tr></thead>"


def _check_frame(frame: pd.DataFrame, required: Sequence[str], function: str, name: str) -> None:
    _require_columns(frame, required, function=function, frame_name=name)


# --------------------------------------------------------------------------------------
# 9. Benchmark table
# --------------------------------------------------------------------------------------


def position_text(record: dict) -> str:
    """Where an area stands: its fair share (supply) or its rank among peers (others)."""
    fair = _as_float(record.get("fair_share"))
    if not math.isnan(fair):
        gap = _as_float(record.get("fair_share_gap"))
        pct = _as_float(record.get("fair_share_gap_pct"))
        return f"fair share {fair:,.1f} FTE; gap {gap:+,.1f} FTE ({pct:+.0f}%)"
    rank, count = _as_float(record.get("peer_rank")), _as_float(record.get("peer_count"))
    quintile = _as_float(record.get("peer_quintile"))
    if math.isnan(rank) or math.isnan(count) or count < 2:
        return "–"
    return f"{rank:.0f} of {count:.0f} (highest = 1; quintile {quintile:.0f} of 5)"


def benchmark_table(
    rows: pd.DataFrame,
    area_label: str,
    parent_label: str,
    england_label: str,
    *,
    caption: str | None = None,
) -> str:
    """Sortable indicator table with the area value coloured by its comparison with England.

    Args:
        rows: Columns ``title, unit, value, lower_ci, upper_ci, parent_value, comparator_value,
            comparison, numerator, denominator, method``; one row per indicator; optional
            ``trend`` (the values over the releases, oldest first) adds a sparkline column.
        area_label: Column heading for the area's values.
        parent_label: Column heading for the parent's values.
        england_label: Column heading for the comparator (England) values.
        caption: Optional table caption.

    Returns:
        An HTML ``<table>`` followed by one small inline sorting ``<script>`` for that table.
    """
    function = "benchmark_table"
    required = [
        "title",
        "unit",
        "value",
        "lower_ci",
        "upper_ci",
        "parent_value",
        "comparator_value",
        "comparison",
        "numerator",
        "denominator",
        "method",
    ]
    _check_frame(rows, required, function, "rows")
    comparisons = _normalise_comparison(rows["comparison"].tolist(), function=function)
    # ratings by kind (pophealth.indicators.rate_by_kind): position among peers, fair share
    with_position = "peer_rank" in rows and "fair_share" in rows
    body_rows = []
    for record, comparison in zip(records(rows), comparisons, strict=True):
        unit = "" if _is_missing(record["unit"]) else str(record["unit"])
        lower, upper = _as_float(record["lower_ci"]), _as_float(record["upper_ci"])
        ci = _interval(lower, upper, unit)
        css = "ph-cmp-" + comparison.replace(" ", "-")
        style = _comparison_style(comparison)
        word = _COMPARISON_WORDS[comparison]
        value = _as_float(record["value"])
        cells = [
            _cell(_esc(record["title"]), sort=record["title"]),
            _cell(_esc(unit), sort=unit),
            _cell(
                _esc(format_value(value, unit)),
                numeric=True,
                sort=value,
                classes=css,
                attrs=f'{style} title="{_esc(word)}"',
            ),
            _cell(_esc(ci), numeric=True, sort=lower),
            _cell(
                _esc(format_value(record["parent_value"], unit)),
                numeric=True,
                sort=_as_float(record["parent_value"]),
            ),
            _cell(
                _esc(format_value(record["comparator_value"], unit)),
                numeric=True,
                sort=_as_float(record["comparator_value"]),
            ),
            _cell(_esc(word), sort=word, classes=css, attrs=style),
            *([_cell(_esc(position_text(record)))] if with_position else []),
            *([_cell(sparkline_svg(_trend_values(record["trend"])))] if "trend" in record else []),
            _cell(
                _esc(format_count(record["numerator"])),
                numeric=True,
                sort=_as_float(record["numerator"]),
            ),
            _cell(
                _esc(format_count(record["denominator"])),
                numeric=True,
                sort=_as_float(record["denominator"]),
            ),
            _cell(_esc(record["method"]), sort=record["method"]),
        ]
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    header = _header(
        [
            ("Indicator", False),
            ("Unit", False),
            (_esc(area_label), True),
            ("95% CI", True),
            (_esc(parent_label), True),
            (_esc(england_label), True),
            (f"Compared with {_esc(england_label)}", False),
            *([("Among peers / fair share", False)] if with_position else []),
            *([("Trend", False)] if "trend" in rows else []),
            ("Numerator", True),
            ("Denominator", True),
            ("Method", False),
        ]
    )
    body = "<tbody>" + "".join(body_rows) + "</tbody>"
    caption_html = f"<caption>{_esc(caption)}</caption>" if caption else ""
    table_id = _table_id("benchmark", header + body)
    table = (
        f'<table id="{table_id}" class="ph-table ph-sortable ph-benchmark">'
        f"{caption_html}{header}{body}</table>"
    )
    return table + _SORT_SCRIPT.replace("__ID__", table_id)


# --------------------------------------------------------------------------------------
# 10–12. Definitions, provenance, data quality
# --------------------------------------------------------------------------------------


#: Class of a profile's collapsed definitions: a run folder links its shared definitions page.
DEFINITIONS_CSS = "ph-definitions-details"


def definitions_page(catalogue_rows: pd.DataFrame, title: str = "Indicator definitions") -> str:
    """A run folder's one page of every indicator's definition (profiles link to it).

    Args:
        catalogue_rows: As :func:`definitions_table`.
        title: Page title (escaped).
    """
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title>{css_block()}</head>"
        f'<body class="ph-profile"><main><h1>{_esc(title)}</h1>'
        '<p class="ph-text">What each indicator in the profiles measures, its sources, '
        "polarity and statistic (pophealth's catalogue).</p>"
        f"{definitions_table(catalogue_rows)}</main></body></html>\n"
    )


def definitions_table(catalogue_rows: pd.DataFrame) -> str:
    """Indicator definitions (from the catalogue) as an HTML table.

    Args:
        catalogue_rows: Columns ``indicator_id, title, definition, numerator_source,
            denominator_source, polarity, statistic, unit``.

    Returns:
        An HTML ``<table>``.
    """
    columns = [
        ("indicator_id", "Id"),
        ("title", "Indicator"),
        ("definition", "Definition"),
        ("numerator_source", "Numerator source"),
        ("denominator_source", "Denominator source"),
        ("polarity", "Polarity"),
        ("statistic", "Statistic"),
        ("unit", "Unit"),
    ]
    _check_frame(catalogue_rows, [c for c, _ in columns], "definitions_table", "catalogue_rows")
    body = "".join(
        "<tr>"
        + "".join(
            _cell(f'<span class="ph-code">{_esc(record[c])}</span>')
            if c == "indicator_id"
            else _cell(_esc(record[c]))
            for c, _ in columns
        )
        + "</tr>"
        for record in records(catalogue_rows)
    )
    header = _header([(label, False) for _, label in columns])
    return f'<table class="ph-table ph-definitions">{header}<tbody>{body}</tbody></table>'


def provenance_table(sources: pd.DataFrame) -> str:
    """Source files with release, row count and a shortened SHA-256 (full value on hover).

    Args:
        sources: Columns ``source, file, release, sha256, rows``.

    Returns:
        An HTML ``<table>``.
    """
    _check_frame(
        sources, ["source", "file", "release", "sha256", "rows"], "provenance_table", "sources"
    )
    body_rows = []
    for record in records(sources):
        digest = "" if _is_missing(record["sha256"]) else str(record["sha256"])
        short = digest[:12] + ("…" if len(digest) > 12 else "")
        body_rows.append(
            "<tr>"
            + _cell(_esc(record["source"]))
            + _cell(f'<span class="ph-code">{_esc(record["file"])}</span>')
            + _cell(_esc(record["release"]))
            + _cell(f'<code class="ph-code" title="{_esc(digest)}">{_esc(short)}</code>')
            + _cell(_esc(format_count(record["rows"])), numeric=True)
            + "</tr>"
        )
    header = _header(
        [("Source", False), ("File", False), ("Release", False), ("SHA-256", False), ("Rows", True)]
    )
    return (
        f'<table class="ph-table ph-provenance">{header}<tbody>{"".join(body_rows)}</tbody></table>'
    )


def data_quality_table(coverage: pd.DataFrame) -> str:
    """How registered patients were matched to LSOAs (coverage categories).

    Args:
        coverage: Columns ``category`` (e.g. "Matched to an LSOA", "CLOSED (invalid
            postcode)"), ``patients``, ``pct``.

    Returns:
        An HTML ``<table>``.
    """
    _check_frame(coverage, ["category", "patients", "pct"], "data_quality_table", "coverage")
    body = "".join(
        "<tr>"
        + _cell(_esc(record["category"]))
        + _cell(_esc(format_count(record["patients"])), numeric=True)
        + _cell(_esc(format_value(record["pct"], "%") + "%"), numeric=True)
        + "</tr>"
        for record in records(coverage)
    )
    header = _header([("Category", False), ("Patients", True), ("Percentage of patients", True)])
    return f'<table class="ph-table ph-data-quality">{header}<tbody>{body}</tbody></table>'


def _label_and_numbers_rows(
    frame: pd.DataFrame, columns: Sequence[str], formatter, *, text_columns: int = 1
) -> str:
    """Table body rows: the first ``text_columns`` columns as text, the rest as numbers."""
    return "".join(
        "<tr>"
        + "".join(_cell(_esc(record[c])) for c in columns[:text_columns])
        + "".join(_cell(_esc(formatter(record[c])), numeric=True) for c in columns[text_columns:])
        + "</tr>"
        for record in records(frame)
    )


def team_table(team: pd.DataFrame, comparator: str) -> str:
    """The team by staff group: FTE, rates, fair share, gap and skill mix (issue13).

    Args:
        team: Columns ``label, actual_fte, fte_per_10k, pcn_share_pct, benchmark_per_10k,
            fair_share_fte, gap_fte, skill_mix_pct, england_mix_pct``.
        comparator: Name of the benchmark.

    Returns:
        An HTML ``<table>``.
    """
    columns = ["label", "actual_fte", "fte_per_10k", "pcn_share_pct", "benchmark_per_10k"]
    columns += ["fair_share_fte", "gap_fte", "skill_mix_pct", "england_mix_pct"]
    _check_frame(team, columns, "team_table", "team")
    body = _label_and_numbers_rows(team, columns, format_value)
    comp = _esc(comparator)
    header = _header(
        [
            ("Staff group", False),
            ("FTE", True),
            ("FTE per 10,000 weighted patients", True),
            ("PCN-employed share (%)", True),
            (f"{comp} FTE per 10,000 weighted patients", True),
            (f"Fair share FTE at {comp} rate", True),
            ("Gap (FTE; negative = short)", True),
            ("Share of team FTE (%)", True),
            (f"{comp} share of team FTE (%)", True),
        ]
    )
    return f'<table class="ph-table ph-team">{header}<tbody>{body}</tbody></table>'


def roles_table(roles: pd.DataFrame, area_label: str, comparator: str) -> str:
    """Practice staff by role: FTE and FTE per 10,000 registered patients (issue13).

    Args:
        roles: Columns ``group, role, fte, fte_per_10k, comparator_per_10k``.
        area_label: The area's name.
        comparator: Name of the benchmark.

    Returns:
        An HTML ``<table>``.
    """
    columns = ["group", "role", "fte", "fte_per_10k", "comparator_per_10k"]
    _check_frame(roles, columns, "roles_table", "roles")
    body = _label_and_numbers_rows(roles, columns, format_value, text_columns=2)
    header = _header(
        [
            ("Staff group", False),
            ("Role", False),
            (f"{_esc(area_label)} FTE", True),
            ("FTE per 10,000 registered patients", True),
            (f"{_esc(comparator)} FTE per 10,000", True),
        ]
    )
    return f'<table class="ph-table ph-roles">{header}<tbody>{body}</tbody></table>'


def workforce_quality_table(quality: pd.DataFrame) -> str:
    """Practices and neighbourhoods whose workforce figures are missing or estimated (issue13).

    Args:
        quality: Columns ``issue, practices, registered_patients, neighbourhoods``.

    Returns:
        An HTML ``<table>``.
    """
    columns = ["issue", "practices", "registered_patients", "neighbourhoods"]
    _check_frame(quality, columns, "workforce_quality_table", "quality")
    body = _label_and_numbers_rows(quality, columns, format_count)
    header = _header(
        [
            ("Workforce data", False),
            ("Practices (or PCNs)", True),
            ("Registered patients", True),
            ("Neighbourhoods affected", True),
        ]
    )
    return f'<table class="ph-table ph-workforce-quality">{header}<tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------------------
# 13. Text boxes and CSS
# --------------------------------------------------------------------------------------


def styled_headline(text: str | Sequence[str]) -> str:
    """A short plain-English summary box.

    Args:
        text: One sentence or paragraph, or a list of points (shown as bullets).

    Returns:
        An HTML ``<div class="ph-headline">`` with the text escaped.
    """
    if isinstance(text, str):
        inner = f"<p style='margin:0'>{_esc(text)}</p>"
    else:
        inner = "<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in text) + "</ul>"
    return f'<div class="ph-headline" role="note">{inner}</div>'


def profile_heading(
    *,
    level: str,
    area_name: str,
    area_code: str,
    area_type: str,
    basis: str,
    parent_name: str | None,
    comparator: str,
) -> str:
    """The profile's ``<h1>`` and identity line, every data text escaped.

    Names and codes come from downloaded files or an analyst's YAML, so they are escaped here,
    where they become HTML, rather than rendered as Markdown (which passes raw HTML through).

    Args:
        level: "Neighbourhood", "Place" or "System".
        area_name: The area's name.
        area_code: The area's code.
        area_type: E.g. "pcn", "lad".
        basis: "registered" or "resident".
        parent_name: The parent area's name, or None.
        comparator: The comparator's name.

    Returns:
        An HTML fragment: ``<h1>`` plus one ``<p>``.
    """
    parent = (
        f" · part of {_esc(parent_name)}" if parent_name and not _is_missing(parent_name) else ""
    )
    return (
        f'<h1 class="ph-title">{_esc(level)} needs profile: {_esc(area_name)}</h1>'
        f'<p class="ph-identity"><strong>{_esc(area_code)}</strong> · {_esc(area_type.upper())}'
        f" · {_esc(basis)} population{parent} · compared with {_esc(comparator)}</p>"
    )


def text_block(text: str | Sequence[str], *, italic: bool = False) -> str:
    """A paragraph (or a bulleted list, for a sequence) of plain text, escaped.

    Args:
        text: One paragraph, or a list of points.
        italic: Show a single paragraph in italics (for "not shown" messages).

    Returns:
        An HTML ``<p>`` or ``<ul>``.
    """
    if isinstance(text, str):
        inner = f"<em>{_esc(text)}</em>" if italic else _esc(text)
        return f'<p class="ph-text">{inner}</p>'
    return '<ul class="ph-notes">' + "".join(f"<li>{_esc(item)}</li>" for item in text) + "</ul>"


def subheading(text: str) -> str:
    """A sub-heading inside a section (escaped), e.g. "What changed since the last release"."""
    return f'<h3 class="ph-subheading">{_esc(text)}</h3>'


def findings_list(findings: Sequence[dict], *, empty: str) -> str:
    """A bulleted list of findings' ``text`` (escaped), or ``empty`` when there are none."""
    if not findings:
        return f'<p class="ph-findings-empty">{_esc(empty)}</p>'
    items = "".join(f"<li>{_esc(f['text'])}</li>" for f in findings)
    return f'<ul class="ph-findings">{items}</ul>'


def synthetic_banner(
    detail: str = "Numbers, names and maps in this profile are generated for demonstration and "
    "must not be used for decisions.",
) -> str:
    """A prominent banner saying the profile uses synthetic demonstration data.

    Args:
        detail: The smaller explanatory sentence under the headline.

    Returns:
        An HTML ``<div class="ph-banner">`` (inline styles too, so it shows without the CSS).
    """
    return (
        '<div class="ph-banner ph-synthetic" role="alert" style="border:3px solid #C00000;'
        'background:#FFF3F3;color:#8A0000;padding:0.8em 1em;font-weight:700;font-size:17px">'
        "SYNTHETIC DEMONSTRATION DATA – not real patients or practices"
        f'<span style="display:block;font-weight:400;font-size:14px;color:#212B32">'
        f"{_esc(detail)}</span></div>"
    )


# --------------------------------------------------------------------------------------
# 14. Page furniture: title, links, contents, key figures, section openings, collapsed detail
# --------------------------------------------------------------------------------------


def page_title(title: str, basis_line: str) -> str:
    """The profile's ``<h1>`` and the line under it (code, type, basis, comparator).

    Args:
        title: The page title, e.g. "Neighbourhood needs profile: X PCN".
        basis_line: One line naming the area's code, type, population basis and comparator.

    Returns:
        HTML with both texts escaped.
    """
    return f'<h1 class="ph-title">{_esc(title)}</h1><p class="ph-basis">{_esc(basis_line)}</p>'


def link_list(links: Sequence[tuple[str, str]], label: str) -> str:
    """A ``<nav>`` of links (index, parent, child areas, downloads).

    Args:
        links: ``(text, href)`` pairs; both are escaped (hrefs are relative file names).
        label: The navigation landmark's accessible name, e.g. "Related profiles".

    Returns:
        ``<nav class="ph-nav">`` HTML, or ``""`` when there is no link.
    """
    if not links:
        return ""
    items = "".join(f'<li><a href="{_esc(href)}">{_esc(text)}</a></li>' for text, href in links)
    return f'<nav class="ph-nav" aria-label="{_esc(label)}"><ul>{items}</ul></nav>'


def contents(sections: Sequence[tuple[str, str]]) -> str:
    """The table of contents: one link per section anchor.

    Args:
        sections: ``(anchor id, heading)`` pairs in page order.

    Returns:
        ``<nav class="ph-toc">`` HTML.
    """
    items = "".join(
        f'<li><a href="#{_esc(anchor)}">{_esc(text)}</a></li>' for anchor, text in sections
    )
    return (
        f'<nav class="ph-toc" aria-label="Contents"><strong>Contents</strong><ol>{items}</ol></nav>'
    )


def key_figure_tiles(tiles: Sequence[tuple[str, str, str]]) -> str:
    """A row of key-figure tiles.

    Args:
        tiles: ``(label, value, note)`` triples, already formatted (all escaped here).

    Returns:
        ``<div class="ph-tiles">`` HTML, one ``<section>`` per tile.
    """
    cells = "".join(
        f'<div class="ph-tile" role="listitem"><p class="ph-tile-label">{_esc(label)}</p>'
        f'<p class="ph-tile-value">{_esc(value)}</p><p class="ph-tile-note">{_esc(note)}</p></div>'
        for label, value, note in tiles
    )
    return f'<div class="ph-tiles" role="list" aria-label="Key figures">{cells}</div>'


def section_opening(
    anchor: str, heading: str, lead: str, *, short: bool = False, pair: bool = False
) -> str:
    """A section's ``<h2>`` (the contents' anchor) and its one-sentence summary.

    Args:
        anchor: The heading's id.
        heading: Section heading.
        lead: One sentence saying what the section shows.
        short: A text-only section: printed without a page break before it.
        pair: A short section laid out beside its paired neighbour on a wide screen.

    Returns:
        HTML with every text escaped.
    """
    css = "ph-section ph-short" if short else "ph-section"
    css += " ph-pair" if pair else ""
    return (
        f'<h2 class="{css}" id="{_esc(anchor)}">{_esc(heading)}</h2>'
        f'<p class="ph-lead">{_esc(lead)}</p>'
    )


def bullet_list(items: Sequence[str]) -> str:
    """A ``<ul>`` of escaped text items (notes)."""
    return '<ul class="ph-notes">' + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>"


def collapsible(summary: str, body_html: str, css: str = "") -> str:
    """Wrap detail (definitions, provenance) in a closed ``<details>`` element.

    Args:
        summary: The always-visible summary text (escaped).
        body_html: Inner HTML, already built by a table function (not escaped again).
        css: Another class for the element (e.g. one the runner finds it by).

    Returns:
        ``<details class="ph-details">`` HTML.
    """
    classes = f"ph-details {_esc(css)}".strip()
    return f'<details class="{classes}"><summary>{_esc(summary)}</summary>{body_html}</details>'


def register_table(registers: pd.DataFrame, comparator_label: str) -> str:
    """Long-term conditions, one row per QOF register: recorded prevalence, recorded/expected.

    Args:
        registers: :func:`pophealth.prevalence.ltc_table` columns ``condition, prevalence,
            prevalence_low, prevalence_high, england_prevalence, ratio, ratio_low, ratio_high,
            missing_patients, comparison`` (the recorded-vs-expected comparison).
        comparator_label: Heading for the comparator's prevalence (e.g. "England").

    Returns:
        An HTML ``<table>`` with formatted numbers, the ratio coloured by its comparison.
    """
    columns = [
        "condition", "prevalence", "prevalence_low", "prevalence_high", "england_prevalence",
        "ratio", "ratio_low", "ratio_high", "missing_patients", "comparison",
    ]  # fmt: skip
    _check_frame(registers, columns, "register_table", "registers")
    comparisons = _normalise_comparison(registers["comparison"].tolist(), function="register_table")
    body = []
    for record, comparison in zip(records(registers), comparisons, strict=True):
        style = f'{_comparison_style(comparison)} title="{_esc(_COMPARISON_WORDS[comparison])}"'
        ratio = _as_float(record["ratio"])
        body.append(
            "<tr>"
            + _cell(_esc(record["condition"]))
            + _cell(_esc(format_value(record["prevalence"], "%")), numeric=True)
            + _cell(
                _esc(_interval(record["prevalence_low"], record["prevalence_high"], "%")),
                numeric=True,
            )  # fmt: skip
            + _cell(_esc(format_value(record["england_prevalence"], "%")), numeric=True)
            + _cell(
                _esc("–" if math.isnan(ratio) else f"{ratio:.2f}"),
                numeric=True,
                classes="ph-cmp-" + comparison.replace(" ", "-"),
                attrs=style,
            )
            + _cell(
                _esc(_interval(record["ratio_low"], record["ratio_high"], "ratio")), numeric=True
            )  # fmt: skip
            + _cell(_esc(format_count(record["missing_patients"])), numeric=True)
            + "</tr>"
        )
    header = _header(
        [
            ("Condition (register)", False),
            ("Recorded prevalence (%)", True),
            ("95% CI", True),
            (f"{_esc(comparator_label)} (%)", True),
            ("Recorded / expected", True),
            ("95% CI", True),
            ("Estimated not on the register", True),
        ]
    )
    return f'<table class="ph-table ph-registers">{header}<tbody>{"".join(body)}</tbody></table>'


def _interval(low: Any, high: Any, unit: str) -> str:
    """'low–high' with the unit's formatting (two decimals for ratios), '–' when missing."""
    low, high = _as_float(low), _as_float(high)
    if math.isnan(low) or math.isnan(high):
        return "–"
    if unit == "ratio":
        return f"{low:.2f}–{high:.2f}"
    return f"{format_value(low, unit)}–{format_value(high, unit)}"


def basis_table(frame: pd.DataFrame) -> str:
    """Registered and resident values side by side (system profiles).

    Args:
        frame: Columns ``title, unit`` and one column per basis (``registered``, ``resident``).

    Returns:
        An HTML ``<table>`` with formatted numbers and no internal column names.
    """
    _check_frame(frame, ["title", "unit"], "basis_table", "frame")
    bases = [c for c in ("registered", "resident") if c in frame.columns]
    labels = {"registered": "Registered patients basis", "resident": "Resident basis"}
    header = _header([("Indicator", False), ("Unit", False)] + [(labels[b], True) for b in bases])
    body = "".join(
        "<tr>"
        + _cell(_esc(record["title"]))
        + _cell(_esc(record["unit"]))
        + "".join(
            _cell(_esc(format_value(record[b], str(record["unit"] or ""))), numeric=True)
            for b in bases
        )
        + "</tr>"
        for record in records(frame)
    )
    return f'<table class="ph-table ph-basis-table">{header}<tbody>{body}</tbody></table>'


def css_block() -> str:
    """The ``<style>`` element holding :data:`PROFILE_CSS`."""
    return f'<style id="ph-profile-css">{PROFILE_CSS}</style>'


def inject_css() -> None:
    """Display :data:`PROFILE_CSS` once at the top of a notebook."""
    show_html(css_block())


# --------------------------------------------------------------------------------------
# 14. Change over time and similar areas
# --------------------------------------------------------------------------------------


def _plain_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]], css: str) -> str:
    """A sortable-looking plain table; columns are (column, label, format: text|value|count)."""
    body = []
    for record in records(frame):
        cells = []
        for column, _, kind in columns:
            value = record.get(column)
            if kind == "text":
                cells.append(_cell(_esc(value)))
            else:
                unit = record.get("unit", "") if kind == "value" else ""
                text = format_count(value) if kind == "count" else format_value(value, unit)
                cells.append(_cell(_esc(text), numeric=True))  # not sortable: no sort keys
        body.append("<tr>" + "".join(cells) + "</tr>")
    header = _header([(_esc(label), kind != "text") for _, label, kind in columns])
    return f'<table class="ph-table {css}">{header}<tbody>{"".join(body)}</tbody></table>'


def similar_areas_table(comparison: pd.DataFrame, area_label: str) -> str:
    """Each indicator against the area's similar areas: peers' average, range and position.

    Args:
        comparison: Columns ``title, unit, value, peer_mean, peer_min, peer_max, position``
            (from :func:`pophealth.peers.similar_area_comparison` plus catalogue titles).
        area_label: The area's name (column heading).

    Returns:
        An HTML ``<table>``.
    """
    columns = [
        ("title", "Indicator", "text"),
        ("value", area_label, "value"),
        ("peer_mean", "Similar areas' average", "value"),
        ("peer_min", "Lowest", "value"),
        ("peer_max", "Highest", "value"),
        ("position", "Position among similar areas", "text"),
    ]
    _check_frame(comparison, [c for c, _, _ in columns], "similar_areas_table", "comparison")
    return _plain_table(comparison, columns, "ph-similar")


def peer_list_table(peer_list: pd.DataFrame) -> str:
    """The similar areas, nearest first.

    Args:
        peer_list: Columns ``rank, peer_code, peer_name, peer_system, distance``.

    Returns:
        An HTML ``<table>``.
    """
    columns = [
        ("rank", "Rank", "count"),
        ("peer_code", "Code", "text"),
        ("peer_name", "Name", "text"),
        ("peer_system", "System", "text"),
        ("distance", "Distance (z-score units)", "value"),
    ]
    _check_frame(peer_list, [c for c, _, _ in columns], "peer_list_table", "peer_list")
    return _plain_table(peer_list, columns, "ph-peers")


def _trend_values(value: Any) -> list[float]:
    """A row's trend values (a list, or missing for an indicator without history)."""
    if isinstance(value, list | tuple | np.ndarray):
        return [float(v) for v in value]
    return []


def sparkline_svg(values: Sequence[float], *, width: int = 90, height: int = 22) -> str:
    """A small inline SVG line of a series (oldest left), latest point marked; '' if < 2 points.

    Only numbers go into the SVG, so nothing from the data needs escaping.
    """
    numbers = [float(v) for v in values if not _is_missing(v) and math.isfinite(float(v))]
    if len(numbers) < 2:
        return ""
    low, high = min(numbers), max(numbers)
    span = (high - low) or 1.0
    step = (width - 6) / (len(numbers) - 1)
    points = [
        (3 + i * step, height - 3 - (v - low) / span * (height - 6)) for i, v in enumerate(numbers)
    ]
    # whole pixels are as sharp as a 90 x 22 line can be drawn, in fewer bytes
    path = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
    last_x, last_y = points[-1]
    return (
        f'<svg class="ph-spark" width="{width}" height="{height}" role="img" '
        f'aria-label="trend of {len(numbers)} points from {low:g} to {high:g}">'
        f'<polyline fill="none" stroke="#005EB8" stroke-width="1.5" points="{path}"/>'
        f'<circle cx="{last_x:.0f}" cy="{last_y:.0f}" r="2.5" fill="#003087"/></svg>'
    )


def trend_table(summary: pd.DataFrame, comparator_label: str) -> str:
    """Each indicator's change over time: sparkline, first and latest value, direction in words.

    Args:
        summary: ``trend_frames(...)["summary"]``: ``title, unit, values, first_period,
            latest_period, direction, england_direction`` (and ``period_label``, e.g.
            "QOF 2023-24 to 2024-25", when given).
        comparator_label: Name of the comparator (e.g. England).

    Returns:
        An HTML ``<table>``.
    """
    required = ["title", "unit", "values", "first_period", "latest_period", "direction"]
    _check_frame(summary, [*required, "england_direction"], "trend_table", "summary")
    body = []
    for record in records(summary):
        values = list(record["values"])
        periods = record.get("period_label") or (
            f"{record['first_period']} to {record['latest_period']}"
        )
        body.append(
            "<tr>"
            + _cell(_esc(record["title"]))
            # a line needs three points to show a trend; two values are in First and Latest
            + _cell(sparkline_svg(values) if len(values) >= MIN_TREND_POINTS else "")
            + _cell(_esc(periods))
            + _cell(_esc(format_value(values[0], record["unit"])), numeric=True)
            + _cell(_esc(format_value(values[-1], record["unit"])), numeric=True)
            + _cell(_esc(record["direction"]))
            + _cell(_esc(record["england_direction"]))
            + "</tr>"
        )
    header = _header(
        [
            ("Indicator", False),
            ("Trend", False),
            ("Periods", False),
            ("First", True),
            ("Latest", True),
            ("Change over time", False),
            (_esc(f"{comparator_label}: change over time"), False),
        ]
    )
    return f'<table class="ph-table ph-trends">{header}<tbody>{"".join(body)}</tbody></table>'


def changes_table(changes: pd.DataFrame) -> str:
    """What changed since the last release: ``what, unit, previous, latest, change``."""
    columns = [
        ("what", "Measure", "text"),
        ("previous", "Previous release", "value"),
        ("latest", "Latest release", "value"),
        ("change", "Change", "value"),
    ]
    _check_frame(changes, [c for c, _, _ in columns], "changes_table", "changes")
    return _plain_table(changes, columns, "ph-changes")


def membership_changes_table(changes: pd.DataFrame) -> str:
    """Practice membership changes over the history: ``practice_code, change, periods, detail``."""
    columns = [
        ("practice_code", "Practice", "text"),
        ("change", "Change", "text"),
        ("periods", "Releases affected", "text"),
        ("detail", "How the history counts it", "text"),
    ]
    _check_frame(changes, [c for c, _, _ in columns], "membership_changes_table", "changes")
    return _plain_table(changes, columns, "ph-membership")


__all__ = [
    "PROFILE_CSS",
    "basis_table",
    "bullet_list",
    "benchmark_table",
    "collapsible",
    "contents",
    "key_figure_tiles",
    "link_list",
    "page_title",
    "section_opening",
    "changes_table",
    "css_block",
    "data_quality_table",
    "definitions_table",
    "format_count",
    "format_value",
    "inject_css",
    "membership_changes_table",
    "peer_list_table",
    "provenance_table",
    "register_table",
    "similar_areas_table",
    "sparkline_svg",
    "styled_headline",
    "synthetic_banner",
    "trend_table",
]
