"""Tests for pophealth.charts and pophealth.tables (small hand-made frames + one browser run)."""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import plotly.graph_objects as go
import pytest
from browser_helpers import render_dom, require_chromium

from pophealth import charts, tables

BANDS = ["0-4", "5-9", "10-14", "15-19", "20-24", "90-94", "95+"]


# --------------------------------------------------------------------------------------
# Fixtures (small hand-made chart-ready frames)
# --------------------------------------------------------------------------------------


@pytest.fixture
def age_sex() -> pd.DataFrame:
    rows = []
    # Deliberately shuffled so ordering must come from the band start ages.
    for k, band in enumerate(["95+", "10-14", "0-4", "90-94", "5-9", "20-24", "15-19"]):
        for sex, offset in (("male", 0.1), ("female", 0.2)):
            rows.append(
                {
                    "age_band": band,
                    "sex": sex,
                    "area_pct": 1.0 + k / 10 + offset,
                    "parent_pct": 1.5 + offset,
                    "england_pct": 2.0 + offset,
                }
            )
    frame = pd.DataFrame(rows)
    frame.loc[0, "parent_pct"] = np.nan
    return frame


def _square(x0: float, y0: float, size: float = 0.0123456789) -> list[list[float]]:
    # RFC 7946 order (anticlockwise exterior ring).
    return [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]


@pytest.fixture
def geojson() -> dict:
    features = []
    for i in range(3):
        features.append(
            {
                "type": "Feature",
                "properties": {"lsoa21_code": f"E0100000{i}", "name": "long name to drop"},
                "geometry": {"type": "Polygon", "coordinates": [_square(-1.5 + 0.02 * i, 53.4)]},
            }
        )
    features.append(
        {
            "type": "Feature",
            "properties": {"lsoa21_code": "E01999999"},
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [[_square(-1.0, 53.0)], [_square(-0.9, 53.0)]],
            },
        }
    )
    return {"type": "FeatureCollection", "features": features}


@pytest.fixture
def lsoa_values() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lsoa21_code": ["E01000000", "E01000001", "E01000002"],
            "imd_decile": [1, 10, np.nan],
            "imd_score": [55.123, 3.2, np.nan],
            "patients": [1234, 56, 7],
        }
    )


@pytest.fixture
def decile_shares() -> pd.DataFrame:
    area = np.array([20, 15, 12, 10, 9, 8, 8, 7, 6, 5], dtype=float)
    return pd.DataFrame(
        {
            "imd_decile": list(range(10, 0, -1)),  # reversed on purpose
            "area_pct": area[::-1],
            "parent_pct": np.full(10, 10.0),
            "england_pct": np.full(10, 10.0),
        }
    )


@pytest.fixture
def practices() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "practice_code": ["A1", "A2", "B1", "B2", "B3", "B4"],
            "practice_name": ["Alpha <b>", "Beta", "Gamma", "Delta", "Eps", "Zeta"],
            "imd_score": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
            "gp_fte_per_10k_weighted": [7.0, 6.0, 6.5, 5.0, 4.0, np.nan],
            "registered_patients": [20000, 5000, 8000, 3000, 12000, 9000],
            "in_area": [True, True, False, False, False, False],
        }
    )


@pytest.fixture
def spine_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "indicator_id": ["over65", "smoking", "depression", "missing"],
            "title": ["Aged 65 and over", "Smoking prevalence", "Depression", "No value here"],
            "unit": ["%", "%", "%", "per 1,000"],
            "value": [18.0, 20.0, 12.0, np.nan],
            "lower_ci": [17.0, 19.0, 11.0, np.nan],
            "upper_ci": [19.0, 21.0, 13.0, np.nan],
            "comparator_value": [18.0, 14.0, 12.5, 5.0],
            "peer_min": [10.0, 8.0, 6.0, 1.0],
            "peer_q25": [15.0, 12.0, 10.0, 3.0],
            "peer_q75": [21.0, 16.0, 14.0, 7.0],
            "peer_max": [27.0, 26.0, 20.0, 9.0],
            "comparison": ["similar", "Worse", "better", "not compared"],
            "polarity": ["No judgement", "RAG - Low is good", "RAG - Low is good", "High is good"],
        }
    )


@pytest.fixture
def funnel_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    denominators = np.array([100, 400, 1600, 6400, 25600], dtype=float)
    se = np.sqrt(0.2 * 0.8 / denominators) * 100
    limits = pd.DataFrame(
        {
            "denominator": denominators[::-1],  # unsorted on purpose
            "lower_95": (20 - 1.96 * se)[::-1],
            "upper_95": (20 + 1.96 * se)[::-1],
            "lower_99_8": (20 - 3.09 * se)[::-1],
            "upper_99_8": (20 + 3.09 * se)[::-1],
        }
    )
    points = pd.DataFrame(
        {
            "area_code": ["P1", "P2", "P3"],
            "area_name": ["North PCN", "South PCN", "East PCN"],
            "denominator": [500.0, 3000.0, 20000.0],
            "value": [21.0, 30.0, 19.5],
        }
    )
    return points, limits


@pytest.fixture
def quintiles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "quintile": [5, 4, 3, 2, 1],
            "value": [6.4, 6.2, 5.9, 5.5, 5.1],
            "lower_ci": [6.1, 5.9, 5.6, 5.2, 4.8],
            "upper_ci": [6.7, 6.5, 6.2, 5.8, 5.4],
            "weighted_patients": [8e5, 9e5, 1e6, 1.1e6, 1.2e6],
        }
    )


@pytest.fixture
def fair_share() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "benchmark": ["System rate", "England rate"],
            "actual_fte": [40.2, 40.2],
            "fair_share_fte": [44.0, 39.0],
            "gap_fte": [-3.8, 1.2],
        }
    )


@pytest.fixture
def benchmark_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": ["Smoking <script>alert(1)</script>", "Registered patients", "Depression"],
            "unit": ["%", "count", "%"],
            "value": [20.04, 123456.0, np.nan],
            "lower_ci": [19.0, np.nan, np.nan],
            "upper_ci": [21.0, np.nan, np.nan],
            "parent_value": [15.0, 2_000_000.0, 12.0],
            "comparator_value": [14.0, 63_000_000.0, 12.5],
            "comparison": ["worse", "not compared", "better"],
            "numerator": [2004, 123456, np.nan],
            "denominator": [10000, 123456, 5000],
            "method": ["Wilson", "Count", "Wilson"],
        }
    )


@pytest.fixture
def register_gaps():
    return pd.DataFrame(
        {
            "condition": ["Hypertension", "Asthma", "Dementia"],
            "ratio": [0.82, 1.04, np.nan],
            "ratio_low": [0.79, 1.01, np.nan],
            "ratio_high": [0.86, 1.08, np.nan],
            "expected": [1200.0, 640.0, np.nan],
            "register": [984.0, 666.0, 31.0],
            "missing_patients": [216.0, -26.0, np.nan],
        }
    )


