import pytest

from pophealth.errors import PopHealthError
from pophealth.releases import ImdRelease


def test_imd_release_names_its_columns_label_and_weights():
    iod19 = ImdRelease.of("IoD2019")
    assert iod19 == ImdRelease.of(2019) == ImdRelease.of(iod19) == ImdRelease("2019")
    assert iod19.column("decile") == "imd2019_decile"
    assert ImdRelease.of("2025").column("score") == "imd2025_score"
    assert ImdRelease.of("2025").label == "IoD2025"
    assert iod19.label == "IoD2019 (converted to 2021 LSOAs)"
    assert "population" in iod19.weights and "LSOA 2021" in ImdRelease.of("2025").weights


def test_imd_release_rejects_unknown_releases_and_measures():
    with pytest.raises(PopHealthError, match="'2025' or '2019'"):
        ImdRelease.of("2015")
    with pytest.raises(ValueError, match="score"):
        ImdRelease.of("2025").column("quintile")
