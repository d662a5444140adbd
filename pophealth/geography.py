"""Geography: which practices and LSOAs make up each neighbourhood, place and system.

Levels and bases:

* neighbourhood - a Primary Care Network (ePCN membership) or an analyst's own grouping of
  practices (e.g. Integrated Neighbourhood Teams); registered basis.
* place - a local authority district (resident basis, from LSOAs of residence) and a sub-ICB
  location (registered basis, from practices).
* system - the ICB, on both bases.
* region - the NHS England region of an ICB (where the practice mapping file names it).
* england - England from the national files (the comparator; "All loaded areas" when the
  files are not national); both bases.

All functions are pure: DataFrames in, new DataFrames out.
"""

from __future__ import annotations

import difflib
import re

import pandas as pd

from pophealth.errors import PopHealthError

LEVELS = ("neighbourhood", "place", "system")
ALL_LOADED_CODE = "ALL"

AREA_COLUMNS = [
    "area_code",
    "area_name",
    "level",
    "area_type",
    "basis",
    "parent_code",
    "parent_name",
    "system_code",
]


class UnknownAreaError(PopHealthError, KeyError):
    """An area or system code that is not in the loaded data."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


def close_matches(code: str, candidates: list[str], n: int = 5) -> list[str]:
    """Return the candidates closest to ``code`` (case-insensitive), best first."""
    upper = {c.upper(): c for c in candidates}
    hits = difflib.get_close_matches(code.upper(), list(upper), n=n, cutoff=0.4)
    return [upper[h] for h in hits]


def code_kind(code: str) -> str:
    """The kind of a code: the GSS entity (``E38``, ``E54``...) or an ODS code's first letter."""
    text = str(code).strip().upper()
    if re.fullmatch(r"[EWSN]\d{2}.*", text):
        return text[:3]
    return text[:1]


def unknown_code_message(kind: str, code: str, candidates: list[str]) -> str:
    """Build the error text for an unknown code, with the closest valid codes of its kind.

    A mistyped sub-ICB code (``E38…``) is offered sub-ICB codes, not LADs or PCNs, when the
    loaded data have any of that kind; otherwise the closest codes of any kind.
    """
    same_kind = [c for c in candidates if code_kind(c) == code_kind(code)]
    matches = close_matches(code, same_kind or candidates)
    hint = f" Closest valid codes: {', '.join(matches)}." if matches else ""
    return f"Unknown {kind} code {code!r}: it is not in the loaded data.{hint}"


def comparator_name(
    practices: pd.DataFrame,
    lsoa: pd.DataFrame,
    national_icbs: int | None = None,
    synthetic: bool = False,
) -> str:
    """Name of the whole-population comparator: England only when the files are national.

    Args:
        practices: Prepared practices (used when ``national_icbs`` is not known).
        lsoa: Prepared LSOA table (likewise).
        national_icbs: ICBs in the files prepare read (``manifest["national"]["icbs"]``);
            England's values come from all of them even when the store keeps one ICB.
        synthetic: The files are the synthetic demo ("England (synthetic)").
    """
    n_icb = national_icbs
    if n_icb is None:
        n_icb = max(
            practices["icb_code"].nunique() if len(practices) else 0,
            lsoa["icb_code"].nunique() if "icb_code" in lsoa and len(lsoa) else 0,
        )
    if n_icb < 40:
        return "All loaded areas"
    return "England (synthetic)" if synthetic else "England"


def _majority_parent(
    members: pd.DataFrame, child: str, parent: str, weight: str | None = None
) -> pd.DataFrame:
    """Map each child to the parent holding most of its members (weighted if given)."""
    frame = members[[child, parent] + ([weight] if weight else [])].dropna(subset=[child, parent])
    frame = frame.assign(_w=frame[weight].fillna(0) if weight else 1)
    totals = frame.groupby([child, parent], as_index=False, observed=True)["_w"].sum()
    totals = totals.sort_values([child, "_w", parent], ascending=[True, False, True])
    return totals.drop_duplicates(child)[[child, parent]]