def _all_figures(
    age_sex,
    geojson,
    lsoa_values,
    decile_shares,
    practices,
    spine_rows,
    funnel_frames,
    quintiles,
    fair_share,
    register_gaps,
    suffix="",
):
    points, limits = funnel_frames
    note = "Source: test note"
    return [
        getattr(charts, "population_pyramid" + suffix)(
            age_sex, "Pyramid", "Test PCN", source_note=note
        ),
        getattr(charts, "lsoa_choropleth" + suffix)(geojson, lsoa_values, "Map", source_note=note),
        getattr(charts, "deprivation_deciles" + suffix)(decile_shares, "Deciles", source_note=note),
        getattr(charts, "workforce_vs_need" + suffix)(
            practices, "Workforce", "Test PCN", source_note=note
        ),
        getattr(charts, "spine_chart" + suffix)(spine_rows, "Spine", source_note=note),
        getattr(charts, "funnel_plot" + suffix)(
            points, limits, 20.0, "Funnel", "P2", "Percentage (%)", source_note=note
        ),
        getattr(charts, "inverse_care_law" + suffix)(
            quintiles, "SII text", "Inverse care", source_note=note
        ),
        getattr(charts, "fair_share_bars" + suffix)(fair_share, "Fair share", source_note=note),
        getattr(charts, "recorded_vs_expected" + suffix)(
            register_gaps, "Recorded vs expected", source_note=note
        ),
    ]


# --------------------------------------------------------------------------------------
# Common properties of every figure
# --------------------------------------------------------------------------------------


@pytest.fixture
def chart_inputs(request):
    """The inputs of :func:`_all_figures`, from the fixtures of the same names."""
    names = list(inspect.signature(_all_figures).parameters)[:-1]  # all but suffix
    return [request.getfixturevalue(name) for name in names]


def test_every_figure_has_title_axis_titles_hover_and_meta(chart_inputs):
    frames = []
    for value in chart_inputs:
        frames += list(value) if isinstance(value, tuple) else [value]
    geojson = next(v for v in frames if isinstance(v, dict))
    frames = [v for v in frames if isinstance(v, pd.DataFrame)]
    assert len(frames) == 10  # every DataFrame input, the funnel's two included
    before = [f.copy(deep=True) for f in frames]
    geojson_before = copy.deepcopy(geojson)
    figures = _all_figures(*chart_inputs)
    for frame, original in zip(frames, before, strict=True):
        pd.testing.assert_frame_equal(frame, original)  # inputs never mutated
    assert geojson == geojson_before
    for fig in figures:
        name = fig.layout.meta["chart"]
        assert fig.layout.title.text, name
        assert fig.layout.meta["source_note"] == "Source: test note", name
        assert fig.layout.height and fig.layout.height >= 300, name
        if name != "lsoa_choropleth":
            assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text, name
        for trace in fig.data:
            # every trace has hover text, or skips hover so the trace under it shows its own
            assert trace.hovertemplate or trace.hoverinfo == "skip", (name, trace.name)
        assert any(trace.hovertemplate for trace in fig.data), name
        # Light: no figure here should carry a big template or data payload.
        assert len(fig.to_json()) < 40_000, name


def test_every_spec_draws_the_same_figure_as_its_validated_figure(chart_inputs):
    figures = _all_figures(*chart_inputs)
    specs = _all_figures(*chart_inputs, suffix="_spec")
    assert len(specs) == 9
    for fig, spec in zip(figures, specs, strict=True):
        assert isinstance(spec, charts.FigureSpec)
        from_spec = charts.figure_bundle(spec)
        from_figure = charts.figure_bundle(fig)
        name = fig.layout.meta["chart"]
        assert from_spec["text/plain"] == from_figure["text/plain"], name
        mime = charts.PLOTLY_MIMETYPE
        assert _decode_typed_arrays(from_spec[mime]) == _decode_typed_arrays(from_figure[mime]), (
            name
        )
        assert ("PlotlyGeoAssets" in from_spec["text/html"]) == (name == "lsoa_choropleth")


def test_missing_column_error_names_column_and_suggests(spine_rows):
    renamed = spine_rows.rename(columns={"peer_q25": "peer_q_25"})
    with pytest.raises(ValueError, match=r"peer_q25.*did you mean 'peer_q_25'"):
        charts.spine_chart(renamed, "Spine")


def test_non_numeric_values_are_rejected(quintiles):
    bad = quintiles.astype({"value": object})
    bad.loc[0, "value"] = "n/a"
    with pytest.raises(ValueError, match="non-numeric"):
        charts.inverse_care_law(bad, "SII", "t")


# --------------------------------------------------------------------------------------
# 1. Pyramid
# --------------------------------------------------------------------------------------


def test_population_pyramid_males_left_and_outlines(age_sex):
    fig = charts.population_pyramid(age_sex, "Pyramid", "Test PCN", "Sheffield", "England")
    types = [t.type for t in fig.data]
    assert types == ["bar", "bar"] + ["scatter"] * 4
    male, female = fig.data[0], fig.data[1]
    assert list(male.y) == BANDS  # ordered by age, not by input order or text sort
    assert all(x < 0 for x in male.x) and all(x > 0 for x in female.x)
    # 95+ male was the first input row: area 1.1 -> -1.1, parent NaN -> gap in the outline.
    assert male.x[-1] == pytest.approx(-1.1)
    parent_male = fig.data[2]
    assert np.isnan(parent_male.x[-1]) and parent_male.x[0] == pytest.approx(-1.6)
    assert "Sheffield" in parent_male.name
    # Tick labels are absolute percentages on both sides.
    assert fig.layout.xaxis.ticktext[0] == fig.layout.xaxis.ticktext[-1]
    assert "%" in fig.layout.xaxis.title.text


def test_population_pyramid_skips_missing_outline_and_accepts_loader_bands(age_sex):
    frame = age_sex.assign(parent_pct=np.nan, age_band=age_sex["age_band"].str.replace("-", "_"))
    fig = charts.population_pyramid(frame, "Pyramid", "Test PCN")
    assert len(fig.data) == 4  # two bars + England outline (male, female)
    assert list(fig.data[0].y)[:3] == ["0_4", "5_9", "10_14"]


def test_population_pyramid_rejects_unknown_sex(age_sex):
    with pytest.raises(ValueError, match="sex"):
        charts.population_pyramid(age_sex.assign(sex="persons"), "Pyramid", "Test PCN")


# --------------------------------------------------------------------------------------
# 2. Choropleth
# --------------------------------------------------------------------------------------


def test_lsoa_choropleth_embeds_only_needed_rounded_features(geojson, lsoa_values):
    fig = charts.lsoa_choropleth(geojson, lsoa_values, "Map")
    assert [t.type for t in fig.data] == ["choropleth", "choropleth"]
    deciles, missing = fig.data
    embedded = deciles.geojson["features"]
    # each feature is identified by its code as its id: no properties (the page carried each
    # code twice)
    assert {f["id"] for f in embedded} == {"E01000000", "E01000001", "E01000002"}
    assert all(set(f) == {"type", "id", "geometry"} for f in embedded)
    assert set(deciles.locations) | set(missing.locations) == {f["id"] for f in embedded}
    coordinates = np.array(embedded[0]["geometry"]["coordinates"][0])
    assert np.allclose(coordinates, np.round(coordinates, 5))
    assert len(str(coordinates.tolist()[1][0]).split(".")[1]) <= 5
    assert deciles.featureidkey == missing.featureidkey == "id"
    assert list(deciles.locations) == ["E01000000", "E01000001"]
    assert list(deciles.z) == [1, 10]
    assert (deciles.zmin, deciles.zmax) == (0.5, 10.5)
    assert list(missing.locations) == ["E01000002"]
    # Hover carries the code, decile, score and patients (one template over per-LSOA numbers)
    assert deciles.locations[0] == "E01000000" and deciles.z[0] == 1
    assert "%{location}" in deciles.hovertemplate and "IMD decile (national): %{z}" in (
        deciles.hovertemplate
    )
    assert list(deciles.customdata[0]) == [55.1, 1234.0]
    # No tiles: a hidden geo base map fitted to the LSOAs.
    assert fig.layout.geo.fitbounds == "locations" and fig.layout.geo.visible is False
    layout_json = fig.layout.to_plotly_json()
    assert "map" not in layout_json and "mapbox" not in layout_json
    assert "http" not in fig.to_json()  # nothing (tiles, styles, fonts) to fetch
    # Decile 1 (most deprived) is the darkest colour of the scale.
    assert deciles.colorscale[0][1] == charts.IMD_DECILE_COLOURS[0] == "#440154"


