"""Download official source releases into a raw folder for ``pophealth prepare``.

Every URL comes from the source registry (``pophealth/data/registry.yaml``, or a user file passed
with ``--registry``): an entry's ``url``; or, for an entry with ``link_pattern`` instead, the one
link on its landing page whose file name matches (:mod:`pophealth.fetch_landing`); or, for a month
a monthly or quarterly source has no entry for, the landing page that the registry's ``series``
template for the source gives that month. Nothing here makes up a file URL. Downloads go through
:func:`pooch.retrieve` into a cache folder with a resumable HTTP downloader
(:class:`ResumableDownloader`), are checked against the registry's sha256 when it is known, and
are then copied (or safely extracted from a zip) into the raw folder under their official file
names.

Guarantees:

* a file whose sha256 differs from the registry is refused, and neither the cache nor the raw
  folder keeps any of its bytes;
* an interrupted transfer leaves only ``<cache>/<source>/<release>/<name>.part``, which the next
  run resumes with an HTTP ``Range`` request (or restarts when the server ignores ranges);
* zip members are extracted only when every name in the archive stays inside the target folder
  (no absolute paths, no ``..``, no symlinks) and the uncompressed size is within a limit;
* files appear in the cache and raw folder only by ``os.replace`` of a finished temporary file;
* downloaded content is only ever read as bytes, never executed or unpickled.
"""

from __future__ import annotations

import argparse
import calendar
import difflib
import json
import os
import re
import stat
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pooch
import requests
import urllib3
import yaml
from tqdm.auto import tqdm

from pophealth import fetch_arcgis, fetch_landing
from pophealth.errors import PopHealthError
from pophealth.files import atomic_path, atomic_write_bytes, sha256_of
from pophealth.sources import fetch_entry_names

#: Source names registry.yaml may use: derived from the one source registry
#: (:data:`pophealth.sources.SOURCES`), so a new source is declared once.
KNOWN_SOURCES: tuple[str, ...] = fetch_entry_names()

REQUIRED_KEYS: tuple[str, ...] = (
    "source",
    "release",
    "url",
    "member",
    "filename",
    "sha256",
    "size",
    "publisher",
    "licence",
    "landing_page",
)
OPTIONAL_KEYS: tuple[str, ...] = (
    "checksum_status",
    "url_status",
    "download_name",
    "notes",
    "service",
    "link_pattern",
)
REGISTRY_COLUMNS: tuple[str, ...] = REQUIRED_KEYS + OPTIONAL_KEYS

LICENCE = "OGL v3.0"
CHECKSUM_STATUSES = ("known", "unknown", "recorded")
#: documented: the URL was found in public material; unverified: none was; landing_page: the
#: URL is read from the landing page when fetched (``link_pattern``)
URL_STATUSES = ("documented", "unverified", "landing_page")
#: ``service`` values: how ``url`` is read (null: one file; arcgis_featureserver: paged queries)
SERVICES = ("arcgis_featureserver",)
# publication cadence of the time-varying sources, for ranges of releases (--from/--to):
# NHS England publishes the LSOA registrations quarterly (Jan, Apr, Jul, Oct), the rest monthly
QUARTERLY_SOURCES: dict[str, tuple[int, ...]] = {"registrations_lsoa": (1, 4, 7, 10)}
#: The monthly files published with the LSOA file (Patients Registered at a GP Practice):
#: "latest" takes them at the month of the newest LSOA release when they have a series template,
#: so that one fetch gives one month's registrations (prepare compares them with each other)
REGISTRATION_SOURCES: tuple[str, ...] = (
    "practice_totals",
    "practice_age_bands",
    "practice_single_age_male",
    "practice_single_age_female",
    "practice_map",
)
MONTHLY_SOURCES: tuple[str, ...] = (
    "practice_totals",
    "practice_age_bands",
    "practice_single_age_male",
    "practice_single_age_female",
    "practice_map",
    "workforce",
    "pcn_workforce",
)

