"""Geography: area register, memberships, code resolution, analyst groupings."""

from __future__ import annotations

import pandas as pd
import pytest

from pophealth import geography
from pophealth.config import ConfigError, load_neighbourhood_groupings


@pytest.fixture
def practices():
    return pd.DataFrame(
        {
            "practice_code": ["A1", "A2", "A3", "A4"],
            "practice_name": ["One", "Two", "Three", "Four"],
            "pcn_code": ["U1", "U1", "U2", None],
            "pcn_name": ["PCN One", "PCN One", "PCN Two", None],
            "sicbl_code": ["E38A", "E38A", "E38B", "E38B"],
            "sicbl_name": ["Sub A", "Sub A", "Sub B", "Sub B"],
            "icb_code": ["E54X"] * 4,
            "icb_name": ["ICB X"] * 4,
            "registered_patients": [100, 200, 300, 400],
        }
    )


@pytest.fixture
def lsoa():
    return pd.DataFrame(
        {
            "lsoa21_code": ["L1", "L2", "L3"],
            "lad_code": ["E06A", "E06A", "E06B"],
            "lad_name": ["Lad A", "Lad A", "Lad B"],
            "icb_code": ["E54X"] * 3,
            "icb_name": ["ICB X"] * 3,
            "sicbl_code": ["E38A", "E38A", "E38B"],
            "sicbl_ods": ["01A", "01A", "01B"],
            "icb_ods": ["QXX"] * 3,
        }
    )


def test_register_has_every_level_basis_and_parent(practices, lsoa):
    reg = geography.build_area_register(practices, lsoa)
    got = set(zip(reg["area_code"], reg["level"], reg["basis"], strict=True))
    assert ("U1", "neighbourhood", "registered") in got
    assert ("E38A", "place", "registered") in got
    assert ("E06A", "place", "resident") in got
    assert ("E54X", "system", "registered") in got and ("E54X", "system", "resident") in got
    # PCN One is the whole of Sub A: it is compared with the next ancestor, never itself
    u1 = reg[reg["area_code"] == "U1"].iloc[0]
    assert u1["parent_code"] == "E54X" and u1["system_code"] == "E54X"
    u2 = reg[reg["area_code"] == "U2"].iloc[0]
    assert u2["parent_code"] == "E38B" and u2["system_code"] == "E54X"
    lad = reg[reg["area_code"] == "E06B"].iloc[0]
    assert lad["parent_code"] == "E54X" and lad["system_code"] == "E54X"
    assert "A4" not in set(geography.neighbourhood_practices(practices)["practice_code"])


def test_custom_groupings_replace_pcns(practices, lsoa, tmp_path):
    path = tmp_path / "ints.yaml"
    path.write_text(
        "neighbourhoods:\n  - {code: INT1, name: North, practices: [A1, a3]}\n"
        "  - {code: INT2, name: South, practices: [A2, A4]}\n"
    )
    groups = load_neighbourhood_groupings(path)
    reg = geography.build_area_register(practices, lsoa, groupings=groups)
    neigh = reg[reg["level"] == "neighbourhood"]
    assert set(neigh["area_code"]) == {"INT1", "INT2"}
    assert set(neigh["area_type"]) == {"custom"}


def test_groupings_with_unknown_practice_suggest_close_matches(practices, lsoa, tmp_path):
    path = tmp_path / "ints.yaml"
    path.write_text("neighbourhoods:\n  - {code: INT1, name: North, practices: [A1, A9]}\n")
    with pytest.raises(geography.UnknownAreaError, match=r"A9 \(closest: A\d"):
        geography.build_area_register(practices, lsoa, groupings=load_neighbourhood_groupings(path))


@pytest.mark.parametrize(
    "text, message",
    [
        ("neighbourhoods: []", "neighbourhoods"),
        ("neighbourhoods:\n  - {code: X, name: Y}", "must have"),
        (
            "neighbourhoods:\n  - {code: X, name: Y, practices: [A1]}\n"
            "  - {code: Z, name: W, practices: [A1]}",
            "one neighbourhood only",
        ),
    ],
)
def test_bad_groupings_files_name_the_fault(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_neighbourhood_groupings(path)


def test_unknown_code_lists_closest(practices, lsoa):
    reg = geography.build_area_register(practices, lsoa)
    with pytest.raises(geography.UnknownAreaError, match="Closest valid codes: U1"):
        geography.resolve_area_code(reg, "U11", {})
    assert geography.resolve_area_code(reg, "01a", {"01A": "E38A"}) == "E38A"