def test_lsoa_choropleth_rewinds_exterior_rings_clockwise(geojson, lsoa_values):
    fig = charts.lsoa_choropleth(geojson, lsoa_values, "Map")
    for feature in fig.data[0].geojson["features"]:
        ring = feature["geometry"]["coordinates"][0]
        assert charts._ring_signed_area(ring) < 0


def test_display_ready_geometries_are_what_the_chart_would_make_of_them(geojson, lsoa_values):
    """The store's map geometries (snapped to the 1e-5 degree grid and oriented with shapely,
    as PopHealthData.lsoa_geometries does) have the rings the chart's own rounding and
    rewinding makes (a ring may start at another point), so a collection marked DISPLAY_READY
    is embedded as it is."""
    import shapely
    from shapely.geometry import shape

    ready = {
        **geojson,
        charts.DISPLAY_READY: True,
        "features": [
            {
                **feature,
                "geometry": json.loads(
                    shapely.to_geojson(
                        shapely.orient_polygons(
                            shapely.set_precision(shape(feature["geometry"]), 1e-5),
                            exterior_cw=True,
                        )
                    )
                ),
            }
            for feature in geojson["features"]
        ],
    }
    for plain, prepared in zip(geojson["features"], ready["features"], strict=True):
        assert _same_rings(charts._display_geometry(plain["geometry"]), prepared["geometry"])
    fast = charts.lsoa_choropleth(ready, lsoa_values, "Map").data[0].geojson["features"]
    slow = charts.lsoa_choropleth(geojson, lsoa_values, "Map").data[0].geojson["features"]
    assert [f["id"] for f in fast] == [f["id"] for f in slow]
    assert [f["geometry"] for f in fast] == [
        f["geometry"]
        for f in ready["features"]
        if f["properties"]["lsoa21_code"] in {g["id"] for g in fast}
    ]
    for ours, theirs in zip(fast, slow, strict=True):
        assert _same_rings(ours["geometry"], theirs["geometry"])


def _same_rings(a: dict, b: dict) -> bool:
    """Same geometry type and rings: the same points in the same direction (a ring may start
    at another of its points)."""

    def polygons(geometry: dict) -> list:
        coordinates = geometry["coordinates"]
        return [coordinates] if geometry["type"] == "Polygon" else coordinates

    def canonical(ring: list) -> list:
        points = [tuple(p) for p in ring[:-1]]  # drop the closing point
        start = points.index(min(points))
        return points[start:] + points[:start]

    if a["type"] != b["type"]:
        return False
    return [[canonical(r) for r in p] for p in polygons(a)] == [
        [canonical(r) for r in p] for p in polygons(b)
    ]


def test_figure_fragment_written_at_export_is_the_interactive_one():
    """A batch-kernel figure output (JSON + metadata, no HTML) gives the page the fragment an
    interactive session would have sent: same JSON, caption, width, summary and label."""
    fig = go.Figure(
        go.Scatter(x=[1, 2], y=[0.123456789, 2], text=["<b>a</b> </script>", "%{b}"]),
        layout={"title": {"text": "A <i>title</i> & more"}},
    )
    kwargs = {"width": "third", "caption": 'Cap "<x>"', "collapsed": "Open <it>"}
    interactive, metadata = charts.figure_output(fig, **kwargs)
    batch, batch_metadata = charts.figure_output(fig, **kwargs, with_html=False)
    assert "text/html" not in batch and batch_metadata == metadata
    assert batch[charts.PLOTLY_MIMETYPE] == interactive[charts.PLOTLY_MIMETYPE]
    written = charts.figure_html_from_output(json.loads(json.dumps(batch)), metadata)
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert uuid.sub("ID", written) == uuid.sub("ID", interactive["text/html"])
    assert "</script>" not in written.split("<script", 1)[1].split("</script>", 1)[0]
    assert "<x>" not in json.dumps(metadata) and "<it>" not in json.dumps(metadata)
    assert charts.figure_html_from_output({"text/html": "x"}, {}) is None


def test_lsoa_choropleth_errors_when_no_code_matches(geojson, lsoa_values):
    with pytest.raises(ValueError, match="none of the 3 LSOA codes"):
        charts.lsoa_choropleth(
            geojson, lsoa_values.assign(lsoa21_code=["W01000001", "W01000002", "X"]), "Map"
        )
    with pytest.raises(ValueError, match="(?s)duplicated.*E01000000"):
        charts.lsoa_choropleth(geojson, lsoa_values.assign(lsoa21_code="E01000000"), "Map")
    with pytest.raises(ValueError, match="FeatureCollection"):
        charts.lsoa_choropleth({"type": "Feature"}, lsoa_values, "Map")


def test_geo_figure_html_registers_offline_base_map(geojson, lsoa_values):
    fig = charts.lsoa_choropleth(geojson, lsoa_values, "Map")
    fragment = charts.figure_to_html(fig)
    assert fragment.startswith(charts.GEO_ASSETS_SCRIPT)
    assert '"world_110m"' in charts.GEO_ASSETS_SCRIPT
    assert fig.layout.geo.scope == "world" and fig.layout.geo.resolution == 110
    other = charts.inverse_care_law(
        pd.DataFrame(
            {
                "quintile": [1],
                "value": [1.0],
                "lower_ci": [0.5],
                "upper_ci": [1.5],
                "weighted_patients": [10.0],
            }
        ),
        "SII",
        "t",
    )
    assert "PlotlyGeoAssets" not in charts.figure_to_html(other)


# --------------------------------------------------------------------------------------
# 3. Deciles
# --------------------------------------------------------------------------------------


def test_deprivation_deciles_highlights_core20(decile_shares):
    fig = charts.deprivation_deciles(decile_shares, "Deciles", parent_label="Place")
    assert [t.type for t in fig.data] == ["bar", "scatter", "scatter"]
    bars = fig.data[0]
    assert list(bars.x) == list(range(1, 11))
    assert list(bars.y) == [20, 15, 12, 10, 9, 8, 8, 7, 6, 5]
    colours = list(bars.marker.color)
    assert colours[:2] == [charts.NHS_DARK_BLUE] * 2 and set(colours[2:]) == {charts.NHS_BLUE}
    shape = fig.layout.shapes[0]
    assert (shape.x0, shape.x1) == (0.5, 2.5)
    assert fig.layout.meta["core20_area_pct"] == pytest.approx(35.0)
    assert fig.data[1].name == "Place"


# --------------------------------------------------------------------------------------
# 4. Workforce versus need
# --------------------------------------------------------------------------------------