#: Keys of a ``series`` template: how any month's release of a monthly or quarterly source is
#: found when the registry has no entry for that month.
SERIES_KEYS: tuple[str, ...] = (
    "source",
    "landing_page",
    "link_pattern",
    "member",
    "filename",
    "publisher",
    "licence",
    "notes",
)
# English month names as the publishers' page addresses use them (calendar.month_name follows
# the process's LC_TIME locale)
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: Placeholders a series template may use, filled for the release month (October 2025 shown)
SERIES_PLACEHOLDERS: dict[str, str] = {
    "month": "month name in lower case (october)",
    "Month": "month name (October)",
    "Mon": "abbreviated month name (Oct)",
    "mm": "month number, two digits (10)",
    "yyyy": "year (2025)",
    "yy": "year, two digits (25)",
    "last_day": "last day of the month (31)",
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_REGEX_REPEAT = re.compile(r"\d+(,\d*)?|,\d+")

# Generous for the largest national file (boundaries, ~1 GB) yet stops a zip bomb.
DEFAULT_MAX_UNCOMPRESSED_BYTES = 4 * 1024**3
# Official CSVs compress about 5-20:1; a member far beyond this is not a data file.
MAX_COMPRESSION_RATIO = 200
_RATIO_CHECK_MIN_BYTES = 1024**2
_CHUNK_BYTES = 1024**2


class FetchError(PopHealthError):
    """Base class of errors raised while fetching sources."""


class RegistryError(FetchError, ValueError):
    """The source registry is malformed or a requested source/release is not in it."""


class DownloadError(FetchError):
    """A transfer failed (HTTP error, connection dropped, HTML page instead of a file)."""


class ChecksumMismatchError(FetchError, ValueError):
    """A downloaded file's sha256 differs from the registry's."""

    def __init__(self, source: str, url: str, expected: str, actual: str) -> None:
        self.source, self.url, self.expected, self.actual = source, url, expected, actual
        super().__init__(
            f"checksum mismatch for source '{source}' downloaded from {url}: "
            f"expected sha256 {expected}, got {actual}. The file was discarded (nothing kept in "
            "the cache or raw folder). If the publisher replaced the file, check it on the "
            "landing page and update the sha256 in a registry copy (--registry FILE)."
        )


class UnsafeArchiveError(FetchError):
    """A zip archive has unsafe member paths, is too large, or lacks the expected member."""


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _packaged_registry_path() -> Path:
    # joinpath one part at a time: namespace-package paths (MultiplexedPath) reject "a/b".
    resource = resources.files("pophealth").joinpath("data").joinpath("registry.yaml")
    return Path(str(resource))


def _registry_error(path: str, index: int | None, message: str) -> RegistryError:
    where = f"{path}" if index is None else f"{path}, entry {index}"
    return RegistryError(f"{where}: {message}")


def _is_plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _link_patterns(value: Any, path: str, index: int | None, label: str) -> list[str] | None:
    """``link_pattern`` as a list of regular expressions (one string is a list of one)."""
    if value is None:
        return None
    patterns = [value] if isinstance(value, str) else value
    if (
        not isinstance(patterns, list)
        or not patterns
        or not all(isinstance(p, str) and p for p in patterns)
    ):
        raise _registry_error(
            path, index, f"({label}) link_pattern must be a regular expression or a list of them"
        )
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _registry_error(
                path, index, f"({label}) link_pattern {pattern!r} is not a valid pattern ({exc})"
            ) from exc
    return list(patterns)


def _validate_entry(entry: Any, index: int | None, path: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _registry_error(path, index, f"expected a mapping of keys, got {entry!r}")
    label = f"{entry.get('source', '?')} {entry.get('release', '?')}"
    missing = [key for key in REQUIRED_KEYS if key not in entry]
    if missing:
        raise _registry_error(
            path,
            index,
            f"({label}) is missing required key(s) {missing}; every entry needs "
            f"{list(REQUIRED_KEYS)} (use null for unknown values).",
        )
    unknown_keys = sorted(set(entry) - set(REGISTRY_COLUMNS))
    if unknown_keys:
        hints = {k: difflib.get_close_matches(k, REGISTRY_COLUMNS, n=1) for k in unknown_keys}
        raise _registry_error(
            path, index, f"({label}) has unknown key(s) {hints} (key: close match)"
        )
    row = {key: entry.get(key) for key in REGISTRY_COLUMNS}
    source = row["source"]
    if source not in KNOWN_SOURCES:
        close = difflib.get_close_matches(str(source), KNOWN_SOURCES, n=3)
        raise _registry_error(
            path, index, f"unknown source {source!r}; did you mean {close}? Known: {KNOWN_SOURCES}"
        )
    if row["release"] is None or str(row["release"]).strip() == "":
        raise _registry_error(path, index, f"({label}) release is empty")
    row["release"] = str(row["release"])
    url = row["url"]
    if url is not None and urlparse(str(url)).scheme not in ("http", "https"):
        raise _registry_error(path, index, f"({label}) url must be http(s) or null, got {url!r}")
    filename = row["filename"]
    if not isinstance(filename, str) or not _is_plain_name(filename):
        raise _registry_error(
            path, index, f"({label}) filename must be a plain file name, got {filename!r}"
        )
    download_name = row["download_name"]
    if download_name is not None and not _is_plain_name(str(download_name)):
        raise _registry_error(path, index, f"({label}) download_name must be a plain file name")
    row["link_pattern"] = _link_patterns(row["link_pattern"], path, index, label)
    if row["link_pattern"] is not None and row["service"] is not None:
        raise _registry_error(
            path, index, f"({label}) link_pattern finds a file link; a {row['service']} has none"
        )
    if row["link_pattern"] is not None and url is None:
        if download_name is not None:
            raise _registry_error(
                path,
                index,
                f"({label}) download_name comes from the link found on the landing page "
                "(link_pattern); remove it or give the url",
            )
        if row["url_status"] not in (None, "landing_page"):
            raise _registry_error(
                path, index, f"({label}) an entry found by link_pattern has url_status landing_page"
            )
        row["url_status"] = "landing_page"
    elif row["url_status"] == "landing_page" and row["link_pattern"] is None:
        raise _registry_error(
            path, index, f"({label}) url_status landing_page needs a link_pattern"
        )
    # an entry found by link_pattern learns its download name from the link
    if download_name is None and url is not None:
        row["download_name"] = PurePosixPath(urlparse(str(url)).path).name or filename
    elif download_name is None and row["link_pattern"] is None:
        row["download_name"] = filename
    member = row["member"]
    if member is not None and (not isinstance(member, str) or not _member_name_is_safe(member)):
        raise _registry_error(
            path, index, f"({label}) member must be null, '*' or a relative path, got {member!r}"
        )
    sha = row["sha256"]
    if sha is not None:
        sha = str(sha).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _registry_error(path, index, f"({label}) sha256 is not 64 hex digits: {sha!r}")
        row["sha256"] = sha
    status = row["checksum_status"] or ("unknown" if sha is None else "known")
    if status not in CHECKSUM_STATUSES:
        raise _registry_error(path, index, f"({label}) checksum_status must be {CHECKSUM_STATUSES}")
    if (sha is None) != (status == "unknown"):
        raise _registry_error(
            path,
            index,
            f"({label}) checksum_status {status!r} does not fit sha256 {sha!r}: use "
            "'unknown' exactly when sha256 is null",
        )
    row["checksum_status"] = status
    size = row["size"]
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise _registry_error(path, index, f"({label}) size must be a byte count or null")
    if row["licence"] != LICENCE:
        raise _registry_error(path, index, f"({label}) licence must be {LICENCE!r}")
    if row["url_status"] is not None and row["url_status"] not in URL_STATUSES:
        raise _registry_error(path, index, f"({label}) url_status must be one of {URL_STATUSES}")
    if row["url_status"] is None:
        row["url_status"] = "unverified"
    if row["service"] is not None and row["service"] not in SERVICES:
        raise _registry_error(path, index, f"({label}) service must be null or one of {SERVICES}")
    if row["service"] is not None and row["member"] is not None:
        raise _registry_error(path, index, f"({label}) a {row['service']} entry has no member")
    for key in ("publisher", "landing_page"):
        if not row[key]:
            raise _registry_error(path, index, f"({label}) {key} is empty")
    return row


def month_fields(month: str) -> dict[str, str]:
    """The values of :data:`SERIES_PLACEHOLDERS` for a ``YYYY-MM`` month."""
    year, number = int(month[:4]), int(month[5:7])
    name = _MONTH_NAMES[number - 1]
    return {
        "month": name.lower(),
        "Month": name,
        "Mon": name[:3],
        "mm": f"{number:02d}",
        "yyyy": f"{year:04d}",
        "yy": f"{year % 100:02d}",
        "last_day": str(calendar.monthrange(year, number)[1]),
    }


def _fill(template: str | None, fields: dict[str, str]) -> str | None:
    if template is None:
        return None
    return _PLACEHOLDER.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def series_entry(template: dict[str, Any], month: str, path: str = "registry") -> dict[str, Any]:
    """The registry entry a ``series`` template gives for one month.

    Args:
        template: A validated template (``registry.attrs["series"][source]``).
        month: The release month, ``YYYY-MM``.
        path: The registry file, for messages.

    Returns:
        A validated entry: no URL, ``url_status: landing_page``, the month's landing page and
        link patterns, checksum unknown.
    """
    fields = month_fields(month)
    raw = {
        "source": template["source"],
        "release": month,
        "url": None,
        "url_status": "landing_page",
        "link_pattern": [_fill(p, fields) for p in template["link_pattern"]],
        "member": _fill(template["member"], fields),
        "filename": _fill(template["filename"], fields),
        "sha256": None,
        "checksum_status": "unknown",
        "size": None,
        "publisher": template["publisher"],
        "licence": template["licence"],
        "landing_page": _fill(template["landing_page"], fields),
        "notes": " ".join(
            part
            for part in (
                f"From the registry's series for {template['source']} (no entry for {month}).",
                template.get("notes"),
            )
            if part
        ),
    }
    return _validate_entry(raw, None, path)


def _validate_series(document: Any, path: str) -> dict[str, dict[str, Any]]:
    templates = document.get("series") or []
    if not isinstance(templates, list):
        raise RegistryError(f"{path}: 'series' must be a list of templates")
    by_source: dict[str, dict[str, Any]] = {}
    for index, template in enumerate(templates):
        where = f"{path}, series {index}"
        if not isinstance(template, dict):
            raise RegistryError(f"{where}: expected a mapping of keys, got {template!r}")
        source = template.get("source")
        missing = [k for k in SERIES_KEYS if k not in template and k != "notes"]
        unknown = sorted(set(template) - set(SERIES_KEYS))
        if missing or unknown:
            raise RegistryError(
                f"{where} ({source}): missing key(s) {missing}, unknown key(s) {unknown}; a "
                f"template has {list(SERIES_KEYS)} (notes optional)"
            )
        if source not in MONTHLY_SOURCES and source not in QUARTERLY_SOURCES:
            raise RegistryError(
                f"{where}: a series is for a monthly or quarterly source "
                f"({sorted(MONTHLY_SOURCES + tuple(QUARTERLY_SOURCES))}), got {source!r}"
            )
        if source in by_source:
            raise RegistryError(f"{where}: a second series for {source!r}")
        checked = dict(template)
        checked["link_pattern"] = _link_patterns(template["link_pattern"], where, None, source)
        texts = [("landing_page", checked["landing_page"]), ("member", checked["member"])]
        texts += [("filename", checked["filename"])]
        texts += [("link_pattern", p) for p in checked["link_pattern"]]
        for key, text in texts:
            for name in _PLACEHOLDER.findall(text or ""):
                if name in SERIES_PLACEHOLDERS:
                    continue
                if key == "link_pattern" and _REGEX_REPEAT.fullmatch(name):
                    continue  # a regular expression's {n,m}
                raise RegistryError(
                    f"{where} ({source}): {key} has an unknown placeholder {{{name}}}; known: "
                    f"{sorted(SERIES_PLACEHOLDERS)}"
                )
        series_entry(checked, "2025-10", where)  # a filled template must be a valid entry
        by_source[source] = checked
    return by_source


def load_registry(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read and validate a source registry.

    Args:
        path: A registry YAML file; ``None`` reads the registry packaged with pophealth.

    Returns:
        One row per (source, release) with columns ``REGISTRY_COLUMNS`` (object dtype, ``None``
        for unknown values). ``download_name`` defaults to the URL's last path segment (an
        entry found by ``link_pattern`` has none until its link is found).
        ``df.attrs["registry_path"]`` holds the file read, ``df.attrs["series"]`` the
        validated ``series`` templates by source.

    Raises:
        RegistryError: When the file is not a registry or an entry is invalid; the message names
            the file, the entry and the key.
    """
    registry_path = Path(path) if path is not None else _packaged_registry_path()
    try:
        document = yaml.safe_load(registry_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RegistryError(f"registry file not found: {registry_path}") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"{registry_path}: not valid YAML ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise RegistryError(
            f"{registry_path}: expected a mapping with an 'entries' list of sources "
            "(see pophealth/data/registry.yaml)"
        )
    rows = [_validate_entry(e, i, str(registry_path)) for i, e in enumerate(document["entries"])]
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        key = (row["source"], row["release"])
        if key in seen:
            raise _registry_error(
                str(registry_path), i, f"duplicate source/release {key} (also entry {seen[key]})"
            )
        seen[key] = i
    frame = pd.DataFrame(
        {col: pd.Series([row[col] for row in rows], dtype=object) for col in REGISTRY_COLUMNS}
    )
    frame.attrs["registry_path"] = str(registry_path)
    frame.attrs["series"] = _validate_series(document, str(registry_path))
    return frame


def missing_sources(registry: pd.DataFrame) -> list[str]:
    """Return the names in ``KNOWN_SOURCES`` that have no entry in ``registry``."""
    present = set(registry["source"])
    return [name for name in KNOWN_SOURCES if name not in present]


def _parse_source_spec(sources: str | Iterable[str] | None) -> list[tuple[str, str | None]]:
    if sources is None:
        return []
    tokens = sources.split(",") if isinstance(sources, str) else list(sources)
    specs = []
    for token in tokens:
        token = token.strip()
        if not token:
            continue
        name, _, release = token.partition("@")
        specs.append((name.strip(), release.strip() or None))
    return specs


@dataclass
class _Selection:
    entry: dict[str, Any] | None
    source: str
    release: str
    problem: str | None = None
    #: nothing to fetch, and rightly so (a quarterly source in a range without its month)
    note: str | None = None


def _months(start: str, end: str) -> list[str]:
    """``YYYY-MM`` labels from ``start`` to ``end`` inclusive."""
    try:
        first, last = pd.Period(start, "M"), pd.Period(end, "M")
    except ValueError as exc:
        raise RegistryError(f"--from/--to must be YYYY-MM months, got {start!r}, {end!r}") from exc
    if first > last:
        raise RegistryError(f"--from {start} is after --to {end}")
    return [str(p) for p in pd.period_range(first, last, freq="M")]


def expected_releases(source: str, start: str, end: str, listed: Iterable[str]) -> list[str]:
    """The releases of ``source`` that a range of months should hold.

    Monthly sources: every month; the LSOA registrations: each quarterly month (Jan, Apr, Jul,
    Oct); any other source: its registry releases whose label starts with a month in the range.
    """
    months = _months(start, end)
    if source in QUARTERLY_SOURCES:
        return [m for m in months if int(m[5:]) in QUARTERLY_SOURCES[source]]
    if source in MONTHLY_SOURCES:
        return months
    inside = set(months)
    return sorted(r for r in listed if str(r)[:7] in inside)


def _range_selections(
    registry: pd.DataFrame, specs: list[tuple[str, str | None]], start: str, end: str
) -> list[_Selection]:
    selections = []
    for name, _ in specs:
        rows = registry[registry["source"] == name]
        wanted = expected_releases(name, start, end, rows["release"])
        if not wanted and name in QUARTERLY_SOURCES:
            published = ", ".join(_MONTH_NAMES[m - 1] for m in QUARTERLY_SOURCES[name])
            note = (
                f"{name}: none from {start} to {end}; it is published quarterly ({published}), "
                "so prepare notes the months without it"
            )
            selections.append(_Selection(None, name, f"{start}..{end}", note=note))
        elif not wanted:
            selections.append(
                _Selection(
                    None,
                    name,
                    f"{start}..{end}",
                    f"source '{name}' has no release from {start} to {end} in the registry "
                    f"(releases: {sorted(rows['release'])})",
                )
            )
        for month in wanted:
            match = rows[rows["release"] == month]
            from_series = _series_selection(registry, name, month) if match.empty else None
            if from_series is not None:
                selections.append(from_series)
                continue
            if match.empty:
                # the landing page of the source's nearest listed release: where to look
                nearest = min(rows.to_dict("records"), key=lambda r: abs(_distance(r, month)))
                selections.append(
                    _Selection(
                        None,
                        name,
                        month,
                        f"release {month} of '{name}' (in --from {start} --to {end}) has no "
                        "entry in the registry. Find the file on the publisher's page for that "
                        f"month (e.g. {nearest['landing_page']}) and add an entry with its URL "
                        "to a registry copy (--registry FILE).",
                    )
                )
                continue
            entry = {k: (None if _isna(v) else v) for k, v in match.iloc[0].to_dict().items()}
            selections.append(_Selection(entry, name, month))
    return selections


def _distance(row: dict[str, Any], month: str) -> int:
    try:
        return (pd.Period(str(row["release"])[:7], "M") - pd.Period(month, "M")).n
    except (ValueError, TypeError):
        return 10**6


def _select_entries(
    registry: pd.DataFrame,
    sources: str | Iterable[str] | None,
    release: str,
    months: tuple[str, str] | None = None,
) -> list[_Selection]:
    listed = list(dict.fromkeys(registry["source"]))
    # a source with a series template can be named without entries (its months come from it)
    available = listed + [s for s in registry.attrs.get("series", {}) if s not in listed]
    specs = _parse_source_spec(sources) or [(name, None) for name in listed]
    unknown = [name for name, _ in specs if name not in available]
    if unknown:
        hints = {n: difflib.get_close_matches(n, available, n=2) for n in unknown}
        raise RegistryError(
            f"source(s) not in registry {registry.attrs.get('registry_path', '')}: {hints} "
            f"(name: close matches). Available: {', '.join(available)}"
        )
    if months is not None:
        return _range_selections(registry, specs, *months)
    lsoa_month = _newest_findable(registry, "registrations_lsoa")
    selections = []
    for name, pinned in specs:
        wanted = pinned or release
        rows = registry[registry["source"] == name]
        releases = sorted(rows["release"])
        if (
            wanted == "latest"
            and name in REGISTRATION_SOURCES
            and lsoa_month is not None
            and name in registry.attrs.get("series", {})
            and (_newest_findable(registry, name) or "") < lsoa_month
        ):
            wanted = lsoa_month  # the month of the newest LSOA file, from the series if unlisted
        if wanted == "latest" and rows.empty:
            selections.append(
                _Selection(
                    None,
                    name,
                    wanted,
                    f"source '{name}' has only a series template, no listed release: name a "
                    f"month ({name}@YYYY-MM) or a range (--from/--to)",
                )
            )
            continue
        if wanted == "latest":
            # the newest release that can be downloaded; one listed without a URL or link
            # pattern is only a placeholder until its per-release URL is known
            wanted = _newest_findable(registry, name) or releases[-1]
        match = rows[rows["release"] == wanted]
        from_series = (
            _series_selection(registry, name, wanted)
            if match.empty and _is_series_month(name, wanted)
            else None
        )
        if from_series is not None:
            selections.append(from_series)
            continue
        if match.empty:
            selections.append(
                _Selection(
                    None,
                    name,
                    wanted,
                    f"no release {wanted!r} of source '{name}' in the registry; "
                    f"available: {releases}",
                )
            )
            continue
        entry = {k: (None if _isna(v) else v) for k, v in match.iloc[0].to_dict().items()}
        selections.append(_Selection(entry, name, wanted))
    return selections


def _series_selection(registry: pd.DataFrame, source: str, month: str) -> _Selection | None:
    """The month's release from the source's ``series`` template, or ``None`` without one."""
    template = registry.attrs.get("series", {}).get(source)
    if template is None:
        return None
    path = registry.attrs.get("registry_path", "registry")
    return _Selection(series_entry(template, month, path), source, month)


def _newest_findable(registry: pd.DataFrame, source: str) -> str | None:
    """The newest release of ``source`` with a URL or a link pattern, or ``None``."""
    rows = registry[registry["source"] == source]
    findable = rows["url"].notna() | rows["link_pattern"].notna()
    return max(rows.loc[findable, "release"], default=None)


def _is_series_month(source: str, release: str) -> bool:
    """True when ``release`` is a ``YYYY-MM`` month in which ``source`` is published."""
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", release) is None:
        return False
    return int(release[5:]) in QUARTERLY_SOURCES.get(source, range(1, 13))


def _isna(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


@dataclass
class ResumableDownloader:
    """A pooch downloader that resumes partial transfers with HTTP Range requests.

    Bytes are streamed into ``part_path`` (kept in the cache folder between runs). When a
    ``.part`` file exists, the download continues from its size with ``Range: bytes=N-`` (and
    ``If-Range`` with the first response's ETag/Last-Modified, so a changed file restarts). A
    server that ignores ranges answers 200 and the file is downloaded from the start. A finished
    file is checked against ``expected_sha256`` before it is handed to pooch.

    Args:
        source: Registry source name (for error messages).
        part_path: Where partial bytes are kept between runs.
        expected_sha256: Hex digest the file must have, or ``None`` when unknown.
        progressbar: Show a tqdm progress bar on stderr.
        timeout: Seconds to wait for the server between bytes.
    """

    source: str
    part_path: Path
    expected_sha256: str | None = None
    progressbar: bool = True
    timeout: float = 60.0
    requests_made: int = field(default=0, init=False)

    @property
    def _meta_path(self) -> Path:
        return self.part_path.with_name(self.part_path.name + ".json")

    def _discard_part(self) -> None:
        for path in (self.part_path, self._meta_path):
            path.unlink(missing_ok=True)

    def __call__(self, url: str, output_file: str, pooch_obj: Any, check_only: bool = False) -> Any:
        """Download ``url`` into ``output_file`` (the pooch downloader protocol)."""
        if check_only:
            response = requests.head(url, timeout=self.timeout, allow_redirects=True)
            return response.status_code == 200
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        self._transfer(url, allow_restart=True)
        actual = sha256_of(self.part_path)
        if self.expected_sha256 is not None and actual != self.expected_sha256:
            self._discard_part()
            raise ChecksumMismatchError(self.source, url, self.expected_sha256, actual)
        os.replace(self.part_path, output_file)
        self._meta_path.unlink(missing_ok=True)
        return None

    def _transfer(self, url: str, allow_restart: bool) -> None:
        offset = self.part_path.stat().st_size if self.part_path.exists() else 0
        # Byte offsets must refer to the file itself, not a gzip transfer encoding of it.
        headers = {"Accept-Encoding": "identity"}
        validator = self._read_validator(url) if offset else None
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        self.requests_made += 1
        try:
            with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                if response.status_code == 416 and offset and allow_restart:
                    # The partial file does not fit the server's file: start again.
                    self._discard_part()
                    return self._transfer(url, allow_restart=False)
                if response.status_code >= 400:
                    raise DownloadError(
                        f"source '{self.source}': HTTP {response.status_code} "
                        f"{response.reason} from {url}"
                    )
                self._refuse_html(response, url)
                resuming = offset > 0 and response.status_code == 206
                if resuming and _content_range_start(response) != offset:
                    raise DownloadError(
                        f"source '{self.source}': server answered range request for byte "
                        f"{offset} with {response.headers.get('Content-Range')!r} ({url})"
                    )
                if not resuming:
                    offset = 0
                    self._write_validator(url, response)
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
                self._stream(response, offset, total, url)
        except _TRANSFER_ERRORS as exc:
            raise DownloadError(
                f"source '{self.source}': transfer from {url} failed ({exc}). "
                f"{self._partial_note()}"
            ) from exc
        return None

    def _stream(
        self, response: requests.Response, offset: int, total: int | None, url: str
    ) -> None:
        mode = "ab" if offset else "wb"
        with (
            open(self.part_path, mode) as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{self.source}: {self.part_path.name.removesuffix('.part')}",
                disable=not self.progressbar,
                file=sys.stderr,
                leave=True,
            ) as bar,
        ):
            for chunk in _iter_received(response):
                handle.write(chunk)
                bar.update(len(chunk))
        received = self.part_path.stat().st_size
        if total is not None and received != total:
            raise DownloadError(
                f"source '{self.source}': transfer from {url} ended after {received:,} of "
                f"{total:,} bytes. {self._partial_note()}"
            )

    def _partial_note(self) -> str:
        if self.part_path.exists() and self.part_path.stat().st_size:
            return (
                f"{self.part_path.stat().st_size:,} bytes kept in {self.part_path}; "
                "run fetch again to resume."
            )
        return "Run fetch again to retry."

    def _refuse_html(self, response: requests.Response, url: str) -> None:
        content_type = response.headers.get("Content-Type", "").lower()
        if "text/html" in content_type and not self.part_path.name.endswith(
            (".html.part", ".htm.part")
        ):
            raise DownloadError(
                f"source '{self.source}': {url} returned an HTML page, not the data file; the "
                "URL probably points at a landing or error page. Find the file link on the "
                "landing page and put it into a registry copy (--registry FILE)."
            )

    def _read_validator(self, url: str) -> str | None:
        try:
            meta = json.loads(self._meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta.get("validator") if meta.get("url") == url else None

    def _write_validator(self, url: str, response: requests.Response) -> None:
        etag = response.headers.get("ETag")
        validator = etag if etag and not etag.startswith("W/") else None
        validator = validator or response.headers.get("Last-Modified")
        payload = json.dumps({"url": url, "validator": validator})
        atomic_write_bytes(self._meta_path, payload.encode("utf-8"))


_TRANSFER_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


def _iter_received(response: requests.Response) -> Iterable[bytes]:
    """Yield body bytes as they arrive.

    ``read1`` hands over whatever the socket delivered, so bytes received before a dropped
    connection reach the ``.part`` file; ``iter_content`` fills whole chunks first and loses a
    partial chunk when the transfer breaks.
    """
    read1 = getattr(response.raw, "read1", None)  # urllib3 >= 2.3
    if read1 is None:
        yield from response.iter_content(chunk_size=_CHUNK_BYTES)
        return
    while chunk := read1(_CHUNK_BYTES):
        yield chunk


def _content_range_start(response: requests.Response) -> int | None:
    # Content-Range: bytes START-END/TOTAL
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Installing into the raw folder
# --------------------------------------------------------------------------------------------


def _atomic_copy_stream(stream: Any, target: Path, limit: int | None, label: str) -> int:
    """Copy a binary stream to ``target`` via a temp file; abort past ``limit`` bytes."""
    written = 0
    with atomic_path(target) as tmp, tmp.open("wb") as handle:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            written += len(chunk)
            if limit is not None and written > limit:
                raise UnsafeArchiveError(
                    f"{label}: more data than the archive declares or the "
                    f"{limit:,}-byte limit allows; extraction stopped"
                )
            handle.write(chunk)
    return written


def _member_name_is_safe(name: str) -> bool:
    if name == "*":
        return True
    normalised = name.replace("\\", "/")
    if not normalised or normalised.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return False
    return ".." not in PurePosixPath(normalised).parts


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_archive(archive: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """Refuse an archive with unsafe members; return its file (non-directory) members.

    Every member is checked, not only the ones to extract: an archive carrying a path that
    escapes its folder, an absolute path or a symlink is not an official data file.

    Raises:
        UnsafeArchiveError: Naming the archive and the offending members.
    """
    unsafe = [
        info.filename
        for info in archive.infolist()
        if not _member_name_is_safe(info.filename) or _is_symlink(info)
    ]
    if unsafe:
        raise UnsafeArchiveError(
            f"{label}: refused, the archive has members that are absolute paths, climb out of "
            f"the target folder or are symlinks: {unsafe}. Nothing was extracted."
        )
    encrypted = [info.filename for info in archive.infolist() if info.flag_bits & 0x1]
    if encrypted:
        raise UnsafeArchiveError(f"{label}: refused, encrypted members {encrypted}")
    files = [info for info in archive.infolist() if not info.is_dir()]
    for info in files:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise UnsafeArchiveError(
                f"{label}: refused, member {info.filename!r} expands {ratio:,.0f}:1 "
                f"(limit {MAX_COMPRESSION_RATIO}:1), which looks like a zip bomb"
            )
    return files


def _find_member(files: Sequence[zipfile.ZipInfo], member: str, label: str) -> zipfile.ZipInfo:
    by_name = {info.filename: info for info in files}
    if member in by_name:
        return by_name[member]
    # Publishers sometimes nest the file in a folder inside the zip.
    same_base = [info for info in files if PurePosixPath(info.filename).name == member]
    if len(same_base) == 1:
        return same_base[0]
    close = difflib.get_close_matches(member, list(by_name), n=3, cutoff=0.4)
    raise UnsafeArchiveError(
        f"{label}: member {member!r} not found in the archive (close matches: {close}; "
        f"members: {sorted(by_name)[:20]}). Fix 'member' in the registry."
    )


def install_download(
    download: Path,
    entry: dict[str, Any],
    out_dir: Path,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> Path:
    """Copy or extract a downloaded file into ``out_dir``; return the path of ``filename``.

    Args:
        download: The verified file in the cache.
        entry: Its registry entry (``member``, ``filename``, ``source``, ``release``).
        out_dir: The raw folder.
        max_uncompressed_bytes: Refuse archives that would expand beyond this.

    Raises:
        UnsafeArchiveError: For a non-zip where a member is expected, unsafe or oversized
            archives, or a missing member.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / entry["filename"]
    member = entry.get("member")
    label = f"source '{entry['source']}' {entry['release']} archive {download.name}"
    if member is None:
        with open(download, "rb") as stream:
            _atomic_copy_stream(stream, target, None, label)
        return target
    if not zipfile.is_zipfile(download):
        with open(download, "rb") as handle:
            head = handle.read(16)
        raise UnsafeArchiveError(
            f"{label}: expected a zip archive holding {member!r}, but the file starts with "
            f"{head!r}. Check 'url' and 'member' in the registry."
        )
    with zipfile.ZipFile(download) as archive:
        files = check_archive(archive, label)
        chosen = files if member == "*" else [_find_member(files, member, label)]
        declared = sum(info.file_size for info in chosen)
        if declared > max_uncompressed_bytes:
            raise UnsafeArchiveError(
                f"{label}: refused, members expand to {declared:,} bytes, over the "
                f"{max_uncompressed_bytes:,}-byte limit"
            )
        root = out_dir.resolve()
        destinations = []
        for info in chosen:
            dest = target if member != "*" else out_dir / PurePosixPath(info.filename)
            if not dest.resolve().is_relative_to(root):  # defence in depth after check_archive
                raise UnsafeArchiveError(f"{label}: member {info.filename!r} escapes {out_dir}")
            destinations.append((info, dest))
        for info, dest in destinations:
            with archive.open(info) as stream:
                # Never trust the header's size alone: stop at the declared size.
                limit = min(info.file_size, max_uncompressed_bytes)
                _atomic_copy_stream(stream, dest, limit, f"{label} member {info.filename!r}")
    if member == "*":
        matches = [dest for _, dest in destinations if dest.name == entry["filename"]]
        if not matches:
            raise UnsafeArchiveError(
                f"{label}: extracted {len(destinations)} members but none is named "
                f"{entry['filename']!r}; fix 'filename' in the registry"
            )
        return matches[0]
    return target


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


@dataclass
class FetchItem:
    """The outcome for one source release.

    ``status`` is ``fetched`` (downloaded now), ``cached`` (taken from the cache, no request
    made), ``missing`` (offline and not in the cache) or ``failed``.
    """

    source: str
    release: str
    status: str
    filename: str | None = None
    path: Path | None = None
    cache_path: Path | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    checksum_status: str | None = None
    message: str = ""
    #: the landing page the file's link was found on (entries with ``link_pattern``)
    found_on: str | None = None
    download_name: str | None = None


@dataclass
class FetchReport:
    """What :func:`fetch_sources` did, one :class:`FetchItem` per requested source release."""

    out_dir: Path
    cache_dir: Path
    items: list[FetchItem] = field(default_factory=list)
    recorded_to: Path | None = None
    #: sources rightly left out (a quarterly source in a range without its month)
    notes: list[str] = field(default_factory=list)

    def _with(self, status: str) -> list[FetchItem]:
        return [item for item in self.items if item.status == status]

    @property
    def fetched(self) -> list[FetchItem]:
        """Items downloaded in this run."""
        return self._with("fetched")

    @property
    def cached(self) -> list[FetchItem]:
        """Items served from the cache."""
        return self._with("cached")

    @property
    def missing(self) -> list[FetchItem]:
        """Items absent from the cache in offline mode."""
        return self._with("missing")

    @property
    def failed(self) -> list[FetchItem]:
        """Items that could not be fetched (see each ``message``)."""
        return self._with("failed")

    @property
    def ok(self) -> bool:
        """True when every requested source is in the raw folder."""
        return not self.missing and not self.failed

    def summary(self) -> str:
        """Return a human-readable multi-line summary."""
        lines = [f"raw folder: {self.out_dir}", f"cache: {self.cache_dir}"]
        for item in self.items:
            head = f"{item.status:<8} {item.source} {item.release}"
            if item.status in ("fetched", "cached"):
                sha = (item.sha256 or "")[:12]
                found = f"; link found on {item.found_on}" if item.found_on else ""
                lines.append(
                    f"{head} -> {item.path} (sha256 {sha}…, {item.checksum_status}{found})"
                )
            else:
                lines.append(f"{head}: {item.message}")
        counts = ", ".join(
            f"{len(self._with(s))} {s}" for s in ("fetched", "cached", "missing", "failed")
        )
        lines.append(counts)
        lines.extend(f"note: {note}" for note in self.notes)
        if self.recorded_to is not None:
            lines.append(f"checksums recorded to {self.recorded_to}")
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`FetchError` listing every missing or failed item, if any."""
        bad = self.missing + self.failed
        if bad:
            details = "; ".join(f"{i.source} {i.release}: {i.message}" for i in bad)
            raise FetchError(f"{len(bad)} source(s) not fetched: {details}")


def default_cache_dir() -> Path:
    """Return the platform cache folder used when no cache folder is given."""
    return Path(pooch.os_cache("pophealth"))


def _remove_empty_dirs(start: Path, stop: Path) -> None:
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


#: kept beside a file found by link_pattern: its URL and where it was found, so that a later run
#: (and --offline) serves it from the cache without reading the landing page again
FOUND_LINK_FILE = "found-link.json"


def _found_link(entry: dict[str, Any], cache_dir: Path) -> dict[str, Any] | None:
    """The cached file's link record when it is for this entry and the file is in the cache."""
    try:
        record = json.loads((cache_dir / FOUND_LINK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("link_pattern") != entry["link_pattern"]:
        return None
    name = record.get("download_name")
    if not isinstance(name, str) or not _is_plain_name(name) or not (cache_dir / name).exists():
        return None
    return record


def _with_link(entry: dict[str, Any], url: str, name: str) -> dict[str, Any]:
    """The entry with the file found: its URL and name; a member only when the file is a zip."""
    if name.lower().endswith(".zip") and entry["member"] is None:
        raise FetchError(
            f"source '{entry['source']}' {entry['release']}: the link found is a zip archive "
            f"({url}) but the registry names no member to take out of it; set 'member'."
        )
    member = entry["member"] if name.lower().endswith(".zip") else None
    return {**entry, "url": url, "download_name": name, "member": member}


def _fetch_one(
    selection: _Selection,
    out_dir: Path,
    cache_root: Path,
    offline: bool,
    progress: bool,
    max_uncompressed_bytes: int,
) -> FetchItem:
    entry = selection.entry
    if entry is None:
        return FetchItem(selection.source, selection.release, "failed", message=selection.problem)
    item = FetchItem(
        entry["source"],
        entry["release"],
        "failed",
        filename=entry["filename"],
        url=entry["url"],
        checksum_status=entry["checksum_status"],
        download_name=entry["download_name"],
    )
    cache_dir = cache_root / entry["source"] / entry["release"]
    label = f"source '{entry['source']}' release {entry['release']}"
    expected = entry["sha256"]
    found = None  # the landing page the link was found on
    new_link = False  # found by reading the page in this run (not from the cache's record)
    try:
        if entry["url"] is None and entry["link_pattern"] is not None:
            record = _found_link(entry, cache_dir)
            if record is not None:
                found = record["landing_page"]
                entry = _with_link(entry, record["url"], record["download_name"])
            elif offline:
                item.status = "missing"
                item.message = (
                    f"not in the cache; its link is found on {entry['landing_page']} when "
                    "fetch runs online"
                )
                return item
            else:
                link = fetch_landing.find_file_link(
                    entry["landing_page"], entry["link_pattern"], label
                )
                found, new_link = link.page, True
                entry = _with_link(entry, link.url, link.name)
            item.url, item.download_name = entry["url"], entry["download_name"]
            item.found_on = found
        cache_path = cache_dir / entry["download_name"]
        item.cache_path = cache_path
        if entry["url"] is None and not cache_path.exists():
            item.message = (
                f"no download URL is known for {entry['source']} release {entry['release']} "
                f"({entry['download_name']}, url_status: {entry['url_status']}). Get it from "
                f"{entry['landing_page']} and add its URL to a registry copy (--registry FILE), "
                f"or save it as {cache_path} and run fetch again."
            )
            if offline:
                item.status = "missing"
            return item
        if entry["service"] == "arcgis_featureserver" and not offline:
            item.status = "cached" if cache_path.exists() else "fetched"
            if not cache_path.exists():
                fetch_arcgis.download_featureserver(entry["url"], cache_path)
            actual = sha256_of(cache_path)
            if expected is not None and actual != expected:
                cache_path.unlink()
                raise ChecksumMismatchError(entry["source"], entry["url"], expected, actual)
        elif offline or entry["url"] is None:
            if not cache_path.exists():
                item.status = "missing"
                item.message = f"{entry['download_name']} is not in the cache ({cache_path})"
                return item
            actual = sha256_of(cache_path)
            if expected is not None and actual != expected:
                item.status = "missing" if offline else "failed"
                item.message = (
                    f"cached {cache_path} has sha256 {actual}, registry expects {expected}"
                )
                return item
            item.status = "cached"
        else:
            before = cache_path.exists() and (expected is None or sha256_of(cache_path) == expected)
            downloader = ResumableDownloader(
                source=entry["source"],
                part_path=cache_dir / f"{entry['download_name']}.part",
                expected_sha256=expected,
                progressbar=progress,
            )
            pooch.retrieve(
                entry["url"],
                known_hash=f"sha256:{expected}" if expected else None,
                fname=entry["download_name"],
                path=cache_dir,
                downloader=downloader,
                progressbar=False,
            )
            item.status = "cached" if before and downloader.requests_made == 0 else "fetched"
            actual = sha256_of(cache_path)
        item.sha256 = actual
        item.size = cache_path.stat().st_size
        item.path = install_download(cache_path, entry, out_dir, max_uncompressed_bytes)
        if new_link:
            record = {
                "url": entry["url"],
                "download_name": entry["download_name"],
                "landing_page": found,
                "link_pattern": entry["link_pattern"],
                "found": date.today().isoformat(),
            }
            atomic_write_bytes(cache_dir / FOUND_LINK_FILE, json.dumps(record).encode("utf-8"))
        return item
    except (
        FetchError,
        fetch_arcgis.ArcGisError,
        fetch_landing.LandingPageError,
        requests.RequestException,
        OSError,
        ValueError,
    ) as exc:
        item.status = "failed"
        item.message = str(exc)
        if isinstance(exc, UnsafeArchiveError) and item.cache_path is not None:
            # A refused archive must not be served again from the cache.
            item.cache_path.unlink(missing_ok=True)
        _remove_empty_dirs(cache_dir, cache_root)
        return item


def _write_recorded_registry(
    registry: pd.DataFrame,
    selections: Sequence[_Selection],
    items: Sequence[FetchItem],
    record_to: Path,
) -> Path:
    record_to = Path(record_to)
    packaged = _packaged_registry_path()
    if record_to.resolve() == packaged.resolve():
        raise RegistryError(
            f"refusing to write into the registry installed with pophealth ({packaged}); "
            "give --record a path of your own and pass it later with --registry"
        )
    outcome = {
        (i.source, i.release): i for i in items if i.status in ("fetched", "cached") and i.sha256
    }
    rows = [
        {key: (None if _isna(value) else value) for key, value in row.items()}
        for row in registry.to_dict(orient="records")
    ]
    listed = {(row["source"], row["release"]) for row in rows}
    # a month taken from a series template becomes an entry of its own once fetched
    rows += [
        dict(s.entry)
        for s in selections
        if s.entry is not None
        and (s.source, s.release) not in listed
        and (s.source, s.release) in outcome
    ]
    today = date.today().isoformat()
    entries = []
    for entry in rows:
        done = outcome.get((entry["source"], entry["release"]))
        if done is not None and entry["sha256"] is None:
            entry["sha256"] = done.sha256
            entry["size"] = done.size
            entry["checksum_status"] = "recorded"
        if done is not None and done.found_on is not None and entry["url"] is None:
            # pin the link found, so later runs download exactly this file
            entry["url"], entry["download_name"] = done.url, done.download_name
            if not str(done.download_name).lower().endswith(".zip"):
                entry["member"] = None
            note = f"URL found on {done.found_on} by `pophealth fetch` on {today}."
            entry["notes"] = f"{entry['notes']} {note}" if entry["notes"] else note
        entries.append(entry)
    header = (
        "# Copy of the pophealth source registry with checksums recorded by\n"
        f"# `pophealth fetch --record` on {today} from "
        f"{registry.attrs.get('registry_path', 'a registry DataFrame')}.\n"
        "# Use it with `pophealth fetch --registry THIS_FILE`.\n"
    )
    document: dict[str, Any] = {"schema_version": 1, "entries": entries}
    if registry.attrs.get("series"):
        document["series"] = list(registry.attrs["series"].values())
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    atomic_write_bytes(record_to, (header + body).encode("utf-8"))
    return record_to


def fetch_sources(
    out_dir: str | os.PathLike[str],
    *,
    sources: str | Iterable[str] | None = None,
    release: str = "latest",
    registry: str | os.PathLike[str] | pd.DataFrame | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool = False,
    record_to: str | os.PathLike[str] | None = None,
    progress: bool = True,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    from_month: str | None = None,
    to_month: str | None = None,
) -> FetchReport:
    """Download source releases into ``out_dir`` under their official file names.

    Args:
        out_dir: The raw folder for ``pophealth prepare``.
        sources: Source names (a list or a comma-separated string); ``name@release`` pins one
            source's release. ``None`` fetches every source in the registry.
        release: ``"latest"`` (per source, the highest release label that has a download URL;
            the highest label of all when none has) or a release label
            applied to every source not pinned with ``@``.
        registry: A registry file or DataFrame from :func:`load_registry`; ``None`` uses the
            packaged registry.
        cache_dir: Download cache; defaults to :func:`default_cache_dir`.
        offline: Use the cache only; sources not in it are reported as ``missing``.
        record_to: Write a copy of the registry with the sha256 and size of files whose
            checksum was unknown (never the packaged registry itself).
        progress: Show tqdm progress bars.
        max_uncompressed_bytes: Refuse archives expanding beyond this many bytes.
        from_month: With ``to_month``, fetch every release from this month (``YYYY-MM``) to
            ``to_month`` instead of one release per source: each month of a monthly source, each
            quarterly month (Jan, Apr, Jul, Oct) of the LSOA registrations, and the registry
            releases in the range of any other source. Each release is installed in
            ``out_dir/releases/<release>/`` (the release-history layout, docs/history.md); a
            release in the range without a registry entry or URL fails, naming it and the
            landing page where its file is found.
        to_month: Last month of the range (inclusive).

    Returns:
        A :class:`FetchReport`; failures are reported in it, not raised (see
        :meth:`FetchReport.raise_for_failures`).

    Raises:
        RegistryError: For an invalid registry or a source name not in it.
    """
    frame = registry if isinstance(registry, pd.DataFrame) else load_registry(registry)
    if (from_month is None) != (to_month is None):
        raise RegistryError("give both --from and --to (YYYY-MM) for a range of releases")
    months = (from_month, to_month) if from_month is not None else None
    selections = _select_entries(frame, sources, release, months)
    out_path = Path(out_dir)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    report = FetchReport(out_dir=out_path, cache_dir=cache_root)
    for selection in selections:
        if selection.note is not None:
            report.notes.append(selection.note)
            continue
        target = out_path / "releases" / selection.release if months else out_path
        report.items.append(
            _fetch_one(selection, target, cache_root, offline, progress, max_uncompressed_bytes)
        )
    if record_to is not None:
        report.recorded_to = _write_recorded_registry(
            frame, selections, report.items, Path(record_to)
        )
    return report


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _run_fetch(args: argparse.Namespace) -> int:
    try:
        report = fetch_sources(
            args.out,
            sources=args.sources,
            release=args.release,
            registry=args.registry,
            cache_dir=args.cache,
            offline=args.offline,
            record_to=args.record,
            progress=not args.no_progress,
            from_month=args.from_month,
            to_month=args.to_month,
        )
    except RegistryError as exc:
        print(f"pophealth fetch: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.missing:
        print("\nNot in the cache (offline):")
        for item in report.missing:
            print(f"  {item.source} {item.release}: {item.filename}")
    return 0 if report.ok else 1


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``fetch`` subcommand; its handler is ``args.func(args) -> exit code``."""
    parser = subparsers.add_parser(
        "fetch",
        help="download official source files into a raw folder",
        description=(
            "Download official source releases listed in the source registry into a raw folder "
            "(cached, checksum-verified, resumable). Exit code 0 when every requested source is "
            "in the raw folder, 1 when any is missing or failed, 2 for a bad registry or name."
        ),
    )
    parser.add_argument("--out", default="data/raw", metavar="RAW", help="raw folder (data/raw)")
    parser.add_argument(
        "--sources", default=None, help="comma-separated sources, name@release to pin (all)"
    )
    parser.add_argument("--release", default="latest", help="release label or 'latest'")
    parser.add_argument(
        "--from",
        dest="from_month",
        default=None,
        metavar="YYYY-MM",
        help="first month of a range of releases (with --to); each goes to RAW/releases/<month>",
    )
    parser.add_argument(
        "--to", dest="to_month", default=None, metavar="YYYY-MM", help="last month of the range"
    )
    parser.add_argument("--registry", default=None, metavar="FILE", help="registry YAML file")
    parser.add_argument("--cache", default=None, metavar="DIR", help="download cache folder")
    parser.add_argument("--offline", action="store_true", help="use the cache only")
    parser.add_argument(
        "--record", default=None, metavar="FILE", help="write a registry copy with checksums"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=_run_fetch)
    return parser
