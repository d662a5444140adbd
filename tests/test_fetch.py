"""Tests of pophealth.fetch against a real HTTP server on 127.0.0.1 (no mocks of pooch or HTTP)."""

from __future__ import annotations

import argparse
import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml
from loopback import LoopbackHTTP, no_proxy_for_loopback  # noqa: F401 (fixture)

from pophealth import fetch
from pophealth.fetch import RegistryError, fetch_sources, load_registry

# The sources the project needs, written out independently of pophealth.fetch.KNOWN_SOURCES so
# that dropping one from the packaged registry (or from the constant) fails a test.
EXPECTED_SOURCES = [
    "registrations_lsoa",
    "practice_totals",
    "practice_age_bands",
    "practice_single_age_male",
    "practice_single_age_female",
    "practice_map",
    "epcn",
    "ods_successors",
    "workforce",
    "pcn_workforce",
    "payments",
    "iod2025",
    "iod2019",
    "lsoa11_lsoa21_lookup",
    "lsoa21_lookup",
    "lsoa_boundaries",
    "boundaries_icb",
    "census_ts007a",
    "census_ts037",
    "census_ts038",
    "census_ts021",
    "census_ts011",
    "census_ts054",
    "census_ts039",
    "census_ts029",
    "census_ts045",
    "census_ts003",
    "qof",
]
EXPECTED_KEYS = (
    "source release url member filename sha256 size publisher licence landing_page".split()
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Files in the official formats
# ---------------------------------------------------------------------------------------------

LSOA_HEADER = (
    "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,NUMBER_OF_PATIENTS"
)


def lsoa_csv(sex: str) -> bytes:
    rows = [
        ("A81001", "THE DENSHAM SURGERY", "E01011959", 7),
        ("A81001", "THE DENSHAM SURGERY", "E01012046", 112),
        ("A81001", "THE DENSHAM SURGERY", "CLOSED", 3),
        ("A81002", "QUEENS PARK MEDICAL CENTRE", "W01000001", 1),
    ]
    lines = [LSOA_HEADER] + [
        f"GP_PRAC_PAT_LIST,2025-10-01,{code},{name},{lsoa},{sex},{n}"
        for code, name, lsoa, n in rows
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


LSOA_ALL = lsoa_csv("ALL")
LSOA_ZIP = zip_bytes(
    {
        "gp-reg-pat-prac-lsoa-all.csv": LSOA_ALL,
        "gp-reg-pat-prac-lsoa-male.csv": lsoa_csv("MALE"),
        "gp-reg-pat-prac-lsoa-female.csv": lsoa_csv("FEMALE"),
    }
)

TOTALS_CSV = (
    b"PUBLICATION,EXTRACT_DATE,TYPE,SUB_ICB_LOCATION_CODE,ONS_SUB_ICB_LOCATION_CODE,CODE,"
    b"POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
    b"GP_PRAC_PAT_LIST,2025-10-01,GP,16C,E38000247,A81001,TS18 1HU,ALL,ALL,3827\n"
    b"GP_PRAC_PAT_LIST,2025-10-01,GP,16C,E38000247,A81002,TS18 2AW,ALL,ALL,18706\n"
)


def epcn_xlsx() -> bytes:
    book = openpyxl.Workbook()
    details = book.active
    details.title = "PCNDetails"
    details.append(["PCN Code", "PCN Name", "Current Sub ICB Loc Code", "Sub ICB Location"])
    details.append(["U00351", "TEST PCN", "16C", "NHS TEES VALLEY ICB - 16C"])
    partners = book.create_sheet("PCN Core Partner Details")
    partners.append(
        [
            "Partner\nOrganisation\nCode",
            "Partner\nName",
            "PCN Code",
            "Practice to PCN\nRelationship\nStart Date",
        ]
    )
    partners.append(["A81001", "THE DENSHAM SURGERY", "U00351", 20200401])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


EPCN_XLSX = epcn_xlsx()
EPCN_ZIP = zip_bytes({"ePCN.xlsx": EPCN_XLSX})


# ---------------------------------------------------------------------------------------------
# A loopback HTTP server with Range support and misbehaving modes
# ---------------------------------------------------------------------------------------------


class LoopbackServer(LoopbackHTTP):
    """Serves in-memory files; ``log`` records (path, Range header, status) per request.

    Modes: ``range`` (honours Range), ``norange`` (ignores Range), ``truncate_once`` and
    ``truncate_once_norange`` (first GET announces the full Content-Length, sends half the
    body and closes the connection; later GETs as ``range`` / ``norange``), ``html``.
    """

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        super().__init__()

    def add(self, name: str, body: bytes, mode: str = "range") -> str:
        self.files[f"/{name}"] = (body, mode)
        return f"{self.base}/{name}"

    def requests_for(self, name: str) -> list[tuple[str, str | None, int]]:
        return [entry for entry in self.log if entry[0] == f"/{name}"]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        range_header = handler.headers.get("Range")
        with self.lock:
            previous = sum(1 for path, _, _ in self.log if path == handler.path)
        if handler.path not in self.files:
            self._record(handler, range_header, 404)
            handler.send_error(404)
            return
        body, mode = self.files[handler.path]
        content_type = "text/html" if mode == "html" else "application/octet-stream"
        if mode.startswith("truncate_once") and previous == 0:
            self._record(handler, range_header, 200)
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        if range_header and "norange" not in mode:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self._record(handler, range_header, 416)
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            self._record(handler, range_header, 206)
            handler.send_response(206)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            handler.send_header("Content-Length", str(len(body) - start))
            handler.end_headers()
            handler.wfile.write(body[start:])
            return
        self._record(handler, range_header, 200)
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if "norange" not in mode:
            handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        handler.wfile.write(body)

    def _record(self, handler: BaseHTTPRequestHandler, range_header: str | None, status: int):
        with self.lock:
            self.log.append((handler.path, range_header, status))


pytestmark = pytest.mark.usefixtures("no_proxy_for_loopback")


@pytest.fixture
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


def entry(
    source: str,
    url: str | None,
    filename: str,
    *,
    release: str = "2025-10",
    member: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    download_name: str | None = None,
) -> dict:
    return {
        "source": source,
        "release": release,
        "url": url,
        "url_status": "documented",
        "download_name": download_name,
        "member": member,
        "filename": filename,
        "sha256": sha256,
        "checksum_status": "known" if sha256 else "unknown",
        "size": size,
        "publisher": "NHS England",
        "licence": "OGL v3.0",
        "landing_page": "https://example.invalid/landing",
    }


def lsoa_zip_entry(url: str, **overrides: str | int) -> dict:
    """Registry entry for the LSOA registrations zip served at ``url``."""
    name = "gp-reg-pat-prac-lsoa-all.csv"
    return entry("registrations_lsoa", url, name, member=name, **overrides)


def write_registry(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"schema_version": 1, "entries": entries}), encoding="utf-8")
    return path