def test_workforce_vs_need_highlight_and_weighted_trend(practices):
    fig = charts.workforce_vs_need(practices, "Workforce", "Test PCN")
    others, area, trend = fig.data
    assert area.name == "Practices in Test PCN"
    assert list(area.x) == [10.0, 20.0] and list(others.x) == [30.0, 40.0, 50.0]
    assert area.marker.size[0] > area.marker.size[1]  # bigger list, bigger marker
    assert "Alpha &lt;b&gt;" in _hover(area, 0)  # names escaped in hover text
    # Weighted least squares, closed form, on the plotted practices.
    usable = practices.dropna(subset=["gp_fte_per_10k_weighted"])
    x = usable["imd_score"].to_numpy()
    y = usable["gp_fte_per_10k_weighted"].to_numpy()
    w = usable["registered_patients"].to_numpy(dtype=float)
    x_bar, y_bar = np.average(x, weights=w), np.average(y, weights=w)
    slope = np.sum(w * (x - x_bar) * (y - y_bar)) / np.sum(w * (x - x_bar) ** 2)
    intercept = y_bar - slope * x_bar
    assert fig.layout.meta["trend_slope"] == pytest.approx(slope)
    assert fig.layout.meta["trend_intercept"] == pytest.approx(intercept)
    unweighted = np.polyfit(x, y, 1)[0]
    assert abs(unweighted - slope) > 1e-3  # the weights matter for this data
    assert list(trend.x) == [10.0, 50.0]
    assert trend.y[0] == pytest.approx(slope * 10 + intercept)
    assert fig.layout.meta["practices_not_plotted"] == 1


def _hover(trace, i: int) -> str:
    """Point ``i``'s hover text as plotly.js writes it from the trace's template.

    Fields are ``%{x}``, ``%{y}``, ``%{text}``, ``%{customdata}`` and ``%{customdata[k]}``,
    optionally with a d3 ``,.Nf`` / ``.Nf`` format (JavaScript's ``toFixed``, which
    :func:`test_hover_templates_read_as_plotly_js_writes_them` checks in a browser).
    """
    get = trace.get if isinstance(trace, dict) else trace.__getitem__
    template = get("hovertemplate")
    customdata = get("customdata")
    row = customdata[i] if customdata is not None else None

    def field(match: re.Match) -> str:
        name, index, spec = match.group(1), match.group(2), match.group(3)
        value = row if name == "customdata" else get(name)[i]
        if index is not None:
            value = value[int(index)]
        if not spec:
            return str(value)
        places = int(re.fullmatch(r",?\.(\d)f", spec).group(1))
        text = charts._js_fixed(float(value), places)
        return text if spec.startswith(",") else text.replace(",", "")

    text = re.sub(r"%\{(\w+)(?:\[(\d+)\])?(?::([^}]*))?\}", field, template)
    return text.removesuffix("<extra></extra>")


def _hovers(fig) -> dict[str, list[str]]:
    """Every point's hover text, by trace name, from the figure's data as a page carries it."""
    data, _, _ = charts._figure_objects(fig)
    data = _decode_typed_arrays(charts._plain_json(data))
    out: dict[str, list[str]] = {}
    for trace in data:
        if not trace.get("hovertemplate"):
            continue
        xs, ys = trace.get("x"), trace.get("y")
        drawn = [i for i in range(len(xs)) if xs[i] is not None and ys[i] is not None]
        out[trace.get("name")] = [_hover(trace, i) for i in drawn]
    return out


@pytest.fixture
def awkward_practices() -> pd.DataFrame:
    """Values a hover template could write differently from format_number: ties (d3 rounds
    0.25 up, Python to even) and values just past a rounding boundary once carried with
    fewer digits (11.04996 carried as 11.05)."""
    return pd.DataFrame(
        {
            "practice_code": ["A1", "A2", "B1", "B2"],
            "practice_name": ["Alpha <b>", "%{x} Beta", "Gamma &amp;", "Delta"],
            "imd_score": [11.04996, 0.25, 30.35, 12.0],
            "gp_fte_per_10k_weighted": [7.125, 6.04999, 6.5, 5.45],
            "registered_patients": [20000, 5000, 8500, 1234567],
            "in_area": [True, True, False, False],
        }
    )


def _workforce_hover(record: dict) -> str:
    """The hover text of a practice, as the chart wrote it before it used a template."""
    fmt = charts.format_number
    return (
        f"<b>{charts._esc(record['practice_name'])}</b> ({charts._esc(record['practice_code'])})"
        f"<br>IMD score: {fmt(record['imd_score'], decimals=1)}"
        f"<br>GP FTE per 10,000 weighted patients: "
        f"{fmt(record['gp_fte_per_10k_weighted'], decimals=1)}"
        f"<br>Registered patients: {fmt(record['registered_patients'], '')}"
    )


@pytest.mark.parametrize("small_practice", [False, True])
def test_workforce_vs_need_hover_reads_as_before(awkward_practices, small_practice):
    practices = awkward_practices
    if small_practice:  # 850 patients reads "850.0": no one format for every practice
        practices = practices.assign(registered_patients=[20000, 850, 8500, 1234567])
    for fig in (
        charts.workforce_vs_need_spec(practices, "W", "PCN"),
        charts.workforce_vs_need(practices, "W", "PCN"),
    ):
        hovers = _hovers(fig)
        records = practices.to_dict("records")
        assert hovers["Practices in PCN"] == [_workforce_hover(r) for r in records[:2]]
        assert hovers["Other practices"] == [_workforce_hover(r) for r in records[2:]]
    spec = charts.workforce_vs_need_spec(practices, "W", "PCN")
    area = spec.data[1]
    # numbers in the template, not pre-formatted text per practice
    assert "%{x:,.1f}" in area["hovertemplate"] and "%{y:,.1f}" in area["hovertemplate"]
    assert ("%{customdata[2]:,.0f}" in area["hovertemplate"]) is not small_practice
    # a value is carried within a unit of its last digit of the value itself
    assert np.allclose(area["x"], [11.04996, 0.25], atol=1.001e-3)
    assert np.allclose(area["y"], [7.125, 6.04999], atol=1.001e-3)


def test_workforce_vs_need_rejects_text_flags(practices):
    with pytest.raises(ValueError, match="in_area"):
        charts.workforce_vs_need(practices.assign(in_area="False"), "W", "PCN")


def test_weighted_trend_needs_two_distinct_points():
    assert all(
        np.isnan(
            charts.weighted_trend(np.array([1.0, 1.0]), np.array([2.0, 3.0]), np.array([1.0, 1.0]))
        )
    )


# --------------------------------------------------------------------------------------
# 5. Spine chart
# --------------------------------------------------------------------------------------


def test_spine_chart_centre_line_scaling_and_colours(spine_rows):
    fig = charts.spine_chart(spine_rows, "Spine")
    centre = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(centre) == 1 and centre[0].x0 == 0 and centre[0].x1 == 0
    markers = {t.name: t for t in fig.data if t.type == "scatter" and t.mode == "markers"}
    assert set(markers) == {"Similar to England", "Worse than England", "Better than England"}
    similar = markers["Similar to England"]
    assert similar.x[0] == 0  # value equal to England sits on the centre line
    assert similar.marker.color == charts.COMPARISON_COLOURS["similar"]
    worse = markers["Worse than England"]
    assert worse.marker.color == "#D4351C"
    # Smoking: low is good, value 20 vs England 14, widest spread |26 - 14| = 12 -> -0.5.
    assert worse.x[0] == pytest.approx(-0.5)
    better = markers["Better than England"]
    assert better.x[0] > 0  # depression 12 < England 12.5 and low is good -> right of centre
    # Row 4 has no value: its label stays, no marker anywhere at y=3.
    assert len(fig.layout.yaxis.ticktext) == 4 and "No value here" in fig.layout.yaxis.ticktext[3]
    assert all(3 not in list(t.y) for t in markers.values())
    # Range bars: the widest spread reaches exactly ±1 (Fingertips scaling).
    range_bar = fig.data[0]
    assert range_bar.base[1] == pytest.approx(-1.0)
    assert range_bar.base[1] + range_bar.x[1] == pytest.approx(12 / 12 * 0.5)
    # Hover shows real values with units.
    assert "20.0%" in _hover(worse, 0) and "England: 14.0%" in _hover(worse, 0)


