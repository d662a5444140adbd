"""Data contracts: checked at the hand-offs, and docs/architecture.md generated from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_store_tables_pass_the_shortcut_and_it_never_passes_what_pandera_refuses(demo_prepared):
    for name, contract in contracts.STORE_CONTRACTS.items():
        frame = pd.read_parquet(demo_prepared / name)
        assert contract.plainly_valid(frame), name  # national tables skip pandera
    regs = pd.read_parquet(demo_prepared / "registrations.parquet")
    broken = {
        "a required column missing": regs.drop(columns="lsoa_status"),
        "a missing code": regs.assign(practice_code=regs["practice_code"].mask(regs.index == 3)),
        "a negative count": regs.assign(patients=regs["patients"].mask(regs.index == 5, -1)),
        "a value outside the set": regs.assign(
            lsoa_status=regs["lsoa_status"].mask(regs.index == 7, "elsewhere")
        ),
        "numbers as codes": regs.assign(practice_code=range(len(regs))),
        "text as counts": regs.assign(patients=regs["patients"].astype(str)),
    }
    for why, frame in broken.items():
        assert not contracts.REGISTRATIONS_TABLE.plainly_valid(frame), why
        with pytest.raises(contracts.ContractError):
            contracts.REGISTRATIONS_TABLE.validate(frame, why)
    payments = pd.read_parquet(demo_prepared / "history/static/payments.parquet")
    twice = pd.concat([payments, payments.head(1)], ignore_index=True)
    payments_contract = contracts.STORE_CONTRACTS["history/static/payments.parquet"]
    assert not payments_contract.plainly_valid(twice)
    with pytest.raises(contracts.ContractError, match="practice_code"):
        payments_contract.validate(twice, "a repeated practice")


def _column(field, rows: int, data) -> list | None:
    """Cells for one field: mostly valid, sometimes with flaws, of the wrong kind or absent."""
    mode = data.draw(st.sampled_from(["good", "good", "good", "flawed", "wrong kind", "absent"]))
    if mode == "absent":
        return None
    if field.kind in ("code", "text"):
        good = list(field.values) if field.values else ["A1", "B2", "C3", "D4", "E5", "F6"]
        bad, wrong = ["elsewhere", None, "", float("nan")], [1, 2.5]
    else:
        good, bad, wrong = [0, 1, 2, 3.5], [-1, None, float("nan")], ["1", "x"]
    pool = {"good": good, "flawed": good + bad, "wrong kind": wrong}[mode]
    return data.draw(st.lists(st.sampled_from(pool), min_size=rows, max_size=rows))


@settings(max_examples=400, deadline=None)
@given(
    contract=st.sampled_from(
        [
            contracts.REGISTRATIONS_TABLE,
            contracts.AGE_SEX_TABLE,
            contracts.PCN_WORKFORCE_TABLE,
            contracts.STORE_CONTRACTS["history/static/payments.parquet"],
        ]
    ),
    rows=st.integers(1, 6),
    data=st.data(),
)
def test_the_shortcut_passes_a_frame_only_when_pandera_does(contract, rows, data):
    columns = {f.name: _column(f, rows, data) for f in contract.fields}
    frame = pd.DataFrame({n: c for n, c in columns.items() if c is not None}, index=range(rows))
    if contract.plainly_valid(frame):
        contract.schema.validate(frame, lazy=True)  # pandera accepts it too
