"""Data contracts: checked at the hand-offs, and docs/architecture.md generated from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import pophealth
from pophealth import contracts
from pophealth.errors import PopHealthError

DOC = Path(__file__).parents[1] / "docs" / "architecture.md"


def test_architecture_doc_shows_the_contracts_as_declared():
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(contracts.DOC_START), text.index(contracts.DOC_END)
    current = text[start : end + len(contracts.DOC_END)]
    wanted = contracts.contracts_markdown()
    if os.environ.get("POPHEALTH_UPDATE_DOCS") and current != wanted:
        DOC.write_text(text.replace(current, wanted), encoding="utf-8")
        current = wanted
    assert current == wanted, "docs/architecture.md data contracts are stale"
    assert "`imd2025_score`" in current and "`imd_score`" not in current


def test_demo_store_tables_register_and_indicator_table_meet_their_contracts(
    demo_prepared, demo_data
):
    for name, contract in contracts.STORE_CONTRACTS.items():
        contract.validate(pd.read_parquet(demo_prepared / name), name)
    contracts.AREA_REGISTER.validate(demo_data.register, "register")
    contracts.INDICATOR_TABLE.validate(demo_data.indicator_table, "indicators")


def test_a_store_table_breaking_its_contract_is_refused_on_read(demo_prepared, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(demo_prepared, store)
    regs = pd.read_parquet(store / "registrations.parquet")
    regs.loc[regs.index[:2], "lsoa_status"] = "somewhere"
    regs.to_parquet(store / "registrations.parquet", index=False)
    with pytest.raises(contracts.ContractError, match="lsoa_status.*'somewhere'"):
        pophealth.load(store, cache=False)


def test_contract_errors_name_table_column_and_examples():
    frame = pd.DataFrame(
        {
            "practice_code": ["A1", "A1"],
            "sex": ["male", "x"],
            "age_band": ["0_4", "100+"],
            "patients": [3, -1],
        }
    )
    with pytest.raises(PopHealthError) as caught:
        contracts.AGE_SEX_TABLE.validate(frame, "test")
    message = str(caught.value)
    for part in ("practice_age_sex.parquet", "sex", "'x'", "age_band", "'100+'", "patients"):
        assert part in message
    with pytest.raises(contracts.ContractError, match="lsoa21_code"):
        contracts.LSOA_TABLE.validate(pd.DataFrame({"lsoa21_name": ["x"]}), "test")
    # an absent source's empty table has nothing to check
    assert contracts.PRACTICE_TABLE.validate(pd.DataFrame(), "test").empty