def _spine_hover(record: dict, area: str, comparator: str, peers: str, category: str) -> str:
    """A spine chart row's hover text, as the chart wrote it before it used a template."""
    unit, esc, fmt = record["unit"], charts._esc, charts.format_number
    ci = ""
    if np.isfinite(record["lower_ci"]) and np.isfinite(record["upper_ci"]):
        ci = f" (95% CI {fmt(record['lower_ci'], unit)}–{fmt(record['upper_ci'], unit)})"
    value = charts._with_unit
    return (
        f"<b>{esc(record['title'])}</b><br>{esc(area)}: {value(record['value'], unit)}{ci}"
        f"<br>{esc(comparator)}: {value(record['comparator_value'], unit)}"
        f"<br>Range of {esc(peers)}: {value(record['peer_min'], unit)} to "
        f"{value(record['peer_max'], unit)}"
        f"<br>Middle half: {value(record['peer_q25'], unit)} to "
        f"{value(record['peer_q75'], unit)}"
        f"<br>{charts.COMPARISON_LABELS[category].format(comparator=esc(comparator))}"
    )


def test_spine_chart_hover_reads_as_before(spine_rows):
    rows = spine_rows.assign(title=["<i>Smoking</i>", "%{x} rate", "A & B", "No value here"])
    labels = {"area_label": "Area <b>%{y}", "comparator_label": "Eng<land>", "peer_label": "PCNs"}
    fig = charts.spine_chart_spec(rows, "Spine", **labels)
    hovers = _hovers(fig)
    records = rows.to_dict("records")
    categories = ["similar", "worse", "better", "not compared"]
    expected = [
        _spine_hover(r, *labels.values(), category)
        for r, category in zip(records, categories, strict=True)
    ]
    assert hovers["Range of PCNs"] == expected  # every row, on the range bar
    comparator = "Eng&lt;land&gt;"
    assert hovers[f"Worse than {comparator}"] == [expected[1]]
    assert hovers[f"Better than {comparator}"] == [expected[2]]
    # one template: the labels once per trace, each row's numbers and words as its data
    assert fig.data[0]["hovertemplate"].count("Area &lt;b&gt;%&#123;y}") == 1
    assert "Area" not in json.dumps(fig.data[0]["customdata"])


def test_spine_chart_rejects_unknown_comparison(spine_rows):
    with pytest.raises(ValueError, match="unknown comparison value 'betterr'.*better"):
        charts.spine_chart(spine_rows.assign(comparison="betterr"), "Spine")


# --------------------------------------------------------------------------------------
# 6–8. Funnel, inverse care law, fair share
# --------------------------------------------------------------------------------------


def test_funnel_plot_limits_target_and_highlight(funnel_frames):
    points, limits = funnel_frames
    fig = charts.funnel_plot(points, limits, 20.0, "Funnel", "P2", "Percentage (%)")
    by_name = {t.name: t for t in fig.data}
    assert by_name["95% limits"].line.dash == "dash"
    assert by_name["99.8% limits"].line.dash == "solid"
    assert list(by_name["95% limits"].x[:5]) == sorted(limits["denominator"])
    target = next(t for t in fig.data if t.name.startswith("Target"))
    assert list(target.y) == [20.0, 20.0]
    highlight = by_name["South PCN"]
    assert list(highlight.x) == [3000.0] and highlight.marker.color == charts.NHS_BLUE
    assert "Outside the 99.8% limits" in highlight.customdata[0]
    assert "Within the 95% limits" in by_name["Other areas"].customdata[0]
    assert fig.layout.meta["highlight_found"] is True
    missing = charts.funnel_plot(points, limits, 20.0, "Funnel", "ZZZ", "Percentage (%)")
    assert missing.layout.meta["highlight_found"] is False
    assert "Other areas" in {t.name for t in missing.data}


def _funnel_hover(record: dict, limits: pd.DataFrame, value_label: str) -> str:
    """The hover text of a funnel point, as the chart wrote it before it used a template."""
    side = charts.funnel_position(limits, record["denominator"], record["value"])
    where = (
        "Within the 95% limits"
        if side.startswith("within")
        else (f"Outside the {side.split(' the ', 1)[1]}")
    )
    return (
        f"<b>{charts._esc(record['area_name'])}</b> ({charts._esc(record['area_code'])})"
        f"<br>Value: {charts.format_number(record['value'], value_label)}"
        f"<br>Denominator: {charts.format_number(record['denominator'], '')}<br>{where}"
    )


@pytest.mark.parametrize(
    "denominators",
    [
        [1200.0, 3000.0, 20000.0, 2_500_000.0, 8000.0],  # one format: %{x:,.0f}
        [500.0, 3000.0, 20000.0, 2_500_000.0, 8000.0],  # 500 reads "500.0": text per point
    ],
)
def test_funnel_hover_reads_as_before(funnel_frames, denominators):
    _, limits = funnel_frames
    points = pd.DataFrame(
        {
            "area_code": ["P1", "P2", "P<3>", "P4", "P5"],
            "area_name": ["North <b>PCN</b>", "South %{y} PCN", "East &amp;", "West", "Mid"],
            "denominator": denominators,
            # a tie (d3 rounds 20.25 up, Python to even) and a value carried as 21.45
            "value": [21.0, 30.0, 20.25, 21.4500027790008985, np.nan],
        }
    )
    label = "Percentage (%)"
    for fig in (
        charts.funnel_plot_spec(points, limits, 20.0, "Funnel", "P2", label),
        charts.funnel_plot(points, limits, 20.0, "Funnel", "P2", label),
    ):
        hovers = _hovers(fig)
        records = points.to_dict("records")
        assert hovers["South %&#123;y} PCN"] == [_funnel_hover(records[1], limits, label)]
        expected = [_funnel_hover(r, limits, label) for r in records[:4] if r["area_code"] != "P2"]
        assert hovers["Other areas"] == expected
    template = charts.funnel_plot_spec(points, limits, 20.0, "F", "P2", label).data[-1][
        "hovertemplate"
    ]
    assert "%{y:,.1f}" in template  # values in the template, not text per point
    assert ("%{x:,.0f}" in template) is (denominators[0] > 1000)


def test_funnel_limit_curves_are_exact_limits_drawn_smooth():
    """The limits are drawn through fewer points of their grid: every point drawn is an exact
    limit and the curve is within a fraction of a pixel of the curve through the whole grid."""
    from pophealth import stats

    rng = np.random.default_rng(7)
    for low, high, target in ((300, 12_000, 1.2), (8_000, 90_000, 5.0), (20_000, 60_000, 40.0)):
        denominators = rng.uniform(low, high, 40).round()
        points = pd.DataFrame(
            {
                "area_code": [f"U{i}" for i in range(40)],
                "area_name": [f"Area {i}" for i in range(40)],
                "denominator": denominators,
                "value": target + rng.normal(0, 0.3, 40),
            }
        )
        grid = stats.funnel_plot_points(40, high * 1.1, min_denominator=np.floor(low * 0.8))
        limits = stats.funnel_limits_proportion(grid, target, multiplier=100)
        fig = charts.funnel_plot_spec(points, limits, target, "F", "U0", "Percentage (%)")
        data, layout, _ = charts._figure_objects(fig)
        y_low, y_high = layout["yaxis"]["range"]
        for trace, lower, upper in (
            (data[0], "lower_99_8", "upper_99_8"),
            (data[1], "lower_95", "upper_95"),
        ):
            x = np.asarray(trace["x"], dtype=float)
            y = np.asarray(trace["y"], dtype=float)
            gap = int(np.flatnonzero(np.isnan(x))[0])
            for xs, ys, column in ((x[:gap], y[:gap], lower), (x[gap + 1 :], y[gap + 1 :], upper)):
                assert 2 < len(xs) < len(grid)  # fewer points than the grid
                assert xs[0] == grid[0] and xs[-1] == grid[-1]  # the whole span
                exact = limits.set_index("denominator")[column]
                assert np.allclose(ys, exact.loc[xs].to_numpy(), rtol=1e-5, atol=1e-9)
                drawn = np.interp(grid, xs, ys)
                full = limits[column].to_numpy()
                gap_px = np.abs(drawn - full).max() / (y_high - y_low)
                assert gap_px <= charts.FUNNEL_CURVE_TOLERANCE + 1e-6