def neighbourhood_practices(
    practices: pd.DataFrame, groupings: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Practice → neighbourhood membership.

    Args:
        practices: Prepared practices table (``practice_code, pcn_code, pcn_name``).
        groupings: Optional analyst groupings (``neighbourhood_code, neighbourhood_name,
            practice_code``) from :func:`pophealth.config.load_neighbourhood_groupings`;
            replaces PCNs for the practices they list.

    Returns:
        ``practice_code, area_code, area_name, area_type`` - one row per practice in a
        neighbourhood. Practices in no PCN (``Unaligned``) have no row.
    """
    if groupings is not None and len(groupings):
        unknown = sorted(set(groupings["practice_code"]) - set(practices["practice_code"]))
        if unknown:
            valid = practices["practice_code"].tolist()
            details = "; ".join(
                f"{c} (closest: {', '.join(close_matches(c, valid, 3)) or 'none'})"
                for c in unknown[:5]
            )
            raise UnknownAreaError(
                f"Neighbourhood groupings list {len(unknown)} practice code(s) not in the loaded "
                f"practice data: {details}. Check the codes against ePCN / practice lists."
            )
        out = groupings.rename(
            columns={"neighbourhood_code": "area_code", "neighbourhood_name": "area_name"}
        )[["practice_code", "area_code", "area_name"]]
        return out.assign(area_type="custom").reset_index(drop=True)
    pcn = practices.dropna(subset=["pcn_code"])
    out = pcn[["practice_code", "pcn_code", "pcn_name"]].rename(
        columns={"pcn_code": "area_code", "pcn_name": "area_name"}
    )
    return out.assign(area_type="pcn").reset_index(drop=True)


def practice_memberships(
    practices: pd.DataFrame, groupings: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every registered-basis area each practice belongs to.

    Returns:
        ``practice_code, area_code`` for neighbourhoods, sub-ICB locations, ICBs and the
        whole loaded population.
    """
    neigh = neighbourhood_practices(practices, groupings)[["practice_code", "area_code"]]
    sicbl = practices[["practice_code", "sicbl_code"]].dropna()
    icb = practices[["practice_code", "icb_code"]].dropna()
    every = practices[["practice_code"]].assign(area_code=ALL_LOADED_CODE)
    parts = [
        neigh,
        sicbl.rename(columns={"sicbl_code": "area_code"}),
        icb.rename(columns={"icb_code": "area_code"}),
        every,
    ]
    return pd.concat(parts, ignore_index=True)


def lsoa_memberships(lsoa: pd.DataFrame) -> pd.DataFrame:
    """Every resident-basis area each LSOA belongs to: LAD, ICB and the whole loaded population."""
    lad = lsoa[["lsoa21_code", "lad_code"]].dropna().rename(columns={"lad_code": "area_code"})
    icb = lsoa[["lsoa21_code", "icb_code"]].dropna().rename(columns={"icb_code": "area_code"})
    every = lsoa[["lsoa21_code"]].assign(area_code=ALL_LOADED_CODE)
    return pd.concat([lad, icb, every], ignore_index=True)


def _place_rows(places: pd.DataFrame, kind: str, basis: str) -> pd.DataFrame:
    """Register rows of places (``sicbl`` or ``lad``) from ``<kind>_code/_name, icb_code``."""
    return pd.DataFrame(
        {
            "area_code": places[f"{kind}_code"],
            "area_name": places[f"{kind}_name"],
            "area_type": kind,
            "parent_code": places["icb_code"],
            "level": "place",
            "basis": basis,
        }
    )


def build_area_register(
    practices: pd.DataFrame,
    lsoa: pd.DataFrame,
    registrations: pd.DataFrame | None = None,
    groupings: pd.DataFrame | None = None,
    comparator: str | None = None,
    regions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """List every area at every level with its basis, parent and system.

    The parent chain is neighbourhood -> sub-ICB location -> ICB -> NHS England region (where
    the practice mapping names it) -> England; a LAD's parent is its ICB.

    Args:
        practices: Prepared practices table (may be empty for resident-only data).
        lsoa: Prepared LSOA table (lookup columns).
        registrations: Practice × LSOA patients; used to place LADs in the ICB where most of
            their residents live when a LAD crosses ICB boundaries.
        groupings: Optional analyst neighbourhood groupings.
        comparator: Name of the England row (default from :func:`comparator_name`).
        regions: ``icb_code, region_code, region_name`` for ICBs whose region is known.

    Returns:
        One row per (area_code, basis) with the columns in ``AREA_COLUMNS``.
    """
    rows = []
    comp = comparator or comparator_name(practices, lsoa)
    if regions is None or not len(regions):
        regions = pd.DataFrame(columns=["icb_code", "region_code", "region_name"])
    region_of = regions.drop_duplicates("icb_code").set_index("icb_code")["region_code"]

    def region_rows(basis: str, icb_codes: pd.Series) -> pd.DataFrame:
        found = regions[regions["icb_code"].isin(set(icb_codes))].drop_duplicates("region_code")
        return pd.DataFrame(
            {
                "area_code": found["region_code"].to_numpy(),
                "area_name": found["region_name"].to_numpy(),
                "area_type": "nhser",
                "parent_code": ALL_LOADED_CODE,
                "level": "region",
                "basis": basis,
            }
        )

    def system_rows(basis: str, icbs: pd.DataFrame) -> list[pd.DataFrame]:
        """The ICBs (under their region, else England), their regions and England on a basis."""
        systems = pd.DataFrame(
            {
                "area_code": icbs["icb_code"],
                "area_name": icbs["icb_name"],
                "area_type": "icb",
                "parent_code": icbs["icb_code"]
                .map(region_of)
                .astype(object)
                .fillna(ALL_LOADED_CODE),
                "level": "system",
                "basis": basis,
            }
        )
        england = pd.DataFrame(
            {
                "area_code": [ALL_LOADED_CODE],
                "area_name": [comp],
                "area_type": ["all"],
                "parent_code": [pd.NA],
                "level": ["england"],
                "basis": [basis],
            }
        )
        return [systems, region_rows(basis, icbs["icb_code"]), england]

    if len(practices):
        neigh = neighbourhood_practices(practices, groupings)
        neigh = neigh.merge(practices[["practice_code", "sicbl_code"]], on="practice_code")
        parent = _majority_parent(
            neigh.merge(practices[["practice_code", "registered_patients"]], on="practice_code"),
            "area_code",
            "sicbl_code",
            "registered_patients",
        )
        areas = neigh.drop_duplicates("area_code")[["area_code", "area_name", "area_type"]]
        areas = areas.merge(parent, on="area_code", how="left").rename(
            columns={"sicbl_code": "parent_code"}
        )
        rows.append(areas.assign(level="neighbourhood", basis="registered"))
        sicbl = practices.dropna(subset=["sicbl_code"]).drop_duplicates("sicbl_code")
        rows.append(_place_rows(sicbl, "sicbl", "registered"))
        icb = practices.dropna(subset=["icb_code"]).drop_duplicates("icb_code")
        rows.extend(system_rows("registered", icb))
    if len(lsoa):
        weight = None
        members = lsoa[["lsoa21_code", "lad_code", "icb_code"]]
        if registrations is not None and len(registrations):
            residents = registrations.groupby("lsoa_code", as_index=False)["patients"].sum()
            members = members.merge(
                residents.rename(columns={"lsoa_code": "lsoa21_code"}), on="lsoa21_code", how="left"
            )
            weight = "patients"
        lad_parent = _majority_parent(members, "lad_code", "icb_code", weight)
        lads = lsoa.dropna(subset=["lad_code"]).drop_duplicates("lad_code")
        lads = lads[["lad_code", "lad_name"]].merge(lad_parent, on="lad_code", how="left")
        rows.append(_place_rows(lads, "lad", "resident"))
        icbs = lsoa.dropna(subset=["icb_code"]).drop_duplicates("icb_code")
        rows.extend(system_rows("resident", icbs))
    register = pd.concat(rows, ignore_index=True)
    names = register.drop_duplicates("area_code").set_index("area_code")["area_name"]
    register["parent_name"] = register["parent_code"].map(names)
    # the system an area belongs to: itself for ICBs, its parent (or grandparent) otherwise
    parent_of = register.drop_duplicates("area_code").set_index("area_code")["parent_code"]
    system = register["area_code"].where(register["level"] == "system")
    system = system.fillna(register["parent_code"].where(register["level"] == "place"))
    grand = register["parent_code"].map(parent_of)
    system = system.fillna(grand.where(register["level"] == "neighbourhood"))
    register["system_code"] = system
    # after the systems are known: an area is never its own parent
    register = _skip_identical_parents(register, practices, lsoa, groupings)
    register["parent_name"] = register["parent_code"].map(names)
    return register[AREA_COLUMNS].reset_index(drop=True)


def _skip_identical_parents(
    register: pd.DataFrame,
    practices: pd.DataFrame,
    lsoa: pd.DataFrame,
    groupings: pd.DataFrame | None,
) -> pd.DataFrame:
    """Point an area whose parent has exactly its members at the next ancestor instead.

    A PCN that is its whole sub-ICB location, an ICB with one sub-ICB location or a LAD that
    is its whole ICB would otherwise be compared with itself.
    """
    parts = []
    if len(practices):
        parts.append(practice_memberships(practices, groupings).assign(basis="registered"))
    if len(lsoa):
        members = lsoa_memberships(lsoa).rename(columns={"lsoa21_code": "practice_code"})
        parts.append(members.assign(basis="resident"))
    if not parts:
        return register
    sets = {
        key: frozenset(group)
        for key, group in pd.concat(parts).groupby(["area_code", "basis"])["practice_code"]
    }
    parent_of = {
        (code, basis): parent
        for code, basis, parent in zip(
            register["area_code"], register["basis"], register["parent_code"], strict=True
        )
    }
    parents = []
    for code, basis, parent in zip(
        register["area_code"], register["basis"], register["parent_code"], strict=True
    ):
        own = sets.get((code, basis))
        while isinstance(parent, str) and own is not None and sets.get((parent, basis)) == own:
            parent = parent_of.get((parent, basis), ALL_LOADED_CODE)
        parents.append(parent)
    return register.assign(parent_code=parents)


def resolve_area_code(register: pd.DataFrame, code: str, aliases: dict[str, str]) -> str:
    """Return the canonical area code for ``code`` (an area code or an ODS alias).

    Raises:
        UnknownAreaError: naming the closest valid codes.
    """
    valid = register["area_code"].unique().tolist()
    if code in valid:
        return code
    upper = code.strip().upper()
    for candidate in valid:
        if candidate.upper() == upper:
            return candidate
    if upper in aliases:
        return aliases[upper]
    raise UnknownAreaError(unknown_code_message("area", code, valid + list(aliases)))
