"""The catalogue, the registered measures and the sources agree (one place per indicator)."""

import numpy as np
import pandas as pd
import pytest

from pophealth import api, attribution, indicators, sections
from pophealth.ages import AGE_BANDS
from pophealth.sources import SOURCES

KINDS = {"context", "outcome", "supply"}
STATISTICS = {"proportion", "rate", "mean", "count", "ratio", "share"}
POLARITIES = {"high is good", "low is good", "no judgement"}


def test_catalogue_measures_and_sources_agree():
    catalogue = indicators.load_catalogue()
    ids = list(catalogue["id"])
    assert len(ids) == len(set(ids)), "duplicate catalogue ids"
    # every catalogue indicator has exactly one registered measure, and no measure is orphaned
    assert set(ids) == set(attribution.MEASURES)
    for record in catalogue.to_dict("records"):
        assert record["kind"] in KINDS, record["id"]
        assert record["statistic"] in STATISTICS, record["id"]
        assert record["polarity"] in POLARITIES, record["id"]
        assert isinstance(record["headline"], bool), record["id"]
        assert record["sources"], f"{record['id']} names no source"
        for group in record["sources"]:
            unknown = set(group) - set(SOURCES)
            assert not unknown, f"{record['id']}: sources {unknown} are not in SOURCES"


def test_sections_and_headlines_are_read_from_the_catalogue():
    catalogue = indicators.load_catalogue()
    sections_in_code = {
        "population",
        "deprivation",
        "health",
        "ethnicity",
        "workforce",
        "workforce_team",
        "long_term_conditions",
        "core20plus5",
    }
    assert set(catalogue["section"]) == sections_in_code
    for name in sections_in_code:
        assert callable(getattr(sections, name))
        assert indicators.section_indicators(name) == list(
            catalogue.loc[catalogue["section"] == name, "id"]
        )
    assert api.HEADLINE_INDICATORS == tuple(catalogue.loc[catalogue["headline"], "id"])
    assert "gp_fte_per_10k_weighted" in api.HEADLINE_INDICATORS


def test_unavailable_indicators_follow_catalogue_sources():
    everything = set(SOURCES)
    assert indicators.unavailable_indicators(everything) == {}
    missing = indicators.unavailable_indicators(everything - {"payments"})
    team_weighted = [f"team_{g}_fte_per_10k_weighted" for g in ("gp", "nurse", "dpc", "admin")]
    assert missing == {
        "gp_fte_per_10k_weighted": "needs payments",
        "gp_qualified_permanent_fte_per_10k_weighted": "needs payments",
        **dict.fromkeys([*team_weighted, "team_fte_per_10k_weighted"], "needs payments"),
    }
    # an indicator with alternatives is unavailable only when every alternative is missing
    no_age = everything - {"practice_age_bands", "practice_single_age"}
    assert "pct_age_0_17" not in indicators.unavailable_indicators(no_age)
    assert "pct_age_0_17" in indicators.unavailable_indicators(no_age - {"census_ts007a"})


def test_demo_indicator_table_has_exactly_the_catalogue_ids(demo_data):
    built = set(demo_data.indicator_table["indicator_id"])
    assert built == set(indicators.load_catalogue()["id"])


def test_measure_ids_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        attribution.measure("pct_age_65_plus", "age")(lambda ages: None)


def test_age_counts_sum_bands_and_split_the_band_containing_the_cut():
    practice = attribution.AgeCounts(
        {int(b.split("_")[0].rstrip("+")): np.array([10.0]) for b in AGE_BANDS},
        np.array([200.0]),
    )
    assert practice.at_least(65)[0] == 7 * 10
    assert practice.at_least(95)[0] == 10
    assert practice.under(18)[0] == 3 * 10 + 0.6 * 10
    census = attribution.AgeCounts({lower: 1.0 for lower in range(0, 90, 5)}, 18.0)
    assert census.at_least(85) == 1.0
    with pytest.raises(ValueError, match="not a sum of five-year bands"):
        census.at_least(90)
    with pytest.raises(ValueError):
        census.at_least(72)


def test_census_measures_leave_out_tables_that_are_absent():
    lsoa = pd.DataFrame({"lsoa21_code": ["E01"], "tenure_social_rented": [3], "tenure_total": [9]})
    found = attribution.census_fractions(lsoa)
    assert list(found) == ["pct_social_rented"]
    assert found["pct_social_rented"][0][0] == 3 and found["pct_social_rented"][1][0] == 9


def test_lsoa_count_measures_count_lsoas_on_the_resident_basis_only():
    lsoa = pd.DataFrame(
        {"lsoa21_code": ["E1", "E2", "E3", "E4"], "imd2025_decile": [1.0, 1.0, 5.0, np.nan]}
    )
    release = attribution.ImdRelease("2025")
    num, den = attribution.pct_lsoas_most_deprived_10(lsoa, release)
    assert num.tolist() == [1.0, 1.0, 0.0, 0.0] and den.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert attribution.pct_lsoas_most_deprived_10(lsoa, attribution.ImdRelease("2019")) is None
    resident = attribution.lsoa_measures(lsoa, None, None, release)
    assert resident["pct_lsoas_most_deprived_10__num"].sum() == 2
    # counted LSOAs are not attributed to practice lists
    assert "pct_lsoas_most_deprived_10" not in attribution.lsoa_values(lsoa, release)
