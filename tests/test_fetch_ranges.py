"""`pophealth fetch --from/--to` and paged ArcGIS FeatureServer downloads, on a loopback server.

No test touches the network: every URL is a local HTTP server serving fake files and fake
FeatureServer pages.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import yaml
from loopback import LoopbackHTTP, no_proxy_for_loopback  # noqa: F401 (fixture)

from pophealth import cli, fetch, fetch_arcgis
from pophealth.sources import lookups

LOOKUP_FIELDS = ["LSOA21CD", "LSOA21NM", "SICBL23CD", "SICBL23CDH", "SICBL23NM", "ICB23CD"]
LOOKUP_FIELDS += ["ICB23CDH", "ICB23NM", "LAD23CD", "LAD23NM", "ObjectId"]


def _lookup_row(i: int) -> dict:
    return {
        "LSOA21CD": f"E0100{i:04d}",
        "LSOA21NM": f"Demo {i:03d}A",
        "SICBL23CD": "E38000247",
        "SICBL23CDH": "16C",
        "SICBL23NM": "NHS Tees Valley ICB - 16C",
        "ICB23CD": "E54000050",
        "ICB23CDH": "QHM",
        "ICB23NM": "NHS North East and North Cumbria ICB",
        "LAD23CD": "E06000004",
        "LAD23NM": "Stockton-on-Tees",
        "ObjectId": i + 1,
    }


class FeatureServer(LoopbackHTTP):
    """A fake ArcGIS FeatureServer layer: pages of ``page_cap`` features at most per query.

    Also serves plain files (``add``); ``log`` records every query's parameters, ``paths`` its path.
    """

    def __init__(self, rows: list[dict], page_cap: int = 3) -> None:
        self.rows, self.page_cap = rows, page_cap
        self.files: dict[str, bytes] = {}
        self.log: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.error: dict | None = None
        super().__init__()
        self.layer = (
            f"{self.base}/arcgis/rest/services/LSOA21_SICBL23_ICB23_LAD23_EN_LU/FeatureServer/0"
        )

    def add(self, name: str, body: bytes) -> str:
        self.files[f"/{name}"] = body
        return f"{self.base}/{name}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(handler.path)
        if parsed.path in self.files:
            self._send(handler, self.files[parsed.path], "application/octet-stream")
            return
        if not parsed.path.endswith("/FeatureServer/0/query"):
            handler.send_error(404)
            return
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        self.log.append(query)
        self.paths.append(parsed.path)
        if self.error is not None:
            self._send(handler, json.dumps({"error": self.error}).encode(), "application/json")
            return
        offset = int(query.get("resultOffset", 0))
        count = min(int(query.get("resultRecordCount", 1000)), self.page_cap)
        rows = self.rows[offset : offset + count]
        more = offset + count < len(self.rows)
        if query.get("f") == "geojson":
            body = {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": r["ObjectId"],
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [[-1.3, 54.5], [-1.29, 54.5], [-1.29, 54.51], [-1.3, 54.5]]
                            ],
                        },
                        "properties": {"LSOA21CD": r["LSOA21CD"], "LSOA21NM": r["LSOA21NM"]},
                    }
                    for r in rows
                ],
            }
            if more:
                body["properties"] = {"exceededTransferLimit": True}
        else:
            body = {
                "objectIdFieldName": "ObjectId",
                "fields": [{"name": f, "type": "esriFieldTypeString"} for f in LOOKUP_FIELDS],
                "features": [{"attributes": r} for r in rows],
            }
            if more:
                body["exceededTransferLimit"] = True
        self._send(handler, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, body: bytes, content_type: str) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


pytestmark = pytest.mark.usefixtures("no_proxy_for_loopback")


@pytest.fixture
def server():
    srv = FeatureServer([_lookup_row(i) for i in range(8)])
    yield srv
    srv.close()


def _entry(source: str, release: str, url: str | None, filename: str, **extra) -> dict:
    return {
        "source": source,
        "release": release,
        "url": url,
        "url_status": "documented" if url else "unverified",
        "member": None,
        "filename": filename,
        "sha256": None,
        "checksum_status": "unknown",
        "size": None,
        "publisher": "ONS",
        "licence": "OGL v3.0",
        "landing_page": f"https://example.invalid/landing/{source}/{release}",
        **extra,
    }


def _registry(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"schema_version": 1, "entries": entries}), encoding="utf-8")
    return path


def _totals(month: str) -> bytes:
    return (
        "PUBLICATION,EXTRACT_DATE,TYPE,SUB_ICB_LOCATION_CODE,ONS_SUB_ICB_LOCATION_CODE,CODE,"
        f"POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\nGP_PRAC_PAT_LIST,{month}-01,GP,16C,E38000247,"
        "A81001,TS18 1HU,ALL,ALL,3827\n"
    ).encode()


def test_featureserver_pages_are_assembled_into_the_lookup_csv(server, tmp_path):
    target = tmp_path / "LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv"
    stats = fetch_arcgis.download_featureserver(server.layer, target, page_size=3)
    assert stats == {"features": 8, "pages": 3}
    offsets = [q["resultOffset"] for q in server.log]
    assert offsets == ["0", "3", "6"] and {q["f"] for q in server.log} == {"json"}
    assert {q["where"] for q in server.log} == {"1=1"} and server.log[0]["outFields"] == "*"
    frame = pd.read_csv(target, dtype=str)
    assert list(frame.columns) == LOOKUP_FIELDS  # the layer's field order, as the CSV download
    assert frame["LSOA21CD"].tolist() == [f"E0100{i:04d}" for i in range(8)]
    loaded = lookups.load_lsoa21_lookup(target)  # the loader reads the assembled file
    assert len(loaded) == 8 and loaded["lsoa21_code"].is_unique


def test_featureserver_geojson_pages_make_one_feature_collection(server, tmp_path):
    target = tmp_path / "LSOA_2021_EW_BSC_V4.geojson"
    stats = fetch_arcgis.download_featureserver(f"{server.layer}/query?f=geojson", target)
    assert stats["features"] == 8 and stats["pages"] == 3  # server caps pages at 3
    document = json.loads(target.read_text())
    assert document["type"] == "FeatureCollection" and len(document["features"]) == 8
    assert {q["f"] for q in server.log} == {"geojson"}
    assert {q["returnGeometry"] for q in server.log} == {"true"}


def test_featureserver_error_payload_is_reported_and_nothing_written(server, tmp_path):
    server.error = {"code": 400, "message": "Invalid or missing input parameters."}
    target = tmp_path / "lookup.csv"
    with pytest.raises(fetch_arcgis.ArcGisError, match="Invalid or missing input"):
        fetch_arcgis.download_featureserver(server.layer, target)
    assert not target.exists()


def test_fetch_a_featureserver_registry_entry(server, tmp_path):
    registry = _registry(
        tmp_path / "registry.yaml",
        [
            _entry(
                "lsoa21_lookup",
                "2023",
                server.layer,
                "LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv",
                service="arcgis_featureserver",
            )
        ],
    )
    report = fetch.fetch_sources(
        tmp_path / "raw", registry=registry, cache_dir=tmp_path / "cache", progress=False
    )
    assert report.ok, report.summary()
    written = tmp_path / "raw" / "LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv"
    assert written.exists() and len(pd.read_csv(written)) == 8
    again = fetch.fetch_sources(
        tmp_path / "raw", registry=registry, cache_dir=tmp_path / "cache", progress=False
    )
    assert [i.status for i in again.items] == ["cached"]  # no second paged download
    assert len(server.log) == 3


def test_fetch_a_range_of_monthly_and_quarterly_releases(server, tmp_path):
    months = ["2025-07", "2025-08", "2025-09"]
    entries = [
        _entry("practice_totals", m, server.add(f"{m}/gp-reg-pat-prac-all.csv", _totals(m)),
               "gp-reg-pat-prac-all.csv")
        for m in months
    ]  # fmt: skip
    entries.append(
        _entry("practice_totals", "2025-10", server.add("x.csv", _totals("2025-10")), "t.csv")
    )
    registry = _registry(tmp_path / "registry.yaml", entries)
    report = fetch.fetch_sources(
        tmp_path / "raw",
        sources="practice_totals",
        registry=registry,
        cache_dir=tmp_path / "cache",
        progress=False,
        from_month="2025-07",
        to_month="2025-09",
    )
    assert report.ok, report.summary()
    assert [i.release for i in report.items] == months
    for m in months:
        path = tmp_path / "raw" / "releases" / m / "gp-reg-pat-prac-all.csv"
        assert f"{m}-01" in path.read_text()
    assert fetch.expected_releases("registrations_lsoa", "2024-11", "2025-10", []) == [
        "2025-01",
        "2025-04",
        "2025-07",
        "2025-10",
    ]


def test_a_release_in_the_range_without_entry_or_url_is_named_with_its_landing_page(
    server, tmp_path, capsys
):
    registry = _registry(
        tmp_path / "registry.yaml",
        [
            _entry(
                "registrations_lsoa",
                "2025-04",
                server.add("apr.csv", b"x"),
                "gp-reg-pat-prac-lsoa-all.csv",
            ),
            _entry("registrations_lsoa", "2025-07", None, "gp-reg-pat-prac-lsoa-all.csv"),
        ],
    )
    report = fetch.fetch_sources(
        tmp_path / "raw",
        sources=["registrations_lsoa"],
        registry=registry,
        cache_dir=tmp_path / "cache",
        progress=False,
        from_month="2025-01",
        to_month="2025-07",
    )
    by_release = {i.release: i for i in report.items}
    assert set(by_release) == {"2025-01", "2025-04", "2025-07"}
    assert by_release["2025-04"].status == "fetched"
    missing = by_release["2025-01"]
    assert missing.status == "failed" and "release 2025-01 of 'registrations_lsoa'" in (
        missing.message
    )
    assert "https://example.invalid/landing/registrations_lsoa/2025-04" in missing.message
    no_url = by_release["2025-07"]
    assert no_url.status == "failed" and "registrations_lsoa release 2025-07" in no_url.message
    assert "https://example.invalid/landing/registrations_lsoa/2025-07" in no_url.message
    code = cli.main(
        [
            "fetch",
            "--out",
            str(tmp_path / "raw2"),
            "--sources",
            "registrations_lsoa",
            "--registry",
            str(registry),
            "--cache",
            str(tmp_path / "cache"),
            "--from",
            "2025-01",
            "--to",
            "2025-07",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "release 2025-01 of 'registrations_lsoa'" in out
    assert (tmp_path / "raw2" / "releases" / "2025-04" / "gp-reg-pat-prac-lsoa-all.csv").exists()


def test_range_arguments_are_checked(tmp_path):
    registry = _registry(
        tmp_path / "registry.yaml", [_entry("practice_totals", "2025-07", None, "t.csv")]
    )
    with pytest.raises(fetch.RegistryError, match="both --from and --to"):
        fetch.fetch_sources(tmp_path, registry=registry, from_month="2025-07")
    with pytest.raises(fetch.RegistryError, match="after"):
        fetch.fetch_sources(tmp_path, registry=registry, from_month="2025-09", to_month="2025-07")


def test_packaged_registry_featureserver_and_documented_entries():
    registry = fetch.load_registry()
    served = registry[registry["service"] == "arcgis_featureserver"]
    layers = {"lsoa21_lookup", "lsoa11_lsoa21_lookup", "lsoa_boundaries", "boundaries_icb"}
    assert layers <= set(served["source"])
    assert (
        served["url"]
        .str.startswith("https://services1.arcgis.com/ESMARspQHYMw9BZ9/arcgis/rest/services/")
        .all()
    )
    lsoa = registry[registry["source"] == "registrations_lsoa"]
    quarters = fetch.expected_releases("registrations_lsoa", "2023-10", "2025-10", [])
    assert set(quarters) <= set(lsoa["release"])  # every quarter of two years is listed
    documented = lsoa[lsoa["url_status"] == "documented"]
    assert documented["url"].str.startswith("https://files.digital.nhs.uk/").all()


def _packaged_entry(source: str, release: str) -> dict:
    document = yaml.safe_load(fetch._packaged_registry_path().read_text(encoding="utf-8"))
    (entry,) = [
        e for e in document["entries"] if e["source"] == source and str(e["release"]) == release
    ]
    return entry


def test_packaged_registry_issue14_urls_are_documented_or_left_null():
    registry = fetch.load_registry()
    # every documented entry carries its URL; no NHS England file URL is guessed: the quarters
    # without a public URL are found on their landing pages
    assert registry.loc[registry["url_status"] == "documented", "url"].notna().all()
    lsoa = registry[registry["source"] == "registrations_lsoa"].set_index("release")
    for release in ("2024-07", "2024-10", "2025-01", "2025-10", "2026-07", "2026-10"):
        assert lsoa.loc[release, "url_status"] == "landing_page"
        assert pd.isna(lsoa.loc[release, "url"])  # the files.digital.nhs.uk hash is unguessable
        assert lsoa.loc[release, "link_pattern"][0].startswith("gp-reg-pat-prac-lsoa-2021-")
    census = registry[registry["source"].str.startswith("census_ts")]
    assert len(census) == 10 and (census["url_status"] == "documented").all()
    for _, row in census.iterrows():
        table = row["source"].removeprefix("census_")
        bulk = "https://www.nomisweb.co.uk/output/census/2021/census2021-"
        assert row["url"] == f"{bulk}{table}.zip"
        assert row["member"] == row["filename"] == f"census2021-{table}-lsoa.csv"
    epcn = registry[registry["source"] == "epcn"].iloc[0]
    assert epcn["url_status"] == "documented" and epcn["member"] == "ePCN.xlsx"
    assert urlparse(epcn["url"]).netloc == "digital.nhs.uk" and epcn["url"].endswith("/epcn.zip")
    icb = registry[registry["source"] == "boundaries_icb"].iloc[0]
    assert icb["url_status"] == "documented" and icb["service"] == "arcgis_featureserver"
    assert fetch_arcgis.query_url(icb["url"]) == icb["url"]  # recorded as its /query endpoint
    assert "/Integrated_Care_Boards_April_2023_EN_BSC/FeatureServer/0/" in icb["url"]


def test_packaged_icb_entry_is_paged_from_its_query_url(server, tmp_path):
    """The packaged boundaries_icb entry, re-pointed at the loopback server, fetches as GeoJSON."""
    entry = _packaged_entry("boundaries_icb", "2023-04")
    path = urlparse(entry["url"]).path
    entry["url"] = f"{server.base}{path}"
    registry = _registry(tmp_path / "registry.yaml", [entry])
    report = fetch.fetch_sources(
        tmp_path / "raw", registry=registry, cache_dir=tmp_path / "cache", progress=False
    )
    assert report.ok, report.summary()
    document = json.loads((tmp_path / "raw" / entry["filename"]).read_text())
    assert document["type"] == "FeatureCollection" and len(document["features"]) == 8
    assert set(server.paths) == {path}  # the recorded /query endpoint, not .../query/query
    assert {q["f"] for q in server.log} == {"geojson"}
    assert [q["resultOffset"] for q in server.log] == ["0", "3", "6"]