@pytest.mark.parametrize("periods", [["2025-01", "2025-02", "2025-03"], ["2025<1>", "B", "C"]])
def test_trend_chart_hover_reads_as_before(periods):
    series = pd.DataFrame(
        {
            "period": periods,
            "value": [20.25, 1234.5, np.nan],  # a tie, two magnitudes, a gap
            "lower_ci": [19.0, np.nan, np.nan],
            "upper_ci": [21.5, np.nan, np.nan],
            "england_value": [18.0, 18.04999, 18.5],
        }
    )
    fmt, esc = charts.format_number, charts._esc
    fig = charts.trend_chart_spec(series, "T", "Area <b>%{y}", "Eng & land")
    hovers = _hovers(fig)
    assert hovers["Area <b>%{y}"] == [
        f"{esc(periods[0])}<br>Area &lt;b&gt;%&#123;y}}: 20.2 (95% CI 19.0–21.5)",  # 20.25: even
        f"{esc(periods[1])}<br>Area &lt;b&gt;%&#123;y}}: 1,234",
    ]
    england_values = [18.0, 18.04999, 18.5]
    assert hovers["Eng & land"] == [
        f"{esc(p)}<br>Eng &amp; land: {fmt(v)}"
        for p, v in zip(periods, england_values, strict=True)
    ]
    england = fig.data[1]
    plain = periods[0] == "2025-01"  # releases that need no escaping are the points' x
    assert "%{y:,.1f}" in england["hovertemplate"]
    assert ("%{x}" in england["hovertemplate"]) is plain
    assert (england.get("customdata") is None) is plain


def test_inverse_care_law_error_bars_and_annotation(quintiles):
    fig = charts.inverse_care_law(quintiles, "SII is -1.4 <b>", "Inverse care")
    bar = fig.data[0]
    assert list(bar.x) == [1, 2, 3, 4, 5]
    assert bar.error_y.array[0] == pytest.approx(0.3)
    assert bar.error_y.arrayminus[0] == pytest.approx(0.3)
    assert bar.marker.color[0] == charts.QUINTILE_COLOURS[0]
    assert any("SII is -1.4 &lt;b&gt;" in a.text for a in fig.layout.annotations)


def test_fair_share_bars(fair_share):
    fig = charts.fair_share_bars(fair_share, "Fair share")
    assert [t.name for t in fig.data] == ["Actual GP FTE", "Fair share GP FTE"]
    assert fig.layout.barmode == "group"
    texts = [a.text for a in fig.layout.annotations]
    assert texts == ["Gap −3.8 FTE", "Gap +1.2 FTE"]


# --------------------------------------------------------------------------------------
# Display helpers
# --------------------------------------------------------------------------------------


def test_figure_bundle_has_both_mimetypes_and_no_embedded_plotlyjs(quintiles):
    fig = charts.inverse_care_law(quintiles, "SII", "Inverse care", source_note="note")
    bundle = charts.figure_bundle(fig)
    assert set(bundle) >= {"application/vnd.plotly.v1+json", "text/html"}
    payload = bundle["application/vnd.plotly.v1+json"]
    json.dumps(payload)  # plain JSON, nbformat can store it
    assert payload["layout"]["meta"]["source_note"] == "note"
    assert payload["config"] == {"displaylogo": False, "responsive": True}
    html_text = bundle["text/html"]
    assert "Plotly.newPlot" in html_text and '"displaylogo":false' in html_text
    assert len(html_text) < 30_000  # plotly.js itself is not embedded
    assert "<script src" not in html_text


def test_spec_renders_the_same_figure_as_the_validated_figure(quintiles):
    spec = charts.inverse_care_law_spec(quintiles, "SII", "Inverse care", source_note="note")
    fig = charts.inverse_care_law(quintiles, "SII", "Inverse care", source_note="note")
    assert isinstance(spec, charts.FigureSpec) and isinstance(fig, go.Figure)
    from_spec = charts.figure_bundle(spec)["application/vnd.plotly.v1+json"]
    from_figure = charts.figure_bundle(fig)["application/vnd.plotly.v1+json"]
    assert from_spec["config"] == from_figure["config"]
    # Validated figures encode numpy arrays as typed base64, the spec as plain lists.
    assert _decode_typed_arrays(from_spec) == _decode_typed_arrays(from_figure)
    assert charts.figure_bundle(spec)["text/plain"] == "<Figure: Inverse care>"


def _decode_typed_arrays(value):
    """Plotly JSON with typed arrays ({"dtype", "bdata"}) turned into plain lists."""
    import base64

    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            array = array.astype(float)
            return json.loads(json.dumps(np.where(np.isnan(array), None, array).tolist()))
        return {k: _decode_typed_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_typed_arrays(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def test_spec_html_escapes_script_breaking_text(quintiles):
    spec = charts.inverse_care_law_spec(quintiles, "</script><script>alert(1)</script>", "T")
    fragment = charts.figure_to_html(spec)
    assert "</script><script>alert" not in fragment
    assert fragment.count("<script") == fragment.count("</script>") == 1


def test_show_rejects_non_figures():
    with pytest.raises(TypeError, match="FigureSpec"):
        charts.figure_bundle({"data": []})


def test_show_publishes_bundle_through_ipython(quintiles):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    fig = charts.inverse_care_law(quintiles, "SII", "Inverse care")
    with capture_output() as captured:
        charts.show(fig)
        tables.inject_css()
    assert len(captured.outputs) == 2
    figure_output, css_output = captured.outputs
    assert "application/vnd.plotly.v1+json" in figure_output.data
    assert "text/html" in figure_output.data
    assert css_output.data["text/html"].startswith('<style id="ph-profile-css">')


def test_hover_text_cannot_close_script_tag(practices):
    evil = practices.assign(practice_name="</script><script>alert(1)</script>")
    fragment = charts.figure_to_html(charts.workforce_vs_need(evil, "W", "PCN"))
    assert "</script><script>alert" not in fragment


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def test_benchmark_table_escapes_formats_and_colours(benchmark_rows):
    before = benchmark_rows.copy(deep=True)
    html_text = tables.benchmark_table(benchmark_rows, "Test <PCN>", "Place", "England")
    pd.testing.assert_frame_equal(benchmark_rows, before)
    assert "<script>alert(1)" not in html_text
    assert "Smoking &lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "Test &lt;PCN&gt;" in html_text
    assert html_text.count("<script>") == 1  # only the sorting script
    assert ">20.0<" in html_text and ">19.0–21.0<" in html_text
    assert ">123,456<" in html_text and ">63,000,000<" in html_text
    body = html_text.split("<tbody>")[1]
    rows = body.split("</tr>")
    assert 'class="ph-num ph-cmp-worse"' in rows[0] and "#D4351C" in rows[0]
    assert "ph-cmp-not-compared" in rows[1]
    assert "ph-cmp-better" in rows[2] and ">–<" in rows[2]  # NaN value shown as a dash
    table_id = re.search(r'<table id="([^"]+)"', html_text).group(1)
    assert f'getElementById("{table_id}")' in html_text
    assert len(html_text.split("<script>")[1].splitlines()) < 40
    again = tables.benchmark_table(benchmark_rows, "Test <PCN>", "Place", "England")
    assert re.search(r'<table id="([^"]+)"', again).group(1) != table_id


def test_table_sort_keys_are_short_and_keep_the_order():
    key = tables._sort_key
    assert key(48730.0) == "48730" and key(63_004_243) == "63004243"  # counts exactly
    assert key(22.6390314) == "22.639"
    assert key(7399.25337) == "7399.25" and key(0.000123456789) == "0.000123457"
    assert key(1_234_567.89) == "1234568"  # every digit a table shows
    assert key(float("nan")) == "" and key(None) == ""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(3, 3, 400), rng.integers(0, 10**8, 100)])
    shown = [tables.format_value(v) for v in values]
    keys = [float(key(v)) for v in values]
    # values a table shows apart keep their order
    for i, j in zip(np.argsort(values)[:-1], np.argsort(values)[1:], strict=True):
        if shown[i] != shown[j]:
            assert keys[i] < keys[j]


