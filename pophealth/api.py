"""The analyst-facing API: load a prepared store, list areas, build a profile.

    >>> data = pophealth.load("data/prepared")           # doctest: +SKIP
    >>> data.areas("neighbourhood")                       # doctest: +SKIP
    >>> p = data.profile("U12345")                        # doctest: +SKIP
    >>> p.indicators                                      # tidy table for the area

Everything here reads the prepared store once and derives the rest with pure functions;
a loaded :class:`PopHealthData` is cached per (store, options) within a process so that
batch runs in warm kernels do not re-read it for every area.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pophealth import (
    ages,
    attribution,
    contracts,
    geography,
    history,
    indicators,
    membership,
    prevalence,
    shared_tables,
    staffing,
    stats,
    trends,
)
from pophealth import peers as peer_areas
from pophealth._version import STORE_FORMAT, __version__
from pophealth.config import load_neighbourhood_groupings
from pophealth.errors import InputError, PopHealthError
from pophealth.forked import ForkedWork, can_fork
from pophealth.profile_frames import Profile, build_profile
from pophealth.releases import ImdRelease
from pophealth.store import FrameMemo, python_strings

AGE_BANDS = list(ages.AGE_BANDS)
#: Headline indicators (``headline: true`` in catalogue.yaml): columns of the area lists.
HEADLINE_INDICATORS = indicators.headline_indicators()

_CACHE: dict[tuple, PopHealthData] = {}

#: What :meth:`PopHealthData.warm_up` builds: the store-wide tables a profile uses that do not
#: depend on the shared tables (those are read, or built from them, by the first profile).
WARM_UP_TABLES = (
    "register",
    "icb_regions",
    "aliases",
    "practice_membership_table",
    "practice_members",
    "registration_shares",
    "matched_arrays",
    "practice_status_counts",
    "lsoa_geometries",
    "age_sex_matrix",
    "pcn_apportionment",
    "team_practices",
    "unassigned_practices",
    "qof_expected",
    "qof_registers",
    "qof_measures",
    "base_practice_measures",
    "practice_measures",
    "practice_indicators",
    "_practice_successions",
)
# registration rows stacked in one indicator-history computation (memory bound)
HISTORY_ROWS_PER_CHUNK = 2_000_000


class StoreError(PopHealthError, FileNotFoundError):
    """A prepared store that is missing or incomplete."""


def _store_key(prepared_dir: Path) -> str:
    manifest = prepared_dir / "manifest.json"
    if not manifest.exists():
        raise StoreError(
            f"{prepared_dir} is not a prepared store (no manifest.json). "
            f"Run `pophealth prepare RAW --out {prepared_dir}` first."
        )
    return f"{manifest.stat().st_mtime_ns}:{manifest.stat().st_size}"


def read_store_manifest(prepared_dir: Path) -> dict:
    """The store's manifest, after checking this pophealth can read the store.

    Raises:
        StoreError: The manifest is unreadable, the store was written by a pophealth with
            another store format, or a store file is missing; the message names the fix.
    """
    path = prepared_dir / "manifest.json"
    again = f"Fix: run `pophealth prepare RAW --out {prepared_dir}` again with this pophealth."
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise StoreError(f"{path} cannot be read ({error}). {again}") from error
    found = manifest.get("store_format") if isinstance(manifest, dict) else None
    if found != STORE_FORMAT:
        built_by = manifest.get("pophealth_version", "an unknown version")
        raise StoreError(
            f"{prepared_dir} was prepared by pophealth {built_by} (store format {found}); this "
            f"pophealth {__version__} reads store format {STORE_FORMAT}. {again}"
        )
    missing = [
        name
        for name in ("lsoa.parquet", "practices.parquet", "registrations.parquet")
        if not (prepared_dir / name).exists()
    ]
    if missing:
        raise StoreError(f"{prepared_dir} is incomplete: {', '.join(missing)} missing. {again}")
    return manifest


def load(
    prepared_dir: str | Path,
    *,
    neighbourhoods: str | Path | None = None,
    imd: str = "2025",
    cache: bool = True,
) -> PopHealthData:
    """Load a prepared store.

    Args:
        prepared_dir: Folder written by ``pophealth prepare``.
        neighbourhoods: Optional YAML of named practice groupings to use instead of PCNs.
        imd: ``"2025"`` (IoD2025, default) or ``"2019"`` (IoD2019 converted to 2021 LSOAs).
        cache: Reuse an already-loaded object for the same store and options in this process.

    Returns:
        A :class:`PopHealthData`.
    """
    prepared_dir = Path(prepared_dir).resolve()
    key = (
        str(prepared_dir),
        _store_key(prepared_dir),
        str(Path(neighbourhoods).resolve()) if neighbourhoods else None,
        str(imd),
    )
    if cache and key in _CACHE:
        return _CACHE[key]
    data = PopHealthData(prepared_dir, neighbourhoods=neighbourhoods, imd=str(imd))
    if cache:
        _CACHE.clear()  # one store per process: keep memory bounded
        _CACHE[key] = data
    return data


def _with_practice_qof(measures: pd.DataFrame, qof: pd.DataFrame) -> pd.DataFrame:
    """Practice measures plus the QOF measures of the practices that have them."""
    if len(qof.columns) > 1:
        measures = measures.merge(qof, on="practice_code", how="left")
    return measures.copy()  # one block, not dozens of merged fragments


def _note_modelled_qof(table: pd.DataFrame) -> pd.DataFrame:
    """Say in ``method`` that resident-basis QOF values are modelled from practice registers."""
    modelled = (table["basis"] == "resident") & table["indicator_id"].isin(
        prevalence.indicator_ids()
    )
    table.loc[modelled, "method"] = (
        table.loc[modelled, "method"] + f" ({prevalence.RESIDENT_METHOD_NOTE})"
    )
    return table


class cached_property(functools.cached_property):  # noqa: N801 - the decorator's own name
    """A ``functools.cached_property`` whose table is built with Python strings.

    Derived tables then hold text as the tables read from the store do (see
    :func:`pophealth.store.python_strings`).
    """

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        with python_strings():
            return super().__get__(instance, owner)


class IndicatorGroups:
    """The indicator table's rows by group, taken from the table when first asked for.

    Groups: ``(level, area type, system)``, ``(level, None, system)`` and ``("area", code)``.
    Splitting the whole table into ~4,000 frames up front took a second and a half of every
    batch kernel's start; a profile asks for a handful.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        self._table = table
        self._rows: dict[tuple, pd.DataFrame] = {}
        self._positions: dict[tuple, np.ndarray] = {}
        for key, positions in table.groupby(["level", "area_type", "system_code"]).indices.items():
            self._positions[key] = positions
        for (level, system), positions in table.groupby(["level", "system_code"]).indices.items():
            self._positions[(level, None, system)] = positions
        for code, positions in table.groupby("area_code").indices.items():
            self._positions[("area", code)] = positions

    def get(self, key: tuple, default: Any = None) -> Any:
        """The group's rows (in table order), or ``default`` when there is no such group."""
        if key not in self._positions:
            return default
        if key not in self._rows:
            self._rows[key] = self._table.iloc[self._positions[key]]
        return self._rows[key]

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def __getitem__(self, key: tuple) -> pd.DataFrame:
        if key not in self._positions:
            raise KeyError(key)
        return self.get(key)


