"""Fast code look-ups and the sparse roll-up agree with the pandas operations they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pophealth import attribution
from pophealth.codes import isin, map_codes, positions

CODES = st.sampled_from(["A1", "B2", "C3", "D4", None])


@settings(max_examples=60, deadline=None)
@given(st.lists(CODES, max_size=30), st.lists(CODES, max_size=6))
def test_isin_matches_series_isin(codes, wanted):
    column = pd.Series(codes, dtype="str")
    np.testing.assert_array_equal(isin(column, wanted), column.isin(wanted).to_numpy())
    np.testing.assert_array_equal(isin(column, set(wanted)), column.isin(set(wanted)).to_numpy())


MAPPINGS = [
    pd.Series(["R1", "R2", None], index=["A1", "B2", "C3"], dtype="str"),
    pd.Series(["R1", "R2", None], index=["A1", "B2", "C3"], dtype=object),
    pd.Series([1, 2, 3], index=["A1", "B2", "C3"]),
    pd.Series([1.0, 2.0, np.nan], index=["A1", "B2", "C3"]),
    pd.Series([1, 2, None], index=["A1", "B2", "C3"], dtype="Int64"),
    pd.Series(pd.to_datetime(["2020-01-01", "2021-01-01", None]), index=["A1", "B2", "C3"]),
    pd.Series(["x"], index=[np.nan], dtype=object),
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(CODES, max_size=12),
    st.sampled_from(["str", object]),
    st.sampled_from(range(len(MAPPINGS))),
)
def test_map_codes_matches_series_map(codes, dtype, which):
    column = pd.Series(codes, dtype=dtype, index=range(5, 5 + len(codes)), name="code")
    mapping = MAPPINGS[which]
    pd.testing.assert_series_equal(map_codes(column, mapping), column.map(mapping))


@settings(max_examples=60, deadline=None)
@given(st.lists(CODES, max_size=30), st.lists(CODES.filter(bool), unique=True, max_size=4))
def test_positions_match_get_indexer(codes, keys):
    column = pd.Series(codes, dtype="str")
    want = pd.Index(keys, dtype="str").get_indexer(column)
    np.testing.assert_array_equal(positions(column, pd.Index(keys, dtype="str")), want)


def test_sparse_roll_up_matches_join_and_groupby():
    measures = pd.DataFrame(
        {
            "practice_code": pd.Series(["P1", "P2", "P3", "P4"], dtype="str"),
            "a__num": [1.0, np.nan, 3.0, 4.0],
            "a__den": [np.nan, np.nan, 2.0, 1.0],
        }
    )
    members = pd.DataFrame(
        {
            "practice_code": ["P1", "P2", "P2", "P9", "P3"],
            "area_code": ["X", "Y", "X", "Z", "Y"],
        }
    )
    got = attribution.aggregate_measures(measures, members, "practice_code")
    want = (
        members.merge(measures, on="practice_code")
        .drop(columns="practice_code")
        .groupby("area_code", as_index=False, sort=True)
        .sum(min_count=1)
    )
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