def test_not_rated_cells_need_no_inline_colours(benchmark_rows):
    rows = benchmark_rows.assign(comparison=["worse", "not rated", "better"])
    body = tables.benchmark_table(rows, "PCN", "Place", "England").split("<tbody>")[1]
    worse, not_rated, better = body.split("</tr>")[:3]
    assert worse.count('style="background:#D4351C;color:#FFFFFF"') == 2  # value and words
    assert better.count("style=") == 2
    # white on white is what a cell has without the stylesheet: the class carries it
    assert "style=" not in not_rated and not_rated.count("ph-cmp-not-rated") == 2
    assert 'title="Not rated"' in not_rated
    assert ".ph-cmp-not-rated { background: #FFFFFF; color: #000000; }" in tables.PROFILE_CSS


def test_tables_that_do_not_sort_carry_no_sort_keys():
    comparison = pd.DataFrame(
        {
            "title": ["A"],
            "unit": ["%"],
            "value": [20.123456],
            "peer_mean": [19.87654],
            "peer_min": [1.5],
            "peer_max": [30.25],
            "position": ["2nd highest of 5"],
        }
    )
    html_text = tables.similar_areas_table(comparison, "PCN")
    assert "data-sort" not in html_text and ">20.1<" in html_text
    summary = pd.DataFrame(
        {
            "title": ["A"],
            "unit": ["%"],
            "values": [[20.123, 20.5, 21.25]],
            "first_period": ["2024-01"],
            "latest_period": ["2024-03"],
            "direction": ["Increasing"],
            "england_direction": ["Flat"],
        }
    )
    trend = tables.trend_table(summary, "England")
    assert "data-sort" not in trend and ">20.1<" in trend and ">21.2<" in trend


def test_definitions_provenance_and_quality_tables():
    catalogue = pd.DataFrame(
        {
            "indicator_id": ["smoking"],
            "title": ["Smoking & vaping"],
            "definition": ["Adults who smoke <img src=x onerror=alert(1)>"],
            "numerator_source": ["QOF"],
            "denominator_source": ["GP registrations"],
            "polarity": ["RAG - Low is good"],
            "statistic": ["proportion"],
            "unit": ["%"],
        }
    )
    definitions = tables.definitions_table(catalogue)
    assert "Smoking &amp; vaping" in definitions and "<img" not in definitions
    digest = "a" * 52 + "0123456789ab"
    provenance = tables.provenance_table(
        pd.DataFrame(
            {
                "source": ["IoD2025"],
                "file": ["File_7.csv"],
                "release": ["2025"],
                "sha256": [digest],
                "rows": [33755],
            }
        )
    )
    assert f'title="{digest}"' in provenance and ">aaaaaaaaaaaa…<" in provenance
    assert ">33,755<" in provenance
    quality = tables.data_quality_table(
        pd.DataFrame(
            {
                "category": ["Matched to an LSOA", "CLOSED (invalid postcode)"],
                "patients": [1234567, 89],
                "pct": [99.99281, 0.00719],
            }
        )
    )
    assert ">1,234,567<" in quality and ">100.0%<" in quality and ">0.0%<" in quality
    with pytest.raises(ValueError, match="patients"):
        tables.data_quality_table(pd.DataFrame({"category": ["x"], "pct": [1.0]}))


def test_headline_and_banner():
    assert "&lt;b&gt;" in tables.styled_headline("Deprivation is <b>high</b>")
    bullets = tables.styled_headline(["One", "Two"])
    assert bullets.count("<li>") == 2
    banner = tables.synthetic_banner()
    assert "SYNTHETIC" in banner and 'role="alert"' in banner
    assert "color:#8A0000" in banner


# --------------------------------------------------------------------------------------
# Headless browser: figures actually render from a local plotly.min.js, offline
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_figures_and_sortable_table_render_in_headless_chromium(
    tmp_path, geojson, lsoa_values, spine_rows, benchmark_rows
):
    require_chromium()
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copy(plotly_js, tmp_path / "plotly.min.js")
    map_fig = charts.lsoa_choropleth(geojson, lsoa_values, "Map")
    spine_fig = charts.spine_chart(spine_rows, "Spine")
    table = tables.benchmark_table(benchmark_rows, "Area", "Place", "England")
    # Click the Denominator header twice (descending) once the page has loaded.
    click = (
        "<script>window.addEventListener('load', function () {"
        "var th = document.querySelector('table.ph-benchmark thead th:nth-child(9)');"
        "th.click(); th.click(); });</script>"
    )
    page = tmp_path / "page.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<script src='plotly.min.js'></script>"
        + tables.css_block()
        + "</head><body>"
        + charts.figure_to_html(map_fig)
        + charts.figure_to_html(spine_fig)
        + table
        + click
        + "</body></html>",
        encoding="utf-8",
    )
    dom, _ = render_dom(page)
    assert dom.count('class="main-svg"') >= 4  # two plots, each with two main-svg layers
    assert dom.count("choroplethlocation") >= 2  # the map drew LSOAs without fetching a base map
    # The spine's range bars were drawn.
    assert "trace bars" in dom
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    order = re.findall(r"<tr><td[^>]*>([^<]*)</td>", body)
    assert order[0] == "Registered patients"  # denominator 123,456 first when descending
    assert order[-1] == "Depression"  # 5,000 last
    assert 'aria-sort="descending"' in dom


# Hovers every point of every trace named in NAMES on the page's plots, one at a time (plotly
# throttles hover), and writes each label's lines into <pre id="hovers"> as JSON.
_HOVER_SCRIPT = """<script>
window.addEventListener('load', function () {
  var jobs = [], out = {};
  document.querySelectorAll('.plotly-graph-div').forEach(function (gd, g) {
    gd.data.forEach(function (trace, c) {
      if (NAMES.indexOf(trace.name) < 0) { return; }
      for (var p = 0; p < trace.x.length; p++) { jobs.push([gd, g, c, p, trace.name]); }
    });
  });
  function next(k) {
    if (k > 0) {
      var job = jobs[k - 1];
      var lines = job[0].querySelectorAll('.hoverlayer .hovertext text.nums tspan.line');
      var text = Array.prototype.map.call(lines, function (l) { return l.textContent; });
      if (!lines.length) {
        var nums = job[0].querySelector('.hoverlayer .hovertext text.nums');
        text = nums ? [nums.textContent] : [];
      }
      var key = job[1] + '|' + job[4];
      (out[key] = out[key] || []).push(text.join('\\n'));
    }
    if (k === jobs.length) {
      document.getElementById('hovers').textContent = JSON.stringify(out); return;
    }
    Plotly.Fx.hover(jobs[k][0], [{curveNumber: jobs[k][2], pointNumber: jobs[k][3]}]);
    setTimeout(function () { next(k + 1); }, 120);
  }
  next(0);
});
</script>"""