_SEP = "|"  # between a period and a code in stacked history tables


def _tagged(frame: pd.DataFrame, tag: str, *columns: str) -> pd.DataFrame:
    """``frame`` with each of ``columns`` prefixed by ``tag`` (``<period>|``)."""
    return frame.assign(**{c: tag + frame[c].astype(str) for c in columns if c in frame})


def _rows_at(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]``, as a slice where the positions are consecutive.

    The history tables are stored period by period, so each period's rows are one run; a
    slice of Arrow-backed text takes no copy, where a take copied a million codes a period.
    """
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        if np.all(np.diff(positions) == 1):
            return frame.iloc[positions[0] : positions[-1] + 1]
    return frame.iloc[positions]


def _untouched(frame: pd.DataFrame, _tag: str, *_columns: str) -> pd.DataFrame:
    """``frame`` as it is (a history chunk of one period needs no tags)."""
    return frame


def _tagged_register(register: pd.DataFrame, tag: str) -> pd.DataFrame:
    """The area register with area and parent codes prefixed by ``tag`` (one period's areas)."""
    return _tagged(register, tag, "area_code").assign(
        parent_code=(tag + register["parent_code"].astype("string")).astype(object)
    )


def _without_tag(codes: pd.Series, sep: str = _SEP) -> np.ndarray:
    """Codes with their ``<period><sep>`` tag removed (missing codes stay missing), as objects."""
    values = codes.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, code in enumerate(values.tolist()):
        # a plain loop: ~10x pandas' str.split on a million tagged codes
        out[i] = code.split(sep, 1)[-1] if isinstance(code, str) else code
    return out


def _untagged(table: pd.DataFrame, period: pd.Series, sep: str = _SEP) -> pd.DataFrame:
    """A stacked history table (codes tagged ``<period><sep>``) benchmarked and untagged.

    Each period's rows compare with that period's ``ALL`` (England, or all loaded areas).
    """
    table = indicators.add_benchmarks(
        table.assign(period=period.to_numpy(dtype=object)),
        (period + sep + geography.ALL_LOADED_CODE).to_numpy(dtype=object),
    )
    untag = {column: _without_tag(table[column], sep) for column in ("area_code", "parent_code")}
    table = table.assign(**untag, period=period.to_numpy(dtype=object))
    return table.sort_values("period", kind="stable").reset_index(drop=True)


#: Grid the maps' LSOA boundaries are snapped to, in degrees (1e-5: about 1.1 m north-south).
MAP_GRID_DEGREES = 1e-5


def _snapped(geometries: np.ndarray) -> np.ndarray:
    """Geometries with coordinates rounded to :data:`MAP_GRID_DEGREES`, repeated points dropped.

    What the map chart does to a geometry (``charts._display_geometry``), for all LSOAs at once:
    a tenth of the time of ``shapely.set_precision``, which also re-checks topology. A ring the
    rounding would collapse cannot be rounded this way; then ``set_precision`` does it.
    """
    import shapely

    decimals = round(-np.log10(MAP_GRID_DEGREES))
    try:
        rounded = shapely.transform(geometries, lambda xy: np.round(xy, decimals))
        return shapely.remove_repeated_points(rounded, 0.0)
    except shapely.errors.GEOSException:
        return shapely.set_precision(geometries, MAP_GRID_DEGREES)


class PopHealthData:
    """A prepared store plus the derived geography and indicator tables."""

    def __init__(self, prepared_dir: Path, *, neighbourhoods=None, imd: str = "2025"):
        self.prepared_dir = Path(prepared_dir)
        _store_key(self.prepared_dir)
        self.manifest = read_store_manifest(self.prepared_dir)
        available = self.manifest.get("imd_releases", [])
        release = ImdRelease.of(imd)
        if available and imd not in available:
            raise InputError(
                f"IoD{imd} is not in this prepared store (available: "
                f"{', '.join('IoD' + r for r in available)}). Add its File 7 (and, for IoD2019, "
                "the LSOA 2011→2021 lookup) to the raw folder and prepare again."
            )
        self.imd = release.year
        self.imd_release = release
        self.memo = FrameMemo()
        self.lsoa = self._read_table("lsoa.parquet")
        self.practices = self._read_table("practices.parquet")
        self.registrations = self._read_table("registrations.parquet")
        self.age_sex = self._read_table("practice_age_sex.parquet")
        # England's and the regions' measures from the national files (stores prepared before
        # issue 11 lack it: England is then the sum of what was loaded)
        national = self.prepared_dir / "national.parquet"
        self.national = (
            self._read_table("national.parquet") if national.exists() else pd.DataFrame()
        )
        pcn_file = self.prepared_dir / contracts.PCN_WORKFORCE_TABLE.name  # optional store table
        self.pcn_staff = self._read_table(pcn_file.name) if pcn_file.exists() else None
        qof_path = self.prepared_dir / "qof_prevalence.parquet"
        self.qof = self._read_table(qof_path.name) if qof_path.exists() else pd.DataFrame()
        self.groupings = load_neighbourhood_groupings(neighbourhoods) if neighbourhoods else None
        self.neighbourhoods_file = str(neighbourhoods) if neighbourhoods else None

    def _read_table(self, file_name: str) -> pd.DataFrame:
        path = self.prepared_dir / file_name
        with python_strings():
            frame = pd.read_parquet(path)
        return contracts.validate_store_table(file_name, frame, path)

    # -- geography -------------------------------------------------------------------------
    @cached_property
    def register(self) -> pd.DataFrame:
        """Every area with level, basis, parent and system."""
        register = geography.build_area_register(
            self.practices,
            self.lsoa,
            self.registrations,
            self.groupings,
            comparator=self.comparator,
            regions=self.icb_regions,
        )
        return contracts.AREA_REGISTER.validate(register, "the area register")

    @cached_property
    def icb_regions(self) -> pd.DataFrame:
        """``icb_code, region_code, region_name``: each ICB's NHS England region, where known.

        Only regions whose values the national table holds are used (a region is a parent
        only when its own figures come from all of its ICBs).
        """
        columns = ["icb_code", "region_code", "region_name"]
        if "region_code" not in self.practices or not len(self.national):
            return pd.DataFrame(columns=columns)
        known = set(self.national.loc[self.national["level"] == "region", "area_code"])
        found = self.practices.dropna(subset=["icb_code", "region_code"])
        found = found[found["region_code"].isin(known)]
        # an ICB's region is the region of most of its practices
        top = found.groupby(["icb_code", "region_code", "region_name"]).size().reset_index()
        top = top.sort_values(["icb_code", 0], ascending=[True, False])
        return top.drop_duplicates("icb_code")[columns].reset_index(drop=True)

    @cached_property
    def aliases(self) -> dict[str, str]:
        """ODS codes (sub-ICB, ICB) accepted in place of ONS area codes."""
        out = {}
        for ods, ons in (("sicbl_ods", "sicbl_code"), ("icb_ods", "icb_code")):
            pairs = self.lsoa[[ods, ons]].dropna().drop_duplicates()
            out.update(
                {str(a).upper(): str(b) for a, b in zip(pairs[ods], pairs[ons], strict=True)}
            )
        return out

    @property
    def comparator(self) -> str:
        """Name of the whole-population comparator (England, or all loaded areas)."""
        national = self.manifest.get("national", {})
        return geography.comparator_name(
            self.practices,
            self.lsoa,
            national_icbs=national.get("icbs") if len(self.national) else None,
            synthetic=bool(self.manifest.get("synthetic")),
        )

    def areas(self, level: str | None = None, system: str | None = None) -> pd.DataFrame:
        """Areas at a level (neighbourhood/place/system), optionally within one system.

        Returns:
            One row per area and basis, with headline indicator values.
        """
        reg = self.register
        if level is not None:
            if level not in geography.LEVELS:
                raise InputError(
                    f"level must be one of {', '.join(geography.LEVELS)}, not {level!r}."
                )
            reg = reg[reg["level"] == level]
        else:
            reg = reg[reg["level"].isin(geography.LEVELS)]
        if system is not None:
            code = self.resolve_system(system)
            reg = reg[reg["system_code"] == code]
        heads = self.indicator_table[self.indicator_table["indicator_id"].isin(HEADLINE_INDICATORS)]
        wide = heads.pivot_table(
            index=["area_code", "basis"], columns="indicator_id", values="value", aggfunc="first"
        ).reset_index()
        return reg.merge(wide, on=["area_code", "basis"], how="left").reset_index(drop=True)

    def resolve_system(self, code: str) -> str:
        """Canonical ICB code for an ONS (E54…) or ODS (Q…) code, or a clear error."""
        systems = self.register[self.register["level"] == "system"]["area_code"].unique().tolist()
        upper = code.strip().upper()
        if upper in systems:
            return upper
        if upper in self.aliases and self.aliases[upper] in systems:
            return self.aliases[upper]
        ods = [k for k, v in self.aliases.items() if v in systems]
        raise geography.UnknownAreaError(geography.unknown_code_message("ICB", code, systems + ods))

    def resolve_area(self, code: str, basis: str | None = None) -> dict:
        """The register row of an area (ODS codes accepted), or a clear error."""
        canonical = geography.resolve_area_code(
            self.register[self.register["level"].isin(geography.LEVELS)], code, self.aliases
        )
        rows = self.register[self.register["area_code"] == canonical]
        if basis is not None:
            if basis not in set(rows["basis"]):
                raise InputError(
                    f"Area {canonical} has no {basis!r} basis (available: "
                    f"{', '.join(sorted(rows['basis']))})."
                )
            rows = rows[rows["basis"] == basis]
        return rows.sort_values("basis").iloc[0].to_dict()

    @cached_property
    def practice_membership_table(self) -> pd.DataFrame:
        """``practice_code, area_code`` for every registered-basis area."""
        return geography.practice_memberships(self.practices, self.groupings)

    @cached_property
    def lsoa_membership_table(self) -> pd.DataFrame:
        """``lsoa21_code, area_code`` for every resident-basis area."""
        return geography.lsoa_memberships(self.lsoa)

    @cached_property
    def practice_members(self) -> dict[str, np.ndarray]:
        """Practice codes of every registered-basis area."""
        members = self.practice_membership_table
        return {
            code: group.to_numpy(dtype=object)
            for code, group in members.groupby("area_code")["practice_code"]
        }

    @cached_property
    def lsoa_members(self) -> dict[str, np.ndarray]:
        """LSOA codes of every resident-basis area."""
        members = self.lsoa_membership_table
        return {
            code: group.to_numpy(dtype=object)
            for code, group in members.groupby("area_code")["lsoa21_code"]
        }

    @cached_property
    def registration_shares(self) -> pd.DataFrame:
        """Registrations with each row's share of its practice's list and the LSOA's IMD decile."""
        shares = attribution.lsoa_practice_shares(self.registrations)
        decile = self.lsoa.set_index("lsoa21_code")[self.imd_release.column("decile")]
        return shares.assign(imd_decile=shares["lsoa_code"].map(decile))

    @cached_property
    def matched_arrays(self) -> dict[str, np.ndarray]:
        """Matched registrations as integer arrays for fast per-area selections.

        ``practice`` and ``lsoa`` are factorised codes into ``practice_codes`` and
        ``lsoa_codes``; ``patients`` and ``decile`` are per row.
        """
        regs = self.registration_shares
        regs = regs[regs["lsoa_status"] == attribution.MATCHED]
        practice, practice_codes = pd.factorize(regs["practice_code"].to_numpy(dtype=object))
        lsoa, lsoa_codes = pd.factorize(regs["lsoa_code"].to_numpy(dtype=object))
        return {
            "practice": practice,
            "practice_codes": pd.Index(practice_codes),
            "lsoa": lsoa,
            "lsoa_codes": pd.Index(lsoa_codes),
            "patients": regs["patients"].to_numpy(dtype=float),
            "decile": regs["imd_decile"].fillna(0).to_numpy(dtype=int),
            "share": regs["share"].fillna(0).to_numpy(dtype=float),
        }

    @cached_property
    def practice_status_counts(self) -> pd.DataFrame:
        """Practices x LSOA status (matched, closed, unknown, wales, outside) patients."""
        return self.registrations.pivot_table(
            index="practice_code",
            columns="lsoa_status",
            values="patients",
            aggfunc="sum",
            fill_value=0,
        )

    @cached_property
    def lsoa_geometries(self) -> dict[str, str]:
        """GeoJSON geometry text of every LSOA in the store (WGS84), in display form for maps.

        Coordinates are on a 1e-5 degree grid and rings wound for d3-geo
        (:data:`pophealth.charts.DISPLAY_READY`).
        """
        path = self.prepared_dir / "boundaries.parquet"
        if not path.exists():
            return {}
        import geopandas as gpd
        import shapely

        shapes = gpd.read_parquet(path)
        # coordinates to 1e-5 degrees (about a metre): a page's map is mostly coordinates;
        # exterior rings clockwise, holes anticlockwise, as d3-geo (plotly's maps) wants them,
        # so each profile embeds them as they are (charts.DISPLAY_READY)
        oriented = shapely.orient_polygons(_snapped(shapes.geometry.to_numpy()), exterior_cw=True)
        text = shapely.to_geojson(oriented, indent=None)
        return dict(zip(shapes["lsoa21_code"].astype(str), text, strict=True))

    @cached_property
    def age_sex_matrix(self) -> pd.DataFrame:
        """Practices x (sex, age band) registered patients."""
        return attribution.age_sex_matrix(self.age_sex)

    # -- the whole team (issue13) ---------------------------------------------------------
    @cached_property
    def pcn_apportionment(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """PCN-employed staff shared to member practices by registered patients, and the rest.

        ``None`` when the store has no PCN workforce (the team indicators are then not built).
        """
        if self.pcn_staff is None or not len(self.practices):
            return None
        return staffing.apportion_pcn_staff(self.pcn_staff, self.practices, "registered_patients")

    @cached_property
    def team_practices(self) -> pd.DataFrame:
        """Practices plus their share of their PCN's staff (``pcn_<group>_fte``, ``pcn_status``)."""
        if self.pcn_apportionment is None:
            return self.practices
        return staffing.with_pcn_staff(self.practices, self.pcn_staff)

    # -- indicators ------------------------------------------------------------------------
    @cached_property
    def base_practice_measures(self) -> pd.DataFrame:
        """Registered-basis measures per practice from the non-QOF sources."""
        return attribution.practice_measures(
            self.team_practices, self.registrations, self.age_sex, self.lsoa, self.imd_release
        )

    @cached_property
    def qof_expected(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Recorded vs expected registers per practice and the model fit (one fit per register).

        ``prepare`` fits the models once per IoD release on every practice of the national
        files (before ``--systems`` cuts the store); a store without them refits here on the
        practices it holds.
        """
        stored = self.prepared_dir / "qof_expected.parquet"
        fits = self.manifest.get("qof_model", {})
        if stored.exists() and isinstance(fits, dict) and self.imd in fits:
            rows = self._read_table(stored.name)
            rows = rows[rows["imd"] == self.imd].drop(columns="imd").reset_index(drop=True)
            return rows, pd.DataFrame(fits[self.imd])
        if not len(self.qof) or not len(self.age_sex):
            return pd.DataFrame(), pd.DataFrame()
        return prevalence.expected_from_store(
            self.qof_registers, self.age_sex, self.base_practice_measures
        )

    @cached_property
    def qof_registers(self) -> pd.DataFrame:
        """The QOF year's rows seen through today's practices (the membership rule).

        A practice that closed after the QOF year is carried by its successor where the ODS
        successor file says so (``membership.carry_to_successors``), as in the release history
        and in England's values. ``prepare`` stores the rows carried already; carrying again with
        the store's successions (``prepare --add`` may bring a newer file) changes nothing else.
        """
        if not len(self.qof):
            return self.qof
        mapping = membership.successor_mapping(
            self._practice_successions, self.practices.get("practice_code", ())
        )
        return membership.carry_to_successors(self.qof, mapping)

    @cached_property
    def qof_measures(self) -> pd.DataFrame:
        """QOF measures per practice (prevalence, recorded vs expected, burden)."""
        if not len(self.qof):
            return pd.DataFrame({"practice_code": pd.Series(dtype=object)})
        return prevalence.qof_practice_measures(
            self.qof_registers, self.team_practices, self.qof_expected[0]
        )

    @cached_property
    def practice_measures(self) -> pd.DataFrame:
        """Registered-basis measures per practice."""
        return _with_practice_qof(self.base_practice_measures, self.qof_measures)

    @cached_property
    def lsoa_measures(self) -> pd.DataFrame:
        """Resident-basis measures per LSOA (QOF measures modelled from practice registers)."""
        out = attribution.lsoa_measures(
            self.lsoa, self.registrations, self.team_practices, self.imd_release
        )
        return prevalence.with_resident_qof(out, self.registrations, self.qof_measures).copy()

    @cached_property
    def registered_area_measures(self) -> pd.DataFrame | None:
        """Practice measures summed to every registered-basis area (None without practices)."""
        if not len(self.practices):
            return None
        return attribution.aggregate_measures(
            self.practice_measures, self.practice_membership_table, "practice_code"
        )

    @cached_property
    def registered_measures(self) -> pd.DataFrame | None:
        """Registered-basis area measures, England's and the regions' from the national files."""
        return self._with_national(self.registered_area_measures, "registered")

    @cached_property
    def _shared_tables_key(self) -> str:
        """Key of what store-wide tables depend on (see :mod:`pophealth.shared_tables`)."""
        manifest = self.prepared_dir / "manifest.json"
        groupings = Path(self.neighbourhoods_file) if self.neighbourhoods_file else None
        return shared_tables.tables_key(
            {
                "version": __version__,
                "store": str(self.prepared_dir.resolve()),
                "manifest": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                "neighbourhoods": hashlib.sha256(groupings.read_bytes()).hexdigest()
                if groupings
                else None,
                "imd": self.imd,
            }
        )

    def _read_shared(self, name: str) -> pd.DataFrame | None:
        """Store-wide table ``name`` as a batch run shared it (None: not shared or unreadable)."""
        folder = shared_tables.shared_tables_dir()
        if folder is None:
            return None
        return shared_tables.read_shared_table(folder, name, self._shared_tables_key)

    def _shared(self, name: str, build: Any) -> pd.DataFrame:
        """Store-wide table ``name``: read where a batch run shared it, else built here."""
        found = self._read_shared(name)
        return build() if found is None else found

    def warm_up(self, shared: bool = False) -> None:
        """Build the store-wide tables every profile uses that no shared table provides.

        A batch run's kernels (or its fork server, :mod:`pophealth.runner.kernel_fork`) call
        this as soon as they start (the runner's ``warm_code``), while the run's own process
        is still writing the shared tables (:mod:`pophealth.shared_tables`); the tables built
        from those wait for the first profile, or for ``shared=True``.
        ``tests/test_shared_tables.py`` checks the first profile after a warm-up builds
        nothing else.

        Args:
            shared: Also build the tables that come from the shared tables (call once they
                exist: the fork server does, before forking the kernels): it builds the first
                neighbourhood's profile, which builds every store-wide table a profile uses.
        """
        for name in WARM_UP_TABLES:
            getattr(self, name)
        if shared:
            register = self.register
            areas = register.loc[register["level"] == "neighbourhood", "area_code"]
            if len(areas):
                self.profile(str(areas.iloc[0]))

    def share_tables(self, folder: str | Path) -> list[Path]:
        """Write the store-wide tables for a batch run's kernels (:mod:`pophealth.shared_tables`).

        Args:
            folder: The run's shared-tables folder; kernels started with
                :data:`~pophealth.shared_tables.SHARED_TABLES_ENV` set to it read them.

        Returns:
            The files written (the history only when the store has one).
        """
        # without a history the others are the current table's (no work to share)
        names = shared_tables.SHARED_TABLES if self._period_views else ("indicator_table",)
        self._history_in_two = True  # the kernels wait for these: both cores work them out

        def write(name: str) -> Path:
            return shared_tables.write_shared_table(
                getattr(self, name), Path(folder), name, self._shared_tables_key
            )

        if "trend_words" not in names or not can_fork():
            return [write(name) for name in names]
        # the direction of travel is worked out from the history; meanwhile a forked child
        # writes the tables already worked out (a few seconds of conversion the kernels wait
        # for). Whatever the child does not write is written here.
        first = [name for name in names if name != "trend_words"]
        for name in first:
            getattr(self, name)
        with ForkedWork(lambda: [str(write(name)) for name in first]) as child:
            _ = self.trend_words
            written = child.result()
        self._shared_by_child = {"tables": len(first), "error": child.error}
        paths = [Path(p) for p in written] if written is not None else [write(n) for n in first]
        return [*paths, write("trend_words")]

    @cached_property
    def indicator_table(self) -> pd.DataFrame:
        """The tidy indicator table for every area, basis and indicator."""
        return self._shared("indicator_table", self._build_indicator_table)

    def _build_indicator_table(self) -> pd.DataFrame:
        registered = self.registered_measures
        resident = None
        if len(self.lsoa):
            resident = attribution.aggregate_measures(
                self.lsoa_measures, self.lsoa_membership_table, "lsoa21_code"
            )
        resident = self._with_national(resident, "resident")
        table = indicators.compute_indicator_table(
            self.register,
            registered,
            resident,
            ethnicity_definition=attribution.ethnicity_definition(self.lsoa),
            resident_weights=attribution.deprivation_population(self.lsoa, self.imd_release)[1],
        )
        return contracts.INDICATOR_TABLE.validate(_note_modelled_qof(table), "the indicator table")

    def _with_national(self, measures: pd.DataFrame | None, basis: str) -> pd.DataFrame | None:
        """Area measures with England's and the regions' rows from the national files."""
        if measures is None or not len(self.national):
            return measures
        national = self.national[
            (self.national["basis"] == basis) & (self.national["imd"] == self.imd)
        ]
        if not len(national):
            return measures
        national = national[[c for c in national.columns if c in measures.columns]]
        local = measures[~measures["area_code"].isin(set(national["area_code"]))]
        return pd.concat([local, national], ignore_index=True)

    @cached_property
    def practice_indicators(self) -> pd.DataFrame:
        """Per-practice values for workforce-against-need views and inverse care law."""
        m = self.practice_measures
        out = self.practices[["practice_code", "practice_name", "registered_patients"]].copy()
        out = out.merge(m, on="practice_code", how="left")
        with np.errstate(invalid="ignore", divide="ignore"):
            out["imd_score"] = out.get("imd_score__num", np.nan) / out.get("imd_score__den", np.nan)
            num = out.get("gp_fte_per_10k_weighted__num", np.nan)
            den = out.get("gp_fte_per_10k_weighted__den", np.nan)
            out["gp_fte_per_10k_weighted"] = np.where(den > 0, num / den * 10_000, np.nan)
        out["gp_fte"] = self.practices.get("gp_fte", np.nan)
        out["weighted_patients"] = self.practices.get("weighted_patients", np.nan)
        keep = out.dropna(subset=["imd_score"])
        groups = stats.weighted_quantile_groups(
            keep[["practice_code", "imd_score", "registered_patients"]],
            value="imd_score",
            weight="registered_patients",
            n_groups=5,
        )
        out = out.merge(groups[["practice_code", "quantile_group"]], on="practice_code", how="left")
        return out.rename(columns={"quantile_group": "imd_quintile"})[
            [
                "practice_code",
                "practice_name",
                "registered_patients",
                "weighted_patients",
                "gp_fte",
                "imd_score",
                "imd_quintile",
                "gp_fte_per_10k_weighted",
            ]
        ]

    @cached_property
    def indicator_groups(self) -> IndicatorGroups:
        """The indicator table split by (level, area type, system) and by area code."""
        return IndicatorGroups(self.indicator_table)

    @cached_property
    def unassigned_practices(self) -> dict[str, tuple[int, float]]:
        """Per system: practices in no neighbourhood and their registered patients."""
        if not len(self.practices):
            return {}
        grouped = set(self.practice_members_by_level("neighbourhood"))
        loose = self.practices[~self.practices["practice_code"].isin(grouped)]
        sums = loose.groupby("icb_code")["registered_patients"].agg(["count", "sum"])
        return {str(k): (int(r["count"]), float(r["sum"])) for k, r in sums.iterrows()}

    def practice_members_by_level(self, level: str) -> set[str]:
        """Practice codes that belong to any area of a registered-basis level."""
        codes = self.register.loc[self.register["level"] == level, "area_code"]
        members = [self.practice_members.get(c, ()) for c in codes]
        return {str(p) for group in members for p in group}

    @cached_property
    def peers(self) -> pd.DataFrame:
        """Peer ranges by level, basis and indicator."""
        return indicators.peer_summary(self.indicator_table)

    @cached_property
    def peer_pool_table(self) -> pd.DataFrame:
        """Indicator rows of every area similar areas are drawn from.

        The indicator table, plus (with analyst neighbourhoods) the national PCNs that share no
        practice with a custom neighbourhood, so custom neighbourhoods find peers nationally too.
        """
        table = self.indicator_table
        if self.groupings is None or not len(self.practices):
            return table
        grouped = self.practices["practice_code"].isin(self.groupings["practice_code"])
        # a PCN sharing any practice with a custom neighbourhood is not a separate area
        overlapping = set(self.practices.loc[grouped, "pcn_code"].dropna())
        pcn = self.practices[~self.practices["pcn_code"].isin(overlapping) & ~grouped]
        register = geography.build_area_register(pcn, self.lsoa.iloc[:0], None, None)
        register = register[register["level"] == "neighbourhood"]
        membership = geography.neighbourhood_practices(pcn)[["practice_code", "area_code"]]
        measures = attribution.aggregate_measures(
            self.practice_measures, membership, "practice_code"
        )
        extra = indicators.compute_indicator_table(register, measures, None)
        extra = extra[~extra["area_code"].isin(table["area_code"])]
        return pd.concat([table, extra], ignore_index=True)

    @cached_property
    def similar_areas(self) -> dict[tuple[str, str], tuple]:
        """Nearest-neighbour peers per (level, basis): ``(peers, method, excluded)``.

        See :mod:`pophealth.peers` and ``docs/peers.md``. A level with fewer than two comparable
        areas has no entry.
        """
        table = self.peer_pool_table
        regions = self.icb_regions
        if len(regions):
            # peers within region too: each area is in its system's NHS England region
            region_of = regions.set_index("icb_code")["region_code"]
            table = table.assign(region_code=table["system_code"].map(region_of))
        out = {}
        for (level, basis), _ in table.groupby(["level", "basis"]):
            if level == "england":
                continue
            matrix, excluded = peer_areas.needs_matrix(table, level, basis)
            if len(matrix) < 2:
                continue
            found, method = peer_areas.nearest_peers(matrix)
            out[(level, basis)] = (found, method, excluded)
        return out

    # -- release history (pophealth.history, docs/history.md) -------------------------------
    @cached_property
    def history_tables(self) -> dict[str, pd.DataFrame]:
        """The store's per-period practices, registrations and age-sex tables (may be empty).

        Text is held in Arrow (not as Python strings, :func:`pophealth.store.python_strings`):
        these tables only feed the whole-store history computation, where reading 12 months
        of England took a third of the time as Python strings and vectorised text operations
        are faster in Arrow; the indicator history it gives is the same.
        """
        with pd.option_context("mode.string_storage", "pyarrow"):
            return history.read_history(self.prepared_dir)

    @property
    def periods(self) -> list[str]:
        """Periods (``YYYY-MM``) in the store's history, oldest first; the current one if none."""
        listed = self.manifest.get("history", {}).get("periods", [])
        return list(listed) or [str(self.manifest.get("as_of", ""))[:7]]

    @property
    def current_period(self) -> str:
        """Period (``YYYY-MM``) of the store's current release (its as-of month)."""
        return str(self.manifest.get("as_of", ""))[:7]

    @cached_property
    def _practice_successions(self) -> pd.DataFrame | None:
        """GP practice successions from the ODS successor file (None when not prepared)."""
        return history.read_successors(self.prepared_dir)

    @cached_property
    def _period_views(self) -> dict[str, tuple[PopHealthData, pd.DataFrame]]:
        views = {}
        tables = self.history_tables
        if "practices" not in tables:
            return views
        # each table's rows of each period, found in one pass (not a text comparison a period)
        rows_of = {
            name: frame.groupby("period", sort=False).indices for name, frame in tables.items()
        }
        for period in self.periods:
            own = {
                name: _rows_at(frame, rows_of[name].get(period, np.array([], dtype=np.intp)))
                .drop(columns="period")
                .reset_index(drop=True)
                for name, frame in tables.items()
            }
            for name in history.PRACTICE_TABLES:
                own.setdefault(name, getattr(self, history.STORE_ATTRIBUTES[name]).iloc[:0])
            pcn_staff = own.pop("pcn_workforce", None)
            ruled, changes = history.apply_membership_rule(
                own, self.practices, self._practice_successions
            )
            view = object.__new__(PopHealthData)
            view.__dict__.update(
                prepared_dir=self.prepared_dir,
                manifest=self.manifest,
                imd=self.imd,
                imd_release=self.imd_release,
                memo=FrameMemo(),
                lsoa=self.lsoa,
                # QOF years have periods of their own (qof_indicator_history): no month has them
                qof=pd.DataFrame(),
                practices=ruled["practices"],
                registrations=ruled["registrations"],
                age_sex=ruled["practice_age_sex"],
                # the period's own PCN-employed staff, shared among its (ruled) practices;
                # a period without a PCN workforce file has no team indicators
                pcn_staff=pcn_staff if pcn_staff is not None and len(pcn_staff) else None,
                # a practice that opened later is in no grouping of earlier periods
                groupings=None
                if self.groupings is None
                else self.groupings[
                    self.groupings["practice_code"].isin(ruled["practices"]["practice_code"])
                ],
                neighbourhoods_file=self.neighbourhoods_file,
            )
            views[period] = (view, changes)
        return views

    def at_period(self, period: str) -> PopHealthData:
        """The store as it was in ``period``, seen through today's membership (see history)."""
        views = self._period_views
        if period not in views:
            raise StoreError(
                f"Period {period!r} is not in the store's history (periods: "
                f"{', '.join(views) or 'none'})."
            )
        return views[period][0]

    @cached_property
    def membership_changes(self) -> pd.DataFrame:
        """Per period: practices whose PCN differs from today, merged, or not in today's list.

        Every monthly period of the history and every QOF year (at its QOF period, ``detail``
        starting ``"QOF <year>: "``); see :meth:`_build_membership_changes`.
        """
        return self._shared("membership_changes", self._build_membership_changes)

    def _build_membership_changes(self) -> pd.DataFrame:
        """Every monthly period's and every QOF year's changes, in period order.

        Columns ``period, practice_code, change, detail`` (those of a batch run's shared table,
        :mod:`pophealth.shared_tables`). A QOF year's rows are at its QOF period
        (:func:`pophealth.history.qof_period`) and their ``detail`` starts with the year
        (``"QOF 2024-25: carried by its successor Y90065"``), so they stay apart from the
        monthly rows of the same month: a listing grouped by practice, change and detail shows
        each QOF year as a row of its own.
        """
        columns = ["period", "practice_code", "change", "detail"]
        frames = [
            changes.assign(period=period)
            for period, (_, changes) in self._period_views.items()
            if len(changes)
        ]
        frames += [
            changes.assign(period=period, detail=f"QOF {year}: " + changes["detail"].astype(str))
            for period, year in self.qof_periods.items()
            if len(changes := self._qof_year_changes(period))
        ]
        if not frames:
            return pd.DataFrame(columns=columns)
        changes = pd.concat(frames, ignore_index=True)[columns]
        return changes.sort_values("period", kind="stable").reset_index(drop=True)

    def _qof_year_changes(self, period: str) -> pd.DataFrame:
        """One QOF year's membership changes (:meth:`qof_period_tables`), empty without QOF."""
        if "qof_prevalence" not in self.qof_history_tables:
            return pd.DataFrame(columns=["practice_code", "change", "detail"])
        return self.qof_period_tables(period)[1]

    @cached_property
    def indicator_history(self) -> pd.DataFrame:
        """The tidy indicator table for every period in the history, with a ``period`` column.

        Every period uses today's areas (the current register) and today's membership
        (:func:`pophealth.history.apply_membership_rule`); periods are computed in chunks
        (one period a chunk at England scale, with its own codes; smaller stores stack several,
        their codes tagged with the period). QOF indicators have a value only at the periods of
        the store's QOF years (:attr:`qof_indicator_history`: registered basis, and resident
        where the history holds the month the year ends in), never in a month a QOF year does
        not end in. A store without history gives the current table with its one period (its QOF
        year at that year's own period).
        """
        return self._shared("indicator_history", self._build_indicator_history)

    def _build_indicator_history(self) -> pd.DataFrame:
        views = self._period_views
        if not views:
            table = self.indicator_table.assign(period=self.periods[-1])
            year = self.manifest.get("notes", {}).get("qof_year")
            if year:  # the QOF year at its own period, as in a store with history
                is_qof = table["indicator_id"].isin(indicators.needing("qof"))
                table.loc[is_qof, "period"] = history.qof_period(year)
            return table.sort_values("period", kind="stable").reset_index(drop=True)
        # the current period is the indicator table itself: England (and regions) from the
        # national files; earlier periods compare with their own all-loaded aggregate (periods
        # are tagged apart, so leaving the current one out of the stack changes no other)
        current = self.periods[-1]
        periods = [period for period in views if period != current]
        # stack as many periods as keep memory bounded (England: one period, ~1.2 M rows, a go)
        per_chunk = max(1, HISTORY_ROWS_PER_CHUNK // max(1, len(self.registrations)))
        chunks = [periods[i : i + per_chunk] for i in range(0, len(periods), per_chunk)]
        frames = self._history_chunks(views, chunks)
        if current in views:
            frames.append(self.indicator_table.assign(period=current))
        rows = pd.concat(frames, ignore_index=True)
        # the QOF year of the current table belongs to its own period, not to this month
        rows = rows[~rows["indicator_id"].isin(indicators.needing("qof"))]
        rows = pd.concat([rows, self.qof_indicator_history], ignore_index=True)
        rows = rows[[*indicators.TIDY_COLUMNS, "period"]]
        return rows.sort_values("period", kind="stable").reset_index(drop=True)

    @cached_property
    def trend_words(self) -> pd.DataFrame:
        """Direction of travel of every area's indicators over the history, in words.

        :func:`pophealth.trends.direction_of_travel` of every series of
        :attr:`indicator_history` (``area_code, basis, indicator_id``): ``points, method,
        direction``. Worked out once for a batch run (and shared with its kernels,
        :mod:`pophealth.shared_tables`); a single profile works out its own area's instead
        (:meth:`ready_trend_words`).
        """
        found = self._shared_trend_words
        return self._build_trend_words() if found is None else found

    @cached_property
    def _shared_trend_words(self) -> pd.DataFrame | None:
        return self._read_shared("trend_words")

    def _build_trend_words(self) -> pd.DataFrame:
        # only the columns the words use: the rest of the history's are copied and sorted for
        # nothing (a third of the time)
        history_rows = self.indicator_history[
            ["area_code", "basis", "indicator_id", "period", "value", "numerator", "denominator"]
            + ["polarity"]
        ]
        catalogue = indicators.load_catalogue().set_index("id")
        return trends.direction_of_travel(
            history_rows.assign(statistic=history_rows["indicator_id"].map(catalogue["statistic"])),
            "period",
            ["area_code", "basis", "indicator_id"],
        )

    def ready_trend_words(self) -> pd.DataFrame | None:
        """:attr:`trend_words` if already worked out or shared by the batch run, else None."""
        return self.__dict__.get("trend_words", self._shared_trend_words)

    @cached_property
    def qof_history_tables(self) -> dict[str, pd.DataFrame]:
        """The store's QOF years (``history.read_qof_history``; empty without QOF history)."""
        return history.read_qof_history(self.prepared_dir)

    @property
    def qof_periods(self) -> dict[str, str]:
        """Period -> QOF year of the QOF years in the store's history, oldest first."""
        return dict(sorted(history.qof_years(self.manifest).items()))

    def qof_period_tables(self, period: str) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
        """One QOF year's practices, registers and expected registers under the membership rule.

        The year's practices are the practices of its file (list size: the ``TOTAL`` list),
        placed by today's membership where they are in today's list; a practice that closed is
        carried by its successor where ODS says so (registers, list sizes and expected registers
        added to the successor's); any other keeps the year's own sub-ICB and ICB
        (``MAPPING_NHS_GEOGRAPHIES``) and belongs to no neighbourhood. Where the history holds
        the month the QOF year ends in, that month's workforce (practice and PCN-employed staff,
        under the same rule) is added for the FTE-per-register indicators; otherwise those are
        not computed for the year (no other month's staff are borrowed).

        Args:
            period: A QOF period (``YYYY-03``, see :func:`pophealth.history.qof_period`).

        Returns:
            ``({"practices", "qof", "qof_expected"}, changes)``: changes as
            :func:`pophealth.history.apply_membership_rule` reports them, the year's PCN being
            the geography file's (``MAPPING_NHS_GEOGRAPHIES``), except two kinds of practice
            the year does not treat differently: a practice whose PCN that year the file does
            not give (no "moved PCN"), and a practice not in today's list placed in none of
            the store's sub-ICB locations (a national file's practice outside a store cut by
            ``--systems``: it counts in England only, as it did that year).
        """
        tables = self.qof_history_tables
        if period not in self.qof_periods:
            raise StoreError(
                f"Period {period!r} is not a QOF year of the store (QOF periods: "
                f"{', '.join(self.qof_periods) or 'none'})."
            )

        def of_period(name: str) -> pd.DataFrame:
            frame = tables.get(name)
            if frame is None:
                return pd.DataFrame()
            rows = frame[frame["period"] == period].drop(columns="period")
            return rows.reset_index(drop=True)

        rows = of_period("qof_prevalence")
        expected = of_period("qof_expected")
        if len(expected):
            expected = expected[expected["imd"] == self.imd].reset_index(drop=True)
        practices = history.qof_year_practices(rows, of_period("qof_geographies"), self.lsoa)
        ruled, changes = history.apply_membership_rule(
            {"practices": practices, "qof": rows, "qof_expected": expected},
            self.practices,
            self._practice_successions,
        )
        geographies = of_period("qof_geographies")
        # practices whose PCN that year the geography file gives (no PCN counts as given)
        given = set(geographies["practice_code"]) if "pcn_code" in geographies else set()
        pcn_unknown = practices.loc[~practices["practice_code"].isin(given), "practice_code"]
        outside = practices.loc[practices["sicbl_code"].isna(), "practice_code"]
        dropped = (
            (changes["change"] == "moved PCN") & changes["practice_code"].isin(pcn_unknown)
        ) | ((changes["change"] == "not in today's list") & changes["practice_code"].isin(outside))
        changes = changes[~dropped].reset_index(drop=True)
        views = self._period_views
        if period in views:
            # the month the QOF year ends in: its staff (already under the membership rule)
            staff = views[period][0].team_practices
            extra = [c for c in staff.columns if c not in ruled["practices"].columns]
            ruled["practices"] = ruled["practices"].merge(
                staff[["practice_code", *extra]], on="practice_code", how="left"
            )
        return ruled, changes

    @cached_property
    def qof_indicator_history(self) -> pd.DataFrame:
        """QOF indicators of every QOF year in the store, with ``period``.

        Each QOF year at its period (:func:`pophealth.history.qof_period`: QOF 2024-25 ->
        ``2025-03``), computed with today's areas and the membership rule
        (:meth:`qof_period_tables`); registers and list sizes are the QOF file's own.

        * **Registered basis**, every QOF year: England (``ALL``) is the sum over every
          practice of that year's national file.
        * **Resident basis**, a QOF year whose end month the history holds (March 2025 for
          QOF 2024-25): the year's practice measures shared out to LSOAs by that month's
          registrations (under the same rule), as the current table shares the latest QOF year
          by the current registrations (:func:`pophealth.prevalence.with_resident_qof`), and
          summed to LADs, ICBs and ``ALL`` (all loaded LSOAs: the month's registrations are
          the store's, not England's, as in every earlier period). Without that month a year
          has no resident values (no other month's registrations are borrowed).

        Indicators pairing a QOF year with staff have a value only where the history holds the
        month the year ends in.
        """
        columns = [*indicators.TIDY_COLUMNS, "period"]
        if "qof_prevalence" not in self.qof_history_tables or not len(self.register):
            return pd.DataFrame(columns=columns)
        sep, tagged = _SEP, _tagged
        register = self.register[self.register["basis"] == "registered"]
        resident_register = self.register[self.register["basis"] == "resident"]
        views = self._period_views if len(self.lsoa) and len(resident_register) else {}
        parts: dict[str, list[pd.DataFrame]] = {
            "register": [],
            "measures": [],
            "members": [],
            "resident": [],
            "lsoa_members": [],
        }
        with_staff: list[str] = []
        with_team: list[str] = []
        for period in self.qof_periods:
            ruled, _ = self.qof_period_tables(period)
            practices = ruled["practices"]
            if "gp_fte" in practices:
                with_staff.append(period)
            if staffing.whole_team_fte(practices) is not None:
                with_team.append(period)
            tag = period + sep
            parts["register"].append(_tagged_register(register, tag))
            measures = prevalence.qof_practice_measures(
                ruled["qof"], practices, ruled["qof_expected"]
            )
            parts["measures"].append(tagged(measures, tag, "practice_code"))
            groupings = (
                None
                if self.groupings is None
                else self.groupings[
                    self.groupings["practice_code"].isin(practices["practice_code"])
                ]
            )
            members = geography.practice_memberships(practices, groupings)
            parts["members"].append(tagged(members, tag, "practice_code", "area_code"))
            if period in views:
                resident = self._qof_resident_measures(measures, views[period][0].registrations)
                if resident is not None:
                    parts["register"].append(_tagged_register(resident_register, tag))
                    parts["resident"].append(tagged(resident, tag, "lsoa21_code"))
                    parts["lsoa_members"].append(
                        tagged(self.lsoa_membership_table, tag, "lsoa21_code", "area_code")
                    )
        stacked = {
            name: pd.concat(frames, ignore_index=True) for name, frames in parts.items() if frames
        }
        registered = attribution.aggregate_measures(
            stacked["measures"].copy(), stacked["members"], "practice_code"
        )
        resident = (
            attribution.aggregate_measures(
                stacked["resident"].copy(), stacked["lsoa_members"], "lsoa21_code"
            )
            if "resident" in stacked
            else None
        )
        table = indicators.compute_indicator_table(stacked["register"], registered, resident)
        period = table["area_code"].str.split(sep, n=1).str[0]
        # FTE per register entry: only a year whose end month's staff are in the history
        needs_staff = indicators.needing("workforce")
        needs_team = indicators.needing("pcn_workforce")
        keep = (
            table["indicator_id"].isin(indicators.needing("qof"))
            & ~(table["indicator_id"].isin(needs_staff) & ~period.isin(with_staff))
            & ~(table["indicator_id"].isin(needs_team) & ~period.isin(with_team))
        ).to_numpy()
        table, period = table[keep].reset_index(drop=True), period[keep].reset_index(drop=True)
        return _note_modelled_qof(_untagged(table, period, sep)[columns])

    def _qof_resident_measures(
        self, measures: pd.DataFrame, registrations: pd.DataFrame
    ) -> pd.DataFrame | None:
        """A QOF year's practice measures shared out to every LSOA by one month's registrations.

        :func:`pophealth.prevalence.with_resident_qof` on the store's LSOAs, as the current
        table's resident basis (LSOAs without a share count zero); ``None`` when there is
        nothing to share (no QOF measures or no registrations that month).
        """
        if len(measures.columns) <= 1 or not len(registrations):
            return None
        lsoas = self.lsoa[["lsoa21_code"]]
        return prevalence.with_resident_qof(lsoas, registrations, measures).copy()

    def _history_chunks(self, views: dict, chunks: list[list[str]]) -> list[pd.DataFrame]:
        """:meth:`_stacked_history` of each chunk of periods, in order.

        In a batch run's own process (:meth:`share_tables` sets ``_history_in_two``) with two
        chunks or more and a second core, a forked child works out the later half while this
        process works out the first half: the kernels wait for the history, and with twelve
        periods it is most of the run's start. Whatever the child does not deliver (it failed
        or died) is worked out here, so the table never depends on it.
        """

        def stacked(chunk: list[str]) -> pd.DataFrame:
            return self._stacked_history({p: views[p] for p in chunk})

        if not (getattr(self, "_history_in_two", False) and len(chunks) > 1 and can_fork()):
            return [stacked(chunk) for chunk in chunks]
        half = (len(chunks) + 1) // 2
        mine, theirs = chunks[:half], chunks[half:]
        with ForkedWork(lambda: [stacked(chunk) for chunk in theirs]) as child:
            frames = [stacked(chunk) for chunk in mine]
            delivered = child.result()
        # what happened, for tests and debugging: the table is the same either way
        self._history_child = {"chunks": len(theirs), "error": child.error}
        if delivered is None:
            delivered = [stacked(chunk) for chunk in theirs]
        return frames + delivered

    def _stacked_history(self, views: dict) -> pd.DataFrame:
        """Indicator tables of several periods in one computation (see indicator_history).

        One period (each chunk, at England scale) is computed with its own codes: tagging and
        untagging a million codes, and benchmarking twice, were a third of its time.
        """
        sep = _SEP
        alone = len(views) == 1
        tagged = _untouched if alone else _tagged
        tagged_register = _untouched if alone else _tagged_register
        parts: dict[str, list[pd.DataFrame]] = {}
        for period, (view, _) in views.items():
            tag = period + sep
            parts.setdefault("register", []).append(tagged_register(self.register, tag))
            parts.setdefault("practices", []).append(
                tagged(view.team_practices, tag, "practice_code")
            )
            parts.setdefault("registrations", []).append(
                tagged(view.registrations, tag, "practice_code", "lsoa_code")
            )
            parts.setdefault("age_sex", []).append(tagged(view.age_sex, tag, "practice_code"))
            parts.setdefault("lsoa", []).append(tagged(self.lsoa, tag, "lsoa21_code"))
            parts.setdefault("practice_members", []).append(
                tagged(view.practice_membership_table, tag, "practice_code", "area_code")
            )
            parts.setdefault("lsoa_members", []).append(
                tagged(view.lsoa_membership_table, tag, "lsoa21_code", "area_code")
            )
        # one computation over every period: practices and LSOAs are units, tagged by period
        stacked = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
        registered = resident = None
        if len(stacked["practices"]):
            measures = attribution.practice_measures(
                stacked["practices"],
                stacked["registrations"],
                stacked["age_sex"],
                stacked["lsoa"],
                self.imd_release,
            )
            registered = attribution.aggregate_measures(
                measures.copy(), stacked["practice_members"], "practice_code"
            )
        if len(stacked["lsoa"]):
            measures = attribution.lsoa_measures(
                stacked["lsoa"], stacked["registrations"], stacked["practices"], self.imd_release
            )
            resident = attribution.aggregate_measures(
                measures, stacked["lsoa_members"], "lsoa21_code"
            )
        table = indicators.compute_indicator_table(
            stacked["register"],
            registered,
            resident,
            ethnicity_definition=attribution.ethnicity_definition(self.lsoa),
        )
        if alone:  # its codes are its own, benchmarked with its own ALL already
            period = pd.Series(next(iter(views)), index=table.index, dtype=object)
        else:
            period = table["area_code"].str.split(sep, n=1).str[0]
        # a period without PCN workforce has no team indicators (QOF indicators are kept per
        # QOF year apart: qof_indicator_history)
        with_team = [period for period, (view, _) in views.items() if view.pcn_staff is not None]
        needs_team = indicators.needing("pcn_workforce")
        keep = (
            ~table["indicator_id"].isin(indicators.needing("qof"))
            & ~(table["indicator_id"].isin(needs_team) & ~period.isin(with_team))
        ).to_numpy()
        table = table[keep].reset_index(drop=True)
        period = period[keep].reset_index(drop=True)
        if alone:
            table = table.assign(period=period.to_numpy(dtype=object))
        else:
            table = _untagged(table, period, sep)
        return table[[*indicators.TIDY_COLUMNS, "period"]]

    def profile(self, area_code: str, basis: str | None = None) -> Profile:
        """Build one area's profile.

        Args:
            area_code: Area code (PCN/neighbourhood, LAD, sub-ICB, ICB; ODS codes accepted).
            basis: ``registered`` or ``resident`` where the area has both (ICBs); default
                registered.

        Returns:
            A :class:`Profile`.
        """
        with python_strings():
            area = self.resolve_area(area_code, basis)
            return build_profile(self, area)

    def profile_of_practices(
        self, practices, *, name: str = "Candidate neighbourhood", code: str = "CANDIDATE"
    ):
        """Headline profile of an ad-hoc group of practices (e.g. a candidate neighbourhood).

        Args:
            practices: Practice codes (ODS) forming the group.
            name: Name shown in the headline.
            code: Code for the group (as it would appear in a neighbourhoods YAML).

        Returns:
            A :class:`pophealth.designer.GroupProfile` (indicators against the group's
            sub-ICB and the comparator, headline sentence, fair-share GP FTE).
        """
        from pophealth import designer

        return designer.profile_of_practices(self, practices, name=name, code=code)
