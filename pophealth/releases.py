"""Release value objects: which edition of a source a computation uses, and how it is labelled.

An :class:`ImdRelease` replaces the bare ``"2025"``/``"2019"`` strings and the column names built
by f-string in several places: ``ImdRelease.of("2019").column("decile") == "imd2019_decile"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pophealth.errors import InputError

#: IoD releases a prepared store can carry, newest first.
IMD_YEARS: tuple[str, ...] = ("2025", "2019")
_IMD_MEASURES = ("score", "rank", "decile")


@dataclass(frozen=True)
class ImdRelease:
    """One English Indices of Deprivation release as used on LSOA 2021.

    Attributes:
        year: ``"2025"`` (IoD2025, published on LSOA 2021) or ``"2019"`` (IoD2019, published on
            LSOA 2011 and converted).
    """

    year: str

    def __post_init__(self) -> None:
        if self.year not in IMD_YEARS:
            raise InputError(f"imd must be '2025' or '2019', not {self.year!r}.")

    @classmethod
    def of(cls, value: str | int | ImdRelease) -> ImdRelease:
        """The release for ``"2025"``, ``2019``, ``"IoD2019"`` or an :class:`ImdRelease`."""
        if isinstance(value, ImdRelease):
            return value
        text = str(value).strip()
        return cls(text[3:] if text.lower().startswith("iod") else text)

    @property
    def name(self) -> str:
        """Short name, e.g. ``"IoD2025"``."""
        return f"IoD{self.year}"

    @property
    def label(self) -> str:
        """How profiles name the release (says when scores were converted between LSOA sets)."""
        return self.name if self.year == "2025" else f"{self.name} (converted to 2021 LSOAs)"

    @property
    def weights(self) -> str:
        """The weights behind the LSOA 2021 values of this release."""
        if self.year == "2025":
            return "none: published on LSOA 2021"
        return (
            "LSOA 2011 scores to LSOA 2021 by the ONS best-fit lookup, split LSOAs weighted by "
            "IoD2019 population; deciles re-derived from the national 2011 cut points"
        )

    def column(self, measure: str) -> str:
        """The prepared LSOA table's column for ``score``, ``rank`` or ``decile``."""
        if measure not in _IMD_MEASURES:
            raise InputError(f"IMD measure must be one of {_IMD_MEASURES}, not {measure!r}.")
        return f"imd{self.year}_{measure}"
