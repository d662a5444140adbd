"""Five-year age bands: the one definition shared by loaders, attribution and profiles.

GP list files publish bands ``0_4`` to ``90_94`` and ``95+``; Census 2021 TS007A publishes
``0_4`` to ``80_84`` and ``85_plus`` (canonical columns ``age_0_4`` … ``age_85_plus``).
"""

from __future__ import annotations

#: GP registration five-year age bands, youngest first (the last band is open: 95 and over).
AGE_BANDS: tuple[str, ...] = tuple(f"{a}_{a + 4}" for a in range(0, 95, 5)) + ("95+",)

#: Census 2021 TS007A five-year band columns, youngest first (the last is open: 85 and over).
CENSUS_AGE_COLUMNS: tuple[str, ...] = tuple(f"age_{a}_{a + 4}" for a in range(0, 85, 5)) + (
    "age_85_plus",
)


def band_lower(band: str) -> int:
    """Lower age of a band label: ``"65_69"`` -> 65, ``"95+"`` -> 95, ``"85_plus"`` -> 85."""
    return int(band.split("_")[0].rstrip("+"))