def _label_lines(hover: str) -> str:
    """A hover text as the lines of its drawn label (tags gone, entities read)."""
    import html as html_lib

    lines = [re.sub(r"<[^>]+>", "", line) for line in hover.split("<br>")]
    return "\n".join(html_lib.unescape(line) for line in lines)


@pytest.mark.slow
def test_hover_templates_read_as_plotly_js_writes_them(
    tmp_path, awkward_practices, funnel_frames, spine_rows
):
    """plotly.js fills the templates as :func:`_hover` does: the hovers read as before."""
    require_chromium()
    import html as html_lib

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copy(plotly_js, tmp_path / "plotly.min.js")
    _, limits = funnel_frames
    points = pd.DataFrame(
        {
            "area_code": ["P1", "P2", "P<3>", "P4"],
            "area_name": ["North <b>PCN</b>", "South %{y} PCN", "East &amp;", "West"],
            "denominator": [1200.0, 3000.0, 20000.0, 2_500_000.0],
            "value": [21.0, 30.0, 20.25, 21.4500027790008985],
        }
    )
    figures = [
        charts.workforce_vs_need_spec(awkward_practices, "W", "PCN"),
        charts.funnel_plot_spec(points, limits, 20.0, "Funnel", "P2", "Percentage (%)"),
        charts.spine_chart_spec(
            spine_rows.assign(title=["<i>Smoking</i>", "%{x} rate", "A & B", "None"]),
            "Spine",
            area_label="Area <b>%{y}",
            comparator_label="Eng<land>",
            peer_label="PCNs",
        ),
    ]
    names = ["Practices in PCN", "Other practices", "Other areas", "South %&#123;y} PCN"]
    names += ["Range of PCNs", "Worse than Eng&lt;land&gt;"]
    page = tmp_path / "hover.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<script src='plotly.min.js'></script></head><body>"
        + "".join(charts.figure_to_html(f) for f in figures)
        + "<pre id='hovers'></pre>"
        + f"<script>var NAMES = {json.dumps(names)};</script>"
        + _HOVER_SCRIPT
        + "</body></html>",
        encoding="utf-8",
    )
    dom, errors = render_dom(page, budget_ms=20_000, window_size=(1200, 1000))
    assert not errors, errors
    drawn = json.loads(html_lib.unescape(dom.split('<pre id="hovers">')[1].split("</pre>")[0]))
    expected = {}
    for g, fig in enumerate(figures):
        for name, hovers in _hovers(fig).items():
            if name in names:
                expected[f"{g}|{name}"] = [_label_lines(h) for h in hovers]
    assert len(expected) == 6 and drawn == expected
    # what the page shows: the values as format_number writes them
    assert "IMD score: 11.0\n" in drawn["0|Practices in PCN"][0]  # carried as 11.049, not 11.05
    assert "IMD score: 0.2\n" in drawn["0|Practices in PCN"][1]  # Python's tie, not d3's 0.3
    assert "Registered patients: 1,234,567" in drawn["0|Other practices"][1]
    assert "Value: 21.5\nDenominator: 2,500,000" in drawn["1|Other areas"][2]
    # labels and names in a template or its data show literally, tags and braces included
    assert drawn["2|Worse than Eng&lt;land&gt;"][0].startswith("%{x} rate\nArea <b>%{y}: ")


@pytest.mark.slow
def test_map_draws_offline_from_the_plotly_json_as_jupyterlab_does(tmp_path, geojson, lsoa_values):
    """JupyterLab renders the Plotly JSON mime part with its config (no page scripts of ours)."""
    require_chromium()
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copy(plotly_js, tmp_path / "plotly.min.js")
    bundle = charts.figure_bundle(charts.lsoa_choropleth_spec(geojson, lsoa_values, "Map"))
    figure = bundle[charts.PLOTLY_MIMETYPE]
    assert figure["config"]["topojsonURL"].startswith("data:application/json,")
    page = tmp_path / "lab.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<script src='plotly.min.js'></script></head><body><div id='m'></div><script>"
        f"var fig = {json.dumps(figure)};"
        "Plotly.newPlot('m', fig.data, fig.layout, fig.config);</script></body></html>",
        encoding="utf-8",
    )
    dom, errors = render_dom(page)
    assert not errors, errors
    assert "PlotlyGeoAssets.topojson" not in page.read_text()
    assert dom.count("choroplethlocation") >= 2  # LSOAs drawn, no base map fetched


def _reference_dir() -> Path:
    env = os.environ.get("POPHEALTH_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.mark.reference
def test_choropleth_on_real_lsoa_boundaries_stays_small():
    reference = _reference_dir()
    boundaries = reference / "boundaries" / "boundaries_lsoa21.geojson"
    lookup = reference / "lookups" / "lookup_lsoa21_icb24.csv"
    imd = reference / "imd" / "imd2025_england_lsoa21.csv"
    if not (boundaries.exists() and lookup.exists() and imd.exists()):
        pytest.skip("reference boundaries / lookup / IMD not available")
    codes = pd.read_csv(lookup, usecols=["lsoa21_code", "sicbl24_code_nhs"])
    sheffield = set(codes.loc[codes["sicbl24_code_nhs"] == "03N", "lsoa21_code"])
    deprivation = pd.read_csv(imd, usecols=["lsoa21_code", "IMD_decile", "IMD_score"])
    values = (
        deprivation[deprivation["lsoa21_code"].isin(sheffield)]
        .rename(columns={"IMD_decile": "imd_decile", "IMD_score": "imd_score"})
        .assign(patients=100)
    )
    geojson = json.loads(boundaries.read_text(encoding="utf-8"))
    fig = charts.lsoa_choropleth(geojson, values, "Sheffield")
    assert len(values) > 300
    assert fig.layout.meta["lsoas_without_geometry_count"] == 0
    embedded = fig.data[0].geojson["features"]
    assert len(embedded) == len(values)
    for feature in embedded:
        for polygon in feature["geometry"]["coordinates"]:
            assert charts._ring_signed_area(polygon[0]) < 0
    # About 0.5 kB per LSOA once rounded: a sub-ICB map stays well under 1 MB.
    assert len(charts.figure_to_html(fig)) < 1_000_000


def test_map_geometries_are_rounded_as_the_chart_rounds_them(geojson):
    """The store rounds all LSOA boundaries at once as the chart rounds one (1e-5 degrees,
    repeated points dropped); a ring the rounding would collapse falls back to shapely's
    set_precision instead of failing."""
    import shapely
    from shapely.geometry import Polygon, shape

    from pophealth.api import _snapped

    shapes = np.array([shape(f["geometry"]) for f in geojson["features"]])
    for snapped, feature in zip(_snapped(shapes), geojson["features"], strict=True):
        oriented = shapely.orient_polygons(snapped, exterior_cw=True)
        expected = charts._display_geometry(feature["geometry"])
        assert _same_rings(json.loads(shapely.to_geojson(oriented)), expected)
    tiny = Polygon([(0, 0), (1e-7, 0), (1e-7, 1e-7), (0, 0)])
    kept, collapsed = _snapped(np.array([shapes[0], tiny]))
    assert collapsed.is_empty and not kept.is_empty
