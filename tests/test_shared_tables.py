"""Store-wide tables a batch run computes once and its kernels read (pophealth.shared_tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pophealth
from pophealth import profile_frames, shared_tables
from pophealth.forked import can_fork
from pophealth.shared_tables import (
    SHARED_TABLES_ENV,
    read_shared_table,
    shared_table_path,
    tables_key,
    write_shared_table,
)


def test_a_table_reads_back_as_written(tmp_path):
    frame = pd.DataFrame(
        {
            "area_code": pd.array(["A", "B", None], dtype="str"),
            "reason": pd.Series([None, "suppressed <5", None], dtype=object),
            "value": [1.5, np.nan, 3.0],
            "numerator": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
            "count": np.array([1, 2, 3], dtype="int64"),
        }
    )
    key = tables_key({"store": "x"})
    write_shared_table(frame, tmp_path, "indicator_table", key)
    back = read_shared_table(tmp_path, "indicator_table", key)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_column_type=False)
    assert back["reason"].dtype == object and back["reason"][0] is None
    assert str(back["numerator"].dtype) == "Int64" and back["count"].dtype == np.int64


def test_another_key_is_not_read_and_stale_files_go(tmp_path):
    frame = pd.DataFrame({"a": [1]})
    old, new = tables_key({"store": "old"}), tables_key({"store": "new"})
    write_shared_table(frame, tmp_path, "indicator_table", old)
    assert read_shared_table(tmp_path, "indicator_table", new) is None
    write_shared_table(frame, tmp_path, "indicator_table", new)
    assert not shared_table_path(tmp_path, "indicator_table", old).exists()
    assert read_shared_table(tmp_path, "indicator_table", new) is not None


def test_an_unreadable_shared_table_is_named_and_built_instead(tmp_path):
    key = tables_key({"store": "x"})
    path = write_shared_table(pd.DataFrame({"a": range(100)}), tmp_path, "indicator_table", key)
    path.write_bytes(path.read_bytes()[:40])  # truncated, as by a full disk
    with pytest.warns(UserWarning, match=r"indicator_table-.*could not be read.*building it"):
        assert read_shared_table(tmp_path, "indicator_table", key) is None


@pytest.fixture(scope="module")
def shared(demo_prepared, tmp_path_factory):
    """The demo store's tables shared as a run shares them, and a store that reads them."""
    folder = tmp_path_factory.mktemp("shared")
    computed = pophealth.load(demo_prepared, cache=False)
    written = computed.share_tables(folder)
    assert {p.name.split("-")[0] for p in written} == set(shared_tables.SHARED_TABLES)
    if can_fork():  # a forked child wrote the tables before the direction of travel
        assert computed._shared_by_child == {"tables": 3, "error": None}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SHARED_TABLES_ENV, str(folder))
        reader = pophealth.load(demo_prepared, cache=False)
        for name in shared_tables.SHARED_TABLES:
            getattr(reader, name)  # read while the variable is set
        assert reader.ready_trend_words() is not None
    return computed, reader


def _missing_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns with every missing value as None (pd.NA and None alike are missing)."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].where(out[column].notna(), None)
    return out


@pytest.mark.parametrize("name", shared_tables.SHARED_TABLES)
def test_kernels_read_the_same_tables_the_run_computed(shared, name):
    computed, reader = shared
    pd.testing.assert_frame_equal(
        _missing_as_none(getattr(reader, name)),
        _missing_as_none(getattr(computed, name)),
        check_dtype=False,
        check_column_type=False,
    )


def test_profiles_are_the_same_from_shared_tables(shared):
    """Every frame of every demo profile is the same whether built from the shared tables
    (and the shared trend words) or from tables the process built itself."""
    computed, reader = shared
    assert computed.ready_trend_words() is None or "trend_words" in computed.__dict__
    register = computed.register
    areas = register[register["level"].isin(["neighbourhood", "place", "system"])]
    for area in areas.to_dict("records"):
        mine = profile_frames.trend_frames(computed, area)
        theirs = profile_frames.trend_frames(reader, area)
        for key, value in mine.items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(
                    theirs[key], value, check_dtype=False, check_column_type=False
                )
            else:
                assert theirs[key] == value


def test_a_run_shares_its_tables_and_publishes_none(demo_site):
    """``pophealth run`` shared every store-wide table with its kernels (the manifest says
    which) from a temporary folder: the run folder holds only what is published."""
    import json

    manifest = json.loads((demo_site / "manifest.json").read_text(encoding="utf-8"))
    names = {name.split("-")[0] for name in manifest["shared_tables"]}
    assert names == set(shared_tables.SHARED_TABLES)
    assert not list(demo_site.rglob("*.parquet"))


def test_after_a_warm_up_the_first_profile_builds_only_from_shared_tables(
    demo_prepared, tmp_path, monkeypatch
):
    """A batch kernel's warm-up (``PopHealthData.warm_up``, run before the shared tables
    exist) leaves the first profile only the tables read from, or built from, the shared
    tables: nothing the warm-up could have built waits for the first profile."""
    import functools

    from pophealth import api

    folder = tmp_path / "shared"
    pophealth.load(demo_prepared, cache=False).share_tables(folder)
    monkeypatch.setenv(SHARED_TABLES_ENV, str(folder))
    data = pophealth.load(demo_prepared, cache=False)
    data.warm_up()
    assert set(api.WARM_UP_TABLES) <= set(data.__dict__)
    built: list[str] = []
    original = functools.cached_property.__get__

    def recording(self, instance, owner=None):
        if instance is not None and self.attrname not in instance.__dict__:
            built.append(self.attrname)
        return original(self, instance, owner)

    monkeypatch.setattr(functools.cached_property, "__get__", recording)
    area = data.register.query("level == 'neighbourhood'").iloc[0]["area_code"]
    data.profile(area)
    from_shared = {
        *shared_tables.SHARED_TABLES,
        "_shared_tables_key",
        "_shared_trend_words",
        "indicator_groups",
        "peers",
        "peer_pool_table",
        "similar_areas",
    }
    assert set(built) <= from_shared, sorted(set(built) - from_shared)