def fetch_into_tmp(
    tmp_path: Path,
    entries: list[dict],
    max_uncompressed_bytes: int = fetch.DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> fetch.FetchReport:
    """Fetch ``entries`` as a registry in ``tmp_path`` into its ``raw`` and ``cache`` folders."""
    return fetch_sources(
        tmp_path / "raw",
        registry=write_registry(tmp_path / "registry.yaml", entries),
        cache_dir=tmp_path / "cache",
        progress=False,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def official_registry(server: LoopbackServer, tmp_path: Path) -> Path:
    lsoa_url = server.add("gp-reg-pat-prac-lsoa-2021-male-female-Oct-25.zip", LSOA_ZIP)
    epcn_url = server.add("epcn.zip", EPCN_ZIP)
    totals_url = server.add("gp-reg-pat-prac-all.csv", TOTALS_CSV)
    return write_registry(
        tmp_path / "registry.yaml",
        [
            lsoa_zip_entry(lsoa_url, sha256=sha(LSOA_ZIP), size=len(LSOA_ZIP)),
            entry(
                "epcn",
                epcn_url,
                "ePCN.xlsx",
                release="current",
                member="ePCN.xlsx",
                sha256=sha(EPCN_ZIP),
            ),
            entry("practice_totals", totals_url, "gp-reg-pat-prac-all.csv", sha256=sha(TOTALS_CSV)),
        ],
    )


# ---------------------------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------------------------


def test_fetch_official_files_with_checksums(official_registry: Path, tmp_path: Path) -> None:
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    report = fetch_sources(raw, registry=official_registry, cache_dir=cache, progress=False)

    assert report.ok, report.summary()
    assert [i.status for i in report.items] == ["fetched", "fetched", "fetched"]
    assert (raw / "gp-reg-pat-prac-lsoa-all.csv").read_bytes() == LSOA_ALL
    assert (raw / "gp-reg-pat-prac-all.csv").read_bytes() == TOTALS_CSV
    assert (raw / "ePCN.xlsx").read_bytes() == EPCN_XLSX
    # Only the named member is taken out of the zip.
    assert sorted(p.name for p in raw.iterdir()) == [
        "ePCN.xlsx",
        "gp-reg-pat-prac-all.csv",
        "gp-reg-pat-prac-lsoa-all.csv",
    ]
    lsoa = pd.read_csv(raw / "gp-reg-pat-prac-lsoa-all.csv", dtype=str)
    assert list(lsoa.columns) == LSOA_HEADER.split(",")
    assert "CLOSED" in set(lsoa["LSOA_CODE"])
    book = openpyxl.load_workbook(raw / "ePCN.xlsx", read_only=True)
    assert book.sheetnames == ["PCNDetails", "PCN Core Partner Details"]
    by_source = {i.source: i for i in report.items}
    assert by_source["registrations_lsoa"].sha256 == sha(LSOA_ZIP)
    assert by_source["registrations_lsoa"].size == len(LSOA_ZIP)
    assert by_source["registrations_lsoa"].path == raw / "gp-reg-pat-prac-lsoa-all.csv"
    # The cache holds the downloads under source/release and no partial files.
    assert (cache / "registrations_lsoa" / "2025-10" / LSOA_ZIP_NAME).read_bytes() == LSOA_ZIP
    assert not [p for p in files_under(cache) if p.name.endswith((".part", ".json", ".tmp"))]


LSOA_ZIP_NAME = "gp-reg-pat-prac-lsoa-2021-male-female-Oct-25.zip"


def test_second_run_is_served_from_cache_without_requests(
    official_registry: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = fetch_sources(tmp_path / "raw1", registry=official_registry, cache_dir=cache)
    assert first.ok
    requests_after_first = len(server.log)
    assert requests_after_first == 3

    second = fetch_sources(
        tmp_path / "raw2", registry=official_registry, cache_dir=cache, progress=False
    )

    assert len(server.log) == requests_after_first  # the server was not contacted
    assert [i.status for i in second.items] == ["cached", "cached", "cached"]
    assert (tmp_path / "raw2" / "gp-reg-pat-prac-lsoa-all.csv").read_bytes() == LSOA_ALL
    offline = fetch_sources(
        tmp_path / "raw3", registry=official_registry, cache_dir=cache, offline=True
    )
    assert offline.ok and len(server.log) == requests_after_first


def test_offline_reports_exactly_what_is_missing(
    official_registry: Path, server: LoopbackServer, tmp_path: Path, capsys
) -> None:
    cache = tmp_path / "cache"
    fetch_sources(
        tmp_path / "raw0",
        sources="practice_totals",
        registry=official_registry,
        cache_dir=cache,
        progress=False,
    )
    requests_before = len(server.log)

    report = fetch_sources(
        tmp_path / "raw", registry=official_registry, cache_dir=cache, offline=True
    )

    assert len(server.log) == requests_before
    assert not report.ok
    assert sorted(i.source for i in report.missing) == ["epcn", "registrations_lsoa"]
    assert [i.source for i in report.cached] == ["practice_totals"]
    missing_lsoa = next(i for i in report.missing if i.source == "registrations_lsoa")
    assert LSOA_ZIP_NAME in missing_lsoa.message

    parser = argparse.ArgumentParser(prog="pophealth")
    fetch.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["fetch", "--out", str(tmp_path / "raw"), "--registry", str(official_registry)]
        + ["--cache", str(cache), "--offline", "--no-progress"]
    )
    exit_code = args.func(args)
    printed = capsys.readouterr().out
    assert exit_code == 1
    assert "Not in the cache (offline):" in printed
    assert "registrations_lsoa 2025-10: gp-reg-pat-prac-lsoa-all.csv" in printed
    assert "epcn current: ePCN.xlsx" in printed
    assert "practice_totals 2025-10:" not in printed.split("Not in the cache")[1]


def test_checksum_mismatch_is_refused_and_leaves_nothing(
    server: LoopbackServer, tmp_path: Path
) -> None:
    good = TOTALS_CSV
    corrupted = good.replace(b"3827", b"9999")
    url = server.add("gp-reg-pat-prac-all.csv", corrupted)
    registry = write_registry(
        tmp_path / "registry.yaml",
        [entry("practice_totals", url, "gp-reg-pat-prac-all.csv", sha256=sha(good))],
    )
    raw, cache = tmp_path / "raw", tmp_path / "cache"

    report = fetch_sources(raw, registry=registry, cache_dir=cache, progress=False)

    (item,) = report.failed
    assert "practice_totals" in item.message
    assert url in item.message
    assert sha(good) in item.message and sha(corrupted) in item.message
    assert files_under(cache) == []
    assert files_under(raw) == []
    with pytest.raises(fetch.FetchError, match="practice_totals"):
        report.raise_for_failures()


def test_truncated_transfer_resumes_with_range_request(
    server: LoopbackServer, tmp_path: Path
) -> None:
    url = server.add(LSOA_ZIP_NAME, LSOA_ZIP, mode="truncate_once")
    registry = write_registry(
        tmp_path / "registry.yaml",
        [lsoa_zip_entry(url, sha256=sha(LSOA_ZIP))],
    )
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    half = len(LSOA_ZIP) // 2

    first = fetch_sources(raw, registry=registry, cache_dir=cache, progress=False)

    (failed,) = first.failed
    assert "resume" in failed.message
    part = cache / "registrations_lsoa" / "2025-10" / f"{LSOA_ZIP_NAME}.part"
    assert part.stat().st_size == half
    assert not (cache / "registrations_lsoa" / "2025-10" / LSOA_ZIP_NAME).exists()
    assert files_under(raw) == []

    second = fetch_sources(raw, registry=registry, cache_dir=cache, progress=True)

    assert second.ok, second.summary()
    assert server.requests_for(LSOA_ZIP_NAME)[-1] == (f"/{LSOA_ZIP_NAME}", f"bytes={half}-", 206)
    assert second.items[0].sha256 == sha(LSOA_ZIP)
    assert (raw / "gp-reg-pat-prac-lsoa-all.csv").read_bytes() == LSOA_ALL
    assert not part.exists()


def test_server_without_range_support_falls_back_to_full_download(
    server: LoopbackServer, tmp_path: Path
) -> None:
    url = server.add("gp-reg-pat-prac-all.csv", TOTALS_CSV, mode="truncate_once_norange")
    registry = write_registry(
        tmp_path / "registry.yaml",
        [entry("practice_totals", url, "gp-reg-pat-prac-all.csv", sha256=sha(TOTALS_CSV))],
    )
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    assert fetch_sources(raw, registry=registry, cache_dir=cache, progress=False).failed

    report = fetch_sources(raw, registry=registry, cache_dir=cache, progress=False)

    assert report.ok, report.summary()
    last = server.requests_for("gp-reg-pat-prac-all.csv")[-1]
    assert last[1] == f"bytes={len(TOTALS_CSV) // 2}-" and last[2] == 200  # range ignored
    assert (raw / "gp-reg-pat-prac-all.csv").read_bytes() == TOTALS_CSV
    assert report.items[0].sha256 == sha(TOTALS_CSV)


def test_unknown_checksum_download_without_range_support(
    server: LoopbackServer, tmp_path: Path
) -> None:
    # A truncated file of unknown checksum must still never reach the cache or raw folder.
    url = server.add("gp-reg-pat-prac-all.csv", TOTALS_CSV, mode="truncate_once_norange")
    registry = write_registry(
        tmp_path / "registry.yaml", [entry("practice_totals", url, "gp-reg-pat-prac-all.csv")]
    )
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    first = fetch_sources(raw, registry=registry, cache_dir=cache, progress=False)
    assert first.failed and files_under(raw) == []
    assert not (cache / "practice_totals" / "2025-10" / "gp-reg-pat-prac-all.csv").exists()

    second = fetch_sources(raw, registry=registry, cache_dir=cache, progress=False)
    assert second.ok
    assert (raw / "gp-reg-pat-prac-all.csv").read_bytes() == TOTALS_CSV


def hostile_zip(tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("gp-reg-pat-prac-lsoa-all.csv", LSOA_ALL)
        archive.writestr(zipfile.ZipInfo("../../evil.txt"), b"escaped")
        archive.writestr(zipfile.ZipInfo(str(tmp_path / "abs_evil.txt")), b"absolute")
    data = buffer.getvalue()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "../../evil.txt" in names and str(tmp_path / "abs_evil.txt") in names
    return data


def symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("gp-reg-pat-prac-lsoa-all.csv", LSOA_ALL)
        link = zipfile.ZipInfo("link-to-etc")
        link.external_attr = (0o120777 << 16) | 0x10
        archive.writestr(link, "/etc")
    return buffer.getvalue()


def bomb_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("gp-reg-pat-prac-lsoa-all.csv", b"0" * (8 * 1024**2))
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["gp-reg-pat-prac-lsoa-all.csv", "*"])
@pytest.mark.parametrize("kind", ["traversal_and_absolute", "symlink", "bomb"])
def test_hostile_zip_is_rejected_without_writing_anything(
    server: LoopbackServer, tmp_path: Path, kind: str, member: str
) -> None:
    data = {
        "traversal_and_absolute": hostile_zip(tmp_path),
        "symlink": symlink_zip(),
        "bomb": bomb_zip(),
    }[kind]
    url = server.add("hostile.zip", data)
    registry = write_registry(
        tmp_path / "registry.yaml",
        [
            entry(
                "registrations_lsoa",
                url,
                "gp-reg-pat-prac-lsoa-all.csv",
                member=member,
                sha256=sha(data),
            )
        ],
    )
    raw = tmp_path / "deep" / "er" / "raw"
    cache = tmp_path / "cache"

    report = fetch_sources(raw, registry=registry, cache_dir=cache, progress=False)

    (item,) = report.failed
    assert "refused" in item.message
    assert files_under(raw) == []
    assert files_under(cache) == []  # a refused archive is not kept for reuse
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "registry.yaml"]
    assert written == []
    assert not (tmp_path / "deep" / "evil.txt").exists()


def test_zip_over_size_limit_is_rejected(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.add(LSOA_ZIP_NAME, LSOA_ZIP)
    report = fetch_into_tmp(
        tmp_path, [lsoa_zip_entry(url)], max_uncompressed_bytes=len(LSOA_ALL) - 1
    )
    assert "limit" in report.failed[0].message
    assert files_under(tmp_path / "raw") == []


def test_html_landing_page_is_not_saved_as_data(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.add("landing", b"<html><body>Publication page</body></html>", mode="html")
    report = fetch_into_tmp(
        tmp_path, [entry("practice_totals", url, "gp-reg-pat-prac-all.csv", download_name="x.csv")]
    )
    assert "HTML page" in report.failed[0].message
    assert files_under(tmp_path / "raw") == [] and files_under(tmp_path / "cache") == []


def test_missing_member_names_close_matches(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.add(LSOA_ZIP_NAME, LSOA_ZIP)
    report = fetch_into_tmp(
        tmp_path, [entry("registrations_lsoa", url, "x.csv", member="gp-reg-pat-prac-lsoa-al.csv")]
    )
    assert "gp-reg-pat-prac-lsoa-all.csv" in report.failed[0].message


def test_record_writes_checksums_to_a_registry_copy(server: LoopbackServer, tmp_path: Path) -> None:
    totals_url = server.add("gp-reg-pat-prac-all.csv", TOTALS_CSV)
    epcn_url = server.add("epcn.zip", EPCN_ZIP)
    registry = write_registry(
        tmp_path / "registry.yaml",
        [
            entry("practice_totals", totals_url, "gp-reg-pat-prac-all.csv"),
            entry("epcn", epcn_url, "ePCN.xlsx", member="ePCN.xlsx", sha256=sha(EPCN_ZIP)),
            entry("payments", None, "nhspaymentsgp-23-24-prac-csv.csv", release="2023-24"),
        ],
    )
    original_text = registry.read_text()
    recorded = tmp_path / "recorded" / "registry.local.yaml"

    report = fetch_sources(
        tmp_path / "raw",
        sources="practice_totals,epcn,payments",
        registry=registry,
        cache_dir=tmp_path / "cache",
        record_to=recorded,
        progress=False,
    )

    assert report.recorded_to == recorded
    assert registry.read_text() == original_text  # the registry read is never edited
    copy = load_registry(recorded).set_index("source")
    assert copy.loc["practice_totals", "sha256"] == sha(TOTALS_CSV)
    assert copy.loc["practice_totals", "size"] == len(TOTALS_CSV)
    assert copy.loc["practice_totals", "checksum_status"] == "recorded"
    assert copy.loc["epcn", "checksum_status"] == "known"
    assert copy.loc["payments", "sha256"] is None  # failed (no URL): nothing to record
    assert "no download URL" in report.failed[0].message

    with pytest.raises(RegistryError, match="refusing"):
        fetch_sources(
            tmp_path / "raw",
            sources="practice_totals",
            registry=registry,
            cache_dir=tmp_path / "cache",
            record_to=fetch._packaged_registry_path(),
            progress=False,
        )


def test_release_selection_latest_and_pinned(server: LoopbackServer, tmp_path: Path) -> None:
    old = TOTALS_CSV.replace(b"2025-10-01", b"2023-05-01")
    registry = write_registry(
        tmp_path / "registry.yaml",
        [
            entry(
                "practice_totals",
                server.add("old.csv", old),
                "gp-reg-pat-prac-all.csv",
                release="2023-05",
            ),
            entry(
                "practice_totals",
                server.add("new.csv", TOTALS_CSV),
                "gp-reg-pat-prac-all.csv",
                release="2025-10",
            ),
        ],
    )
    common = {"registry": registry, "cache_dir": tmp_path / "cache", "progress": False}
    latest = fetch_sources(tmp_path / "a", **common)
    assert latest.items[0].release == "2025-10"
    assert (tmp_path / "a" / "gp-reg-pat-prac-all.csv").read_bytes() == TOTALS_CSV
    fetch_sources(tmp_path / "b", sources=["practice_totals@2023-05"], **common)
    assert (tmp_path / "b" / "gp-reg-pat-prac-all.csv").read_bytes() == old
    absent = fetch_sources(tmp_path / "c", release="2019-01", **common)
    assert "available: ['2023-05', '2025-10']" in absent.failed[0].message
    with pytest.raises(RegistryError, match="practice_totals"):
        fetch_sources(tmp_path / "d", sources="practice_total", **common)


def test_cli_fetch_success_and_bad_source(official_registry: Path, tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="pophealth")
    fetch.add_cli(parser.add_subparsers(dest="command"))
    base = ["fetch", "--out", str(tmp_path / "raw"), "--registry", str(official_registry)]
    base += ["--cache", str(tmp_path / "cache"), "--no-progress"]

    args = parser.parse_args(base + ["--sources", "epcn,practice_totals"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "2 fetched, 0 cached, 0 missing, 0 failed" in printed
    assert (tmp_path / "raw" / "ePCN.xlsx").exists()

    args = parser.parse_args(base + ["--sources", "epcnn"])
    assert args.func(args) == 2
    assert "epcn" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_packaged_registry_lists_every_required_source() -> None:
    registry = load_registry()
    missing = [name for name in EXPECTED_SOURCES if name not in set(registry["source"])]
    assert missing == [], f"packaged registry lacks sources {missing}"
    assert fetch.missing_sources(registry) == []
    assert set(fetch.KNOWN_SOURCES) == set(EXPECTED_SOURCES)


def test_packaged_registry_entries_have_required_keys() -> None:
    path = fetch._packaged_registry_path()
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for index, raw in enumerate(document["entries"]):
        absent = [key for key in EXPECTED_KEYS if key not in raw]
        assert absent == [], f"entry {index} ({raw.get('source')}) lacks {absent}"
        assert raw["licence"] == "OGL v3.0"
        assert (raw["sha256"] is None) == (raw["checksum_status"] == "unknown")
        assert raw["url_status"] in ("documented", "landing_page")
        assert raw["landing_page"].startswith("https://")
        if raw["url"] is None:  # found on its landing page by its link pattern
            assert raw["url_status"] == "landing_page" and raw["link_pattern"]
        if raw["url_status"] == "documented":  # documented means an exact URL was found
            assert raw["url"].startswith("https://")


def test_packaged_registry_offline_reports_every_source_missing(tmp_path: Path) -> None:
    report = fetch_sources(tmp_path / "raw", cache_dir=tmp_path / "cache", offline=True)
    assert sorted(i.source for i in report.missing) == sorted(EXPECTED_SOURCES)
    assert report.failed == [] and files_under(tmp_path / "raw") == []


def test_no_url_is_hard_coded_in_fetch_code() -> None:
    assert "://" not in Path(fetch.__file__).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.pop("landing_page"), "landing_page"),
        (lambda e: e.update(source="census_ts37"), "census_ts037"),
        (lambda e: e.update(filename="../gp.csv"), "plain file name"),
        (lambda e: e.update(member="/etc/passwd"), "member"),
        (lambda e: e.update(sha256="abc"), "64 hex"),
        (lambda e: e.update(checksum_status="known"), "checksum_status"),
        (lambda e: e.update(licence="MIT"), "OGL v3.0"),
        (lambda e: e.update(url="ftp://x/y.csv"), "http"),
        (lambda e: e.update(sizes=3), "sizes"),
    ],
)
def test_registry_validation_names_the_problem(tmp_path: Path, change, message: str) -> None:
    bad = entry("practice_totals", "https://example.invalid/a.csv", "gp-reg-pat-prac-all.csv")
    change(bad)
    path = write_registry(tmp_path / "bad.yaml", [bad])
    with pytest.raises(RegistryError, match="bad.yaml") as caught:
        load_registry(path)
    assert message in str(caught.value)


def test_registry_rejects_duplicates_and_non_registries(tmp_path: Path) -> None:
    one = entry("practice_totals", None, "gp-reg-pat-prac-all.csv")
    with pytest.raises(RegistryError, match="duplicate"):
        load_registry(write_registry(tmp_path / "dup.yaml", [one, dict(one)]))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RegistryError, match="entries"):
        load_registry(tmp_path / "list.yaml")
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "nope.yaml")
