"""Paged downloads from ONS ArcGIS FeatureServer layers, assembled into the files loaders read.

ONS serves its lookups and boundaries as ArcGIS REST FeatureServer layers
(``https://services1.arcgis.com/ESMARspQHYMw9BZ9/arcgis/rest/services/<name>/FeatureServer/0``).
A layer returns at most its ``maxRecordCount`` features per query (2,000 for the ONS services),
so the whole layer is read in pages: ``query?where=1=1&outFields=*&resultOffset=N&
resultRecordCount=K&f=json`` (or ``f=geojson``), the next page while the response says
``exceededTransferLimit: true``. The pages are assembled into the layout the loaders read
(``docs/architecture.md``, FORMATS.md section 8):

* a **CSV** of the attribute table (``.csv`` file names: lookups), columns in the layer's field
  order, as the portal's CSV download;
* a **GeoJSON** FeatureCollection (``.geojson`` file names: boundaries), WGS84 as ArcGIS serves
  GeoJSON; the boundaries loader reprojects to EPSG:27700.

Responses are read as JSON only; nothing downloaded is executed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from pophealth.errors import PopHealthError
from pophealth.files import atomic_write_bytes

__all__ = ["MAX_PAGES", "PAGE_SIZE", "ArcGisError", "download_featureserver", "query_url"]

#: Features per request: the ONS services' maxRecordCount.
PAGE_SIZE = 2000
#: A layer larger than this many pages is refused (a server ignoring resultOffset loops forever).
MAX_PAGES = 5000
_TIMEOUT = 120


class ArcGisError(PopHealthError):
    """A FeatureServer query failed or returned something that is not a page of features."""


def query_url(url: str) -> str:
    """The layer's ``/query`` endpoint, from a layer URL or a query URL (its parameters dropped)."""
    base = url.split("?", 1)[0].rstrip("/")
    return base if base.endswith("/query") else f"{base}/query"


def _page(
    session: requests.Session, endpoint: str, offset: int, page_size: int, fmt: str
) -> dict[str, Any]:
    params = {
        "where": "1=1",
        "outFields": "*",
        "returnGeometry": "true" if fmt == "geojson" else "false",
        "resultOffset": str(offset),
        "resultRecordCount": str(page_size),
        "f": fmt,
    }
    response = session.get(endpoint, params=params, timeout=_TIMEOUT)
    if response.status_code != 200:
        raise ArcGisError(f"HTTP {response.status_code} from {response.url}")
    try:
        page = response.json()
    except ValueError as error:
        raise ArcGisError(
            f"{response.url} did not return JSON (an HTML page or a file?): {error}"
        ) from error
    if not isinstance(page, dict):
        raise ArcGisError(f"{response.url} returned {type(page).__name__}, not a page of features")
    if "error" in page:
        raise ArcGisError(f"{response.url} answered with an error: {page['error']}")
    if not isinstance(page.get("features"), list):
        raise ArcGisError(f"{response.url} returned no 'features' list")
    return page


def _exceeded(page: dict[str, Any]) -> bool:
    """Whether the server says more features follow (top level, or GeoJSON ``properties``)."""
    if page.get("exceededTransferLimit"):
        return True
    properties = page.get("properties")
    return bool(isinstance(properties, dict) and properties.get("exceededTransferLimit"))


def _csv_bytes(fields: list[str], rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow(["" if row.get(f) is None else row.get(f) for f in fields])
    return buffer.getvalue().encode("utf-8")


def download_featureserver(
    url: str,
    target: str | Path,
    *,
    page_size: int = PAGE_SIZE,
    session: requests.Session | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Read every feature of a FeatureServer layer in pages and write one file.

    Args:
        url: The layer (``…/FeatureServer/0``) or its ``/query`` URL.
        target: The file to write: ``.csv`` (attribute table, ``f=json`` pages) or ``.geojson``
            (FeatureCollection, ``f=geojson`` pages). Written atomically.
        page_size: ``resultRecordCount`` per request.
        session: A requests session (tests pass their own; default a new one).
        progress: Called with the number of features read so far after each page.

    Returns:
        ``{"features": n, "pages": n}``.

    Raises:
        ArcGisError: An HTTP error, an error payload, a response that is not a page of features,
            a layer with no features, or more than :data:`MAX_PAGES` pages.
    """
    target = Path(target)
    fmt = "geojson" if target.suffix.lower() in (".geojson", ".json") else "json"
    endpoint = query_url(url)
    session = session or requests.Session()
    features: list[dict[str, Any]] = []
    fields: list[str] = []
    pages = 0
    while True:
        page = _page(session, endpoint, len(features), page_size, fmt)
        pages += 1
        if not fields and fmt == "json":
            fields = [str(f["name"]) for f in page.get("fields", []) if "name" in f]
        batch = page["features"]
        features.extend(batch)
        if progress is not None:
            progress(len(features))
        if not batch or not _exceeded(page):
            break
        if pages >= MAX_PAGES:
            raise ArcGisError(f"{endpoint}: more than {MAX_PAGES} pages; refusing to go on")
    if not features:
        raise ArcGisError(f"{endpoint}: the layer returned no features")
    if fmt == "geojson":
        body = json.dumps({"type": "FeatureCollection", "features": features}).encode("utf-8")
    else:
        rows = [f.get("attributes") or {} for f in features]
        if not fields:  # a server that lists no fields: the first row's order
            fields = list(dict.fromkeys(k for row in rows for k in row))
        body = _csv_bytes(fields, rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, body)
    return {"features": len(features), "pages": pages}
