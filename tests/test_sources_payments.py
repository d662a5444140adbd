# Official headers and rows are long literal lines.
# ruff: noqa: E501
import pytest
from loader_helpers import format_error
from reference_helpers import reference_file

from pophealth.sources.common import SourceFormatError
from pophealth.sources.payments import load_weighted_patients

SHIFTED_HEADER = (
    "NHS England (Region) code,NHS England (Region) Name,CCG Code,Sub ICB NAME,Code,CCG NAME,Practice Code,Practice Name,"
    "Number of Registered Patients (Last Known Figure),Number of Weighted Patients (Last Known Figure),"
    "Average payments per weighted patient\n"
)


def test_bom_shifted_labels_thousands(tmp_path):
    path = tmp_path / "nhspaymentsgp-22-23-prac-csv.csv"
    path.write_bytes(
        (
            "\ufeff"
            + SHIFTED_HEADER
            + 'Y63,NEY,16C,NENC - 16C,U89141,STOCKTON PCN,A81001,THE DENSHAM SURGERY,4029.25,"4,579.78",157.31\n'
            + "Y63,NEY,16C,NENC - 16C,U07032,NORTH STOCKTON PCN,A81002,QUEENS PARK,18000,20930.12,150\n"
        ).encode("utf-8")
    )
    frame = load_weighted_patients(path)
    assert list(frame.columns) == [
        "practice_code",
        "practice_name",
        "registered_patients",
        "weighted_patients",
    ]
    assert frame["practice_code"].tolist() == ["A81001", "A81002"]
    assert frame["weighted_patients"].tolist() == [4579.78, 20930.12]


def test_missing_weighted_column(tmp_path):
    message = format_error(
        load_weighted_patients,
        tmp_path / "p.csv",
        SHIFTED_HEADER.replace("Number of Weighted Patients", "Number of Weighted Patient")
        + "a,b,c,d,e,f,A1,X,1,2,3\n",
    )
    assert "Number of Weighted Patients (Last Known Figure)" in message
    assert "did you mean" in message


def test_non_numeric_names_row(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(SHIFTED_HEADER + "a,b,c,d,e,f,A1,X,1,2,3\na,b,c,d,e,f,A2,X,lots,2,3\n")
    with pytest.raises(SourceFormatError, match="line 3: 'lots'"):
        load_weighted_patients(path)


@pytest.mark.reference
def test_reference_payments_2022_23():
    frame = load_weighted_patients(reference_file("payments", "nhspaymentsgp-22-23-prac.csv"))
    assert len(frame) == 6669
    first = frame.iloc[0]
    # The organisation columns are shifted; the practice columns are found by label.
    assert (first["practice_code"], first["practice_name"]) == ("A81001", "THE DENSHAM SURGERY")
    assert (first["registered_patients"], first["weighted_patients"]) == (4029.25, 4579.78)
    # Weighting redistributes, it does not create patients: totals within 1%.
    ratio = frame["weighted_patients"].sum() / frame["registered_patients"].sum()
    assert 0.99 < ratio < 1.01
