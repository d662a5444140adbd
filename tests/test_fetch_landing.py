"""Files found on their landing pages (``link_pattern``) and months from ``series`` templates.

Two loopback servers stand in for NHS England: one serves the publication pages (HTML laid out as
digital.nhs.uk's, file links in a resources list), the other the files under per-release hash
folders (as files.digital.nhs.uk). The packaged registry's own entries and series templates are
used, re-pointed at the page server, so the patterns shipped are the ones tested. No test touches
the network.
"""

from __future__ import annotations

import io
import json
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from loopback import LoopbackHTTP, no_proxy_for_loopback  # noqa: F401 (fixture)

from pophealth import cli, fetch, fetch_landing

pytestmark = pytest.mark.usefixtures("no_proxy_for_loopback")

NHS = "https://digital.nhs.uk"
REGISTRATIONS = (
    "/data-and-information/publications/statistical/patients-registered-at-a-gp-practice"
)
WORKFORCE = "/data-and-information/publications/statistical/general-and-personal-medical-services"
LSOA_MEMBER = "gp-reg-pat-prac-lsoa-all.csv"


class Site(LoopbackHTTP):
    """Serves ``pages`` (text/html) and ``files`` (bytes) by path; ``log`` records each path."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.files: dict[str, bytes] = {}
        self.log: list[str] = []
        super().__init__()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        self.log.append(handler.path)
        if handler.path in self.pages:
            body, kind = self.pages[handler.path].encode("utf-8"), "text/html; charset=utf-8"
        elif handler.path in self.files:
            body, kind = self.files[handler.path], "application/octet-stream"
        else:
            handler.send_error(404)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def nhs():
    pages, files = Site(), Site()
    yield pages, files
    pages.close()
    files.close()


def lsoa_zip(total: int) -> bytes:
    csv = (
        "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,NUMBER_OF_PATIENTS\n"
        f"GP_PRAC_PAT_LIST,01OCT2025,A81001,THE DENSHAM SURGERY,E01012007,ALL,{total}\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(LSOA_MEMBER, csv)
    return buffer.getvalue()


def publication_page(title: str, links: list[tuple[str, str]]) -> str:
    """A page laid out as NHS England's publications: navigation, then a resources list."""
    items = "\n".join(
        f'<li class="attachment"><a class="nhsd-a-box-link" href="{href}" '
        f'aria-label="Download {label}" title="{label}"><span>{label}</span></a></li>'
        for href, label in links
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - NHS England Digital</title></head>
<body><header><a href="/">Home</a> <a href="/data-and-information">Data and information</a>
<a href="#main-content">Skip to main content</a></header>
<main id="main-content"><h1>{title}</h1><p>Official statistics, Open data</p>
<h2 id="resources">Resources</h2><ul class="nhsd-t-list">
{items}
</ul><p><a href="mailto:enquiries@nhsdigital.nhs.net">Contact us</a></p></main></body></html>"""


def packaged_registry(tmp_path: Path, base: str, keep) -> Path:
    """The packaged registry's entries for which ``keep(entry)`` and every series template,
    with digital.nhs.uk re-pointed at ``base``."""
    document = yaml.safe_load(fetch._packaged_registry_path().read_text(encoding="utf-8"))
    entries = [e for e in document["entries"] if keep(e)]
    for item in entries + document["series"]:
        item["landing_page"] = item["landing_page"].replace(NHS, base)
    document["entries"] = entries
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def lsoa_entries(*releases: str):
    """Keep the packaged LSOA registrations entries of these releases (packaged_registry)."""
    return lambda e: e["source"] == "registrations_lsoa" and e["release"] in releases


def run_fetch(tmp_path: Path, registry: Path, **kwargs) -> fetch.FetchReport:
    kwargs = {"cache_dir": tmp_path / "cache", "progress": False, **kwargs}
    return fetch.fetch_sources(tmp_path / "raw", registry=registry, **kwargs)


# --- links on a page ---------------------------------------------------------------------------


def test_file_links_are_absolute_unique_and_http_only():
    html = publication_page(
        "P",
        [
            ("https://files.example/AB/12CD34/a.zip", "a"),
            ("/assets/b.csv?x=1&amp;y=2#top", "b"),
            ("https://files.example/AB/12CD34/a.zip", "a again"),
            ("javascript:void(0)", "script"),
        ],
    )
    links = fetch_landing.file_links(html, "https://site.example/pubs/october-2025")
    files = [link for link in links if link.endswith((".zip", ".csv?x=1&y=2"))]
    assert files == [
        "https://files.example/AB/12CD34/a.zip",  # once, though linked twice
        "https://site.example/assets/b.csv?x=1&y=2",  # made absolute, entity decoded, no #top
    ]
    assert "https://site.example/data-and-information" in links  # the navigation, too
    assert not any(link.startswith(("javascript:", "mailto:")) for link in links)
    assert fetch_landing.link_file_name("https://f.example/x/General%20Practice.zip") == (
        "General Practice.zip"
    )


def test_patterns_are_tried_in_order_and_must_pick_one_link():
    links = [
        "https://f.example/1A/111111/gp-reg-pat-prac-lsoa-2011-male-female-Oct-25.zip",
        "https://f.example/2B/222222/gp-reg-pat-prac-lsoa-2021-male-female-Oct-25.zip",
        "https://f.example/3C/333333/gp-reg-pat-prac-all.csv",
    ]
    patterns = [r"gp-reg-pat-prac-lsoa-2021-male-female-.+\.zip", r"gp-reg-pat-prac-lsoa-.+\.zip"]
    found = fetch_landing.choose_link(links, patterns, "https://p.example/oct", "lsoa 2025-10")
    assert found.url == links[1] and found.pattern == patterns[0]
    assert found.name == "gp-reg-pat-prac-lsoa-2021-male-female-Oct-25.zip"
    # the whole name must match, ignoring case
    only_2011 = [links[0]]
    found = fetch_landing.choose_link(only_2011, patterns, "https://p.example/oct", "x")
    assert found.url == links[0]
    with pytest.raises(fetch_landing.LandingPageError, match="2 links on https://p.example"):
        fetch_landing.choose_link(links, [r"gp-reg-pat-prac-lsoa-.+"], "https://p.example", "x")
    with pytest.raises(fetch_landing.LandingPageError) as error:
        fetch_landing.choose_link(links, [r"gp-reg-pat-prac-map\.zip"], "https://p.example", "x")
    message = str(error.value)
    assert "no link on https://p.example" in message and "gp-reg-pat-prac-all.csv" in message
    assert "--registry FILE" in message


# --- the packaged entries, on pages laid out as NHS England's --------------------------------


def test_lsoa_quarter_without_a_url_is_found_on_its_landing_page(nhs, tmp_path, capsys):
    pages, files = nhs
    twin_2011 = "/4D/5E6F70/gp-reg-pat-prac-lsoa-2011-male-female-Oct-25.zip"
    wanted = "/7A/8B9C0D/gp-reg-pat-prac-lsoa-2021-male-female-Oct-25.zip"
    files.files[twin_2011] = lsoa_zip(11)
    files.files[wanted] = lsoa_zip(2021)
    pages.pages[f"{REGISTRATIONS}/october-2025"] = publication_page(
        "Patients Registered at a GP Practice, October 2025",
        [
            (f"{files.base}/F1/AAAAAA/gp-reg-pat-prac-all.csv", "Totals"),
            (f"{files.base}{twin_2011}", "LSOA 2011"),
            (f"{files.base}{wanted}", "LSOA 2021"),
        ],
    )
    registry = packaged_registry(
        tmp_path,
        pages.base,
        lsoa_entries("2025-10"),
    )
    loaded = fetch.load_registry(registry)
    (row,) = loaded.to_dict("records")
    assert row["url"] is None and row["url_status"] == "landing_page"

    report = run_fetch(tmp_path, registry, sources="registrations_lsoa@2025-10")
    (item,) = report.items
    assert item.status == "fetched", item.message
    assert item.url == f"{files.base}{wanted}"
    assert item.found_on == f"{pages.base}{REGISTRATIONS}/october-2025"
    assert (tmp_path / "raw" / LSOA_MEMBER).read_text().strip().endswith(",2021")
    assert "link found on" in report.summary()
    record = json.loads((tmp_path / "cache/registrations_lsoa/2025-10/found-link.json").read_text())
    assert record["url"] == item.url and record["landing_page"] == item.found_on

    # the next run and an offline run are served from the cache: no page, no file requested
    before = len(pages.log) + len(files.log)
    again = run_fetch(tmp_path, registry, sources="registrations_lsoa@2025-10")
    assert again.items[0].status == "cached" and again.items[0].url == item.url
    offline = run_fetch(tmp_path, registry, sources="registrations_lsoa@2025-10", offline=True)
    assert offline.items[0].status == "cached"
    assert len(pages.log) + len(files.log) == before

    # --record pins the URL found and its checksum; the pinned copy never reads the page again
    recorded = tmp_path / "recorded.yaml"
    code = cli.main(
        ["fetch", "--out", str(tmp_path / "raw2"), "--registry", str(registry), "--cache"]
        + [str(tmp_path / "cache2"), "--sources", "registrations_lsoa@2025-10"]
        + ["--record", str(recorded), "--no-progress"]
    )
    assert code == 0, capsys.readouterr()
    pinned = fetch.load_registry(recorded).to_dict("records")[0]
    assert pinned["url"] == item.url and pinned["checksum_status"] == "recorded"
    assert pinned["download_name"] == "gp-reg-pat-prac-lsoa-2021-male-female-Oct-25.zip"
    assert "URL found on" in pinned["notes"]
    assert set(fetch.load_registry(recorded).attrs["series"]) == set(loaded.attrs["series"])
    pages_read = len(pages.log)
    files.files[wanted] = lsoa_zip(9999)  # the publisher replaces the file: refused
    refused = run_fetch(tmp_path / "x", recorded, cache_dir=tmp_path / "cache3")
    assert refused.items[0].status == "failed" and "checksum mismatch" in refused.items[0].message
    assert len(pages.log) == pages_read


def test_latest_takes_the_registrations_at_the_newest_lsoa_month(nhs, tmp_path):
    """One fetch gives one month's registrations: the monthly files at the LSOA file's month."""
    registry = fetch.load_registry()
    lsoa = max(registry.loc[registry["source"] == "registrations_lsoa", "release"])
    offline = fetch.fetch_sources(tmp_path / "r", cache_dir=tmp_path / "c", offline=True)
    releases = {item.source: item.release for item in offline.items}
    assert {releases[name] for name in fetch.REGISTRATION_SOURCES} == {lsoa}
    assert releases["registrations_lsoa"] == lsoa
    # a pinned release is kept
    pinned = fetch.fetch_sources(
        tmp_path / "r",
        sources="practice_totals@2025-10",
        cache_dir=tmp_path / "c",
        offline=True,
    )
    assert pinned.items[0].release == "2025-10"

    pages, files = nhs
    files.files["/D1/AAAAAA/gp-reg-pat-prac-all.csv"] = b"CODE,NUMBER_OF_PATIENTS\nA81001,7\n"
    files.files["/D2/BBBBBB/gp-reg-pat-prac-lsoa-male-female-Oct-26.zip"] = lsoa_zip(7)
    pages.pages[f"{REGISTRATIONS}/october-2026"] = publication_page(
        "Patients Registered at a GP Practice, October 2026",
        [
            (f"{files.base}/D1/AAAAAA/gp-reg-pat-prac-all.csv", "Totals"),
            (f"{files.base}/D2/BBBBBB/gp-reg-pat-prac-lsoa-male-female-Oct-26.zip", "LSOA"),
        ],
    )
    served = packaged_registry(
        tmp_path, pages.base, lambda e: e["source"] in ("registrations_lsoa", "practice_totals")
    )
    report = run_fetch(tmp_path, served, sources="registrations_lsoa,practice_totals")
    assert [(i.source, i.release, i.status) for i in report.items] == [
        ("registrations_lsoa", "2026-10", "fetched"),
        ("practice_totals", "2026-10", "fetched"),
    ]


def test_a_page_that_does_not_link_one_file_fails_naming_page_and_links(nhs, tmp_path):
    pages, files = nhs
    pages.pages[f"{REGISTRATIONS}/january-2025"] = publication_page(
        "Patients Registered at a GP Practice, January 2025",
        [(f"{files.base}/AA/BBBBBB/gp-reg-pat-prac-quin-age.zip", "Quinary ages")],
    )
    registry = packaged_registry(
        tmp_path,
        pages.base,
        lsoa_entries("2025-01", "2024-10"),
    )
    report = run_fetch(tmp_path, registry, sources="registrations_lsoa@2025-01")
    (item,) = report.items
    assert item.status == "failed"
    assert f"{pages.base}{REGISTRATIONS}/january-2025" in item.message
    assert "gp-reg-pat-prac-quin-age.zip" in item.message and "--registry FILE" in item.message
    # a page that is not there (not yet published, or moved) is named with the fix
    report = run_fetch(tmp_path, registry, sources="registrations_lsoa@2024-10")
    assert report.items[0].status == "failed" and "HTTP 404" in report.items[0].message
    assert "october-2024" in report.items[0].message
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
    offline = run_fetch(tmp_path, registry, sources="registrations_lsoa@2024-10", offline=True)
    assert offline.items[0].status == "missing"
    assert "october-2024" in offline.items[0].message


def test_a_range_of_months_is_fetched_from_series_landing_pages(nhs, tmp_path, capsys):
    """Months with no registry entry come from the series templates' landing pages."""
    pages, files = nhs
    for month, number, name in (
        ("august", 8, "Aug"),
        ("september", 9, "Sep"),
        ("october", 10, "Oct"),
    ):
        totals = f"/{number:02d}/A{number:05d}/gp-reg-pat-prac-all.csv"
        files.files[totals] = f"CODE,NUMBER_OF_PATIENTS\nA81001,{number}\n".encode()
        links = [(f"{files.base}{totals}", "Totals")]
        if number == 10:
            quarter = f"/10/B00010/gp-reg-pat-prac-lsoa-male-female-{name}-26.zip"
            files.files[quarter] = lsoa_zip(2026)
            links.append((f"{files.base}{quarter}", "LSOA"))
        pages.pages[f"{REGISTRATIONS}/{month}-2026"] = publication_page(
            f"Patients Registered at a GP Practice, {month.title()} 2026", links
        )
    workforce_zip = io.BytesIO()
    member = "1 General Practice – September 2026 Practice Level - Detailed.csv"
    with zipfile.ZipFile(workforce_zip, "w") as archive:
        archive.writestr(member, "PRAC_CODE,TOTAL_GP_FTE\nA81001,4.5\n")
    files.files["/C3/D4E5F6/GPWPracticeCSV.092026.zip"] = workforce_zip.getvalue()
    pages.pages[f"{WORKFORCE}/30-september-2026"] = publication_page(
        "General Practice Workforce, 30 September 2026",
        [
            (f"{files.base}/C3/D4E5F6/GPWPracticeCSV.092026.zip", "Practice-level CSV"),
            (f"{files.base}/C3/D4E5F7/GPWIndividualCSV.092026.zip", "Individual-level CSV"),
        ],
    )
    # registry: the packaged series, plus the packaged 2026-10 LSOA entry; no monthly entries
    registry = packaged_registry(
        tmp_path,
        pages.base,
        lsoa_entries("2026-10"),
    )
    code = cli.main(
        ["fetch", "--out", str(tmp_path / "raw"), "--registry", str(registry), "--cache"]
        + [str(tmp_path / "cache"), "--sources", "registrations_lsoa,practice_totals,workforce"]
        + ["--from", "2026-08", "--to", "2026-10", "--no-progress", "--record"]
        + [str(tmp_path / "recorded.yaml")]
    )
    out = capsys.readouterr().out
    releases = tmp_path / "raw" / "releases"
    for number, month in ((8, "2026-08"), (9, "2026-09"), (10, "2026-10")):
        assert (releases / month / "gp-reg-pat-prac-all.csv").read_text().endswith(f",{number}\n")
    assert (releases / "2026-10" / LSOA_MEMBER).exists()
    assert (releases / "2026-09" / member).read_text().startswith("PRAC_CODE")
    # workforce pages for August and October are absent here: named, the rest still fetched
    assert code == 1
    assert f"{WORKFORCE}/31-august-2026" in out and f"{WORKFORCE}/31-october-2026" in out
    assert "5 fetched, 0 cached, 0 missing, 2 failed" in out
    # the months taken from the series become entries of their own in the recorded copy
    recorded = fetch.load_registry(tmp_path / "recorded.yaml").set_index(["source", "release"])
    assert recorded.loc[("practice_totals", "2026-09"), "url"] == (
        f"{files.base}/09/A00009/gp-reg-pat-prac-all.csv"
    )
    assert recorded.loc[("workforce", "2026-09"), "checksum_status"] == "recorded"
    assert ("workforce", "2026-08") not in recorded.index  # failed: not recorded


def test_a_pinned_month_of_a_series_and_its_zip_or_csv(nhs, tmp_path):
    """``--sources name@YYYY-MM`` uses the series; a zip link has its member taken out, a CSV
    link is the file itself."""
    pages, files = nhs
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("gp-reg-pat-prac-map.csv", "PRACTICE_CODE,PCN_CODE\nA81001,U1\n")
    files.files["/E1/000001/gp-reg-pat-prac-map.zip"] = buffer.getvalue()
    files.files["/E2/000002/gp-reg-pat-prac-map.csv"] = b"PRACTICE_CODE,PCN_CODE\nA81001,U2\n"
    pages.pages[f"{REGISTRATIONS}/september-2025"] = publication_page(
        "Patients Registered at a GP Practice, September 2025",
        [(f"{files.base}/E1/000001/gp-reg-pat-prac-map.zip", "Mapping")],
    )
    pages.pages[f"{REGISTRATIONS}/july-2025"] = publication_page(
        "Patients Registered at a GP Practice, July 2025",
        [(f"{files.base}/E2/000002/gp-reg-pat-prac-map.csv", "Mapping")],
    )
    registry = packaged_registry(tmp_path, pages.base, lambda e: False)
    zipped = run_fetch(tmp_path / "zip", registry, sources="practice_map@2025-09")
    assert zipped.items[0].status == "fetched", zipped.items[0].message
    assert zipped.items[0].path.read_text().endswith("U1\n")
    plain = run_fetch(tmp_path / "csv", registry, sources="practice_map@2025-07")
    assert plain.items[0].status == "fetched", plain.items[0].message
    assert plain.items[0].path.read_text().endswith("U2\n")
    # a month the source is not published in, or not a month: not made up
    report = run_fetch(
        tmp_path / "q", registry, sources="registrations_lsoa@2025-09,practice_map@x"
    )
    assert [i.status for i in report.items] == ["failed", "failed"]
    assert "no release '2025-09'" in report.items[0].message


# --- the registry's declarations ---------------------------------------------------------------


def _one_entry(**changes) -> dict:
    base = {
        "source": "registrations_lsoa",
        "release": "2025-10",
        "url": None,
        "url_status": "landing_page",
        "link_pattern": r"gp-reg-pat-prac-lsoa-.+\.zip",
        "member": LSOA_MEMBER,
        "filename": LSOA_MEMBER,
        "sha256": None,
        "checksum_status": "unknown",
        "size": None,
        "publisher": "NHS England",
        "licence": "OGL v3.0",
        "landing_page": "https://example.invalid/october-2025",
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"link_pattern": "gp-reg-(.zip"}, "not a valid pattern"),
        ({"link_pattern": []}, "regular expression or a list"),
        ({"url_status": "documented"}, "url_status landing_page"),
        ({"download_name": "x.zip"}, "download_name comes from the link"),
        ({"link_pattern": None}, "needs a link_pattern"),
    ],
)
def test_link_entries_are_checked(tmp_path, changes, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "entries": [_one_entry(**changes)]}))
    with pytest.raises(fetch.RegistryError, match=message):
        fetch.load_registry(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"landing_page": "https://x.invalid/{monht}-{yyyy}"}, "unknown placeholder {monht}"),
        ({"source": "iod2025"}, "monthly or quarterly source"),
        ({"filename": None}, "filename must be a plain file name"),
        ({"colour": "blue"}, "unknown key"),
    ],
)
def test_series_templates_are_checked(tmp_path, changes, message):
    template = {
        "source": "practice_totals",
        "landing_page": "https://x.invalid/{month}-{yyyy}",
        "link_pattern": r"gp-reg-pat-prac-all-\d{2}\.csv",  # a regex {n} is not a placeholder
        "member": None,
        "filename": "gp-reg-pat-prac-all.csv",
        "publisher": "NHS England",
        "licence": "OGL v3.0",
    }
    path = tmp_path / "r.yaml"
    good = {"schema_version": 1, "entries": [_one_entry()], "series": [template]}
    path.write_text(yaml.safe_dump(good))
    assert set(fetch.load_registry(path).attrs["series"]) == {"practice_totals"}
    bad = {**good, "series": [{**template, **changes}]}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(fetch.RegistryError, match=message):
        fetch.load_registry(path)


def test_series_fills_each_placeholder_for_the_month():
    assert fetch.month_fields("2024-02") == {
        "month": "february",
        "Month": "February",
        "Mon": "Feb",
        "mm": "02",
        "yyyy": "2024",
        "yy": "24",
        "last_day": "29",
    }
    template = fetch.load_registry().attrs["series"]["workforce"]
    entry = fetch.series_entry(template, "2026-06")
    assert entry["landing_page"].endswith("/general-and-personal-medical-services/30-june-2026")
    assert entry["link_pattern"] == [r"GPWPracticeCSV\.062026\.zip"]
    assert entry["member"] == "1 General Practice – June 2026 Practice Level - Detailed.csv"


def test_packaged_registry_finds_every_lsoa_quarter_of_the_last_two_years():
    registry = fetch.load_registry()
    lsoa = registry[registry["source"] == "registrations_lsoa"].set_index("release")
    quarters = fetch.expected_releases("registrations_lsoa", "2024-07", "2026-10", [])
    assert len(quarters) == 10 and set(quarters) <= set(lsoa.index)
    for release in quarters:
        row = lsoa.loc[release]
        has_url = isinstance(row["url"], str) and row["url"].startswith("https://files.digital")
        assert has_url or row["url_status"] == "landing_page", release
        assert row["landing_page"].endswith(
            f"/patients-registered-at-a-gp-practice/{fetch.month_fields(release)['month']}"
            f"-{release[:4]}"
        )
    # every entry can be fetched: a documented URL, a link found on its page, or a service
    assert (registry["url"].notna() | registry["link_pattern"].notna()).all()
    assert set(registry.attrs["series"]) == set(fetch.MONTHLY_SOURCES) | set(
        fetch.QUARTERLY_SOURCES
    )


# --- end to end: months served as NHS England publishes them, fetched, then prepared ----------

MONTHLY_CSVS = (
    "gp-reg-pat-prac-all.csv",
    "gp-reg-pat-prac-sing-age-male.csv",
    "gp-reg-pat-prac-sing-age-female.csv",
)


def _zipped(name: str, body: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, body)
    return buffer.getvalue()


def publish_month(pages: Site, files: Site, folder: Path, month: str) -> None:
    """Serve one demo month's files the way NHS England publishes them: a page per publication,
    each file in its own hash folder, the LSOA file quarterly (zipped, with a 2011-LSOA twin in
    October 2025), the age bands zipped, the mapping file zipped from August 2025."""
    fields = fetch.month_fields(month)
    number = int(fields["mm"])
    links = []

    def put(name: str, body: bytes, label: str) -> str:
        path = f"/{number:02X}/{abs(hash((month, name))) % 16**6:06X}/{name}"
        files.files[path] = body
        return f"{files.base}{path}"

    for name in MONTHLY_CSVS:
        links.append((put(name, (folder / name).read_bytes(), name), name))
    quin = (folder / "gp-reg-pat-prac-quin-age.csv").read_bytes()
    links.append(
        (
            put(
                "gp-reg-pat-prac-quin-age.zip",
                _zipped("gp-reg-pat-prac-quin-age.csv", quin),
                "ages",
            ),
            "ages",
        )
    )
    mapping = (folder / "gp-reg-pat-prac-map.csv").read_bytes()
    if month >= "2025-08":
        mapping_link = put(
            "gp-reg-pat-prac-map.zip", _zipped("gp-reg-pat-prac-map.csv", mapping), "m"
        )
    else:
        mapping_link = put("gp-reg-pat-prac-map.csv", mapping, "m")
    links.append((mapping_link, "Mapping"))
    if number in (1, 4, 7, 10):
        lsoa = (folder / LSOA_MEMBER).read_bytes()
        zip_name = f"gp-reg-pat-prac-lsoa-2021-male-female-{fields['Mon']}-{fields['yy']}.zip"
        if month == "2025-10":
            twin = f"gp-reg-pat-prac-lsoa-2011-male-female-{fields['Mon']}-{fields['yy']}.zip"
            links.append((put(twin, _zipped(LSOA_MEMBER, b"LSOA 2011 twin\n"), "2011"), "2011"))
        links.append((put(zip_name, _zipped(LSOA_MEMBER, lsoa), "2021"), "LSOA 2021"))
    pages.pages[f"{REGISTRATIONS}/{fields['month']}-{fields['yyyy']}"] = publication_page(
        f"Patients Registered at a GP Practice, {fields['Month']} {fields['yyyy']}", links
    )
    day = f"{fields['last_day']}-{fields['month']}-{fields['yyyy']}"
    when = f"{fields['Month']} {fields['yyyy']}"
    for series, stem, member in (
        (
            WORKFORCE,
            "GPWPracticeCSV",
            f"1 General Practice – {when} Practice Level - Detailed.csv",
        ),
        (
            "/data-and-information/publications/statistical/primary-care-network-workforce",
            "PCNWFIndividualCSV",
            f"1.Primary Care Networks - {when} Individual Level.csv",
        ),
    ):
        name = f"{stem}.{fields['mm']}{fields['yyyy']}.zip"
        link = put(name, _zipped(member, (folder / member).read_bytes()), name)
        pages.pages[f"{series}/{day}"] = publication_page(f"Workforce, {day}", [(link, "CSV")])


def test_months_fetched_from_landing_pages_are_the_published_files_and_prepare(
    nhs, tmp_path, capsys
):
    """Four demo months served as NHS England pages: `fetch --from/--to` and `--release` bring
    back the published bytes, `pophealth prepare` builds the history from them, and a monthly
    run (`fetch` of one month, `prepare --add`) adds a month."""
    from pophealth.demo.generator import write_demo_dataset

    pages, files = nhs
    demo = tmp_path / "demo"
    write_demo_dataset(demo, history_months=4)
    months = {"2025-07": demo / "releases/2025-07", "2025-08": demo / "releases/2025-08"}
    months |= {"2025-09": demo / "releases/2025-09", "2025-10": demo}
    for month, folder in months.items():
        publish_month(pages, files, folder, month)
    registry = packaged_registry(tmp_path, pages.base, lambda e: False)  # templates only
    sources = ",".join(sorted(set(fetch.MONTHLY_SOURCES) | set(fetch.QUARTERLY_SOURCES)))
    raw = tmp_path / "raw"
    common = ["--registry", str(registry), "--cache", str(tmp_path / "cache"), "--no-progress"]
    common += ["--sources", sources]
    history = cli.main(
        ["fetch", "--out", str(raw), "--from", "2025-07", "--to", "2025-08", *common]
    )
    current = cli.main(["fetch", "--out", str(raw), "--release", "2025-10", *common])
    assert (history, current) == (0, 0)
    # the fixed sources come from their own fetches; here, the demo's copies
    for path in demo.iterdir():
        if path.is_file() and not (raw / path.name).exists():
            (raw / path.name).write_bytes(path.read_bytes())
    store = tmp_path / "store"
    assert cli.main(["prepare", str(raw), "--out", str(store)]) == 0
    assert json.loads((store / "manifest.json").read_text())["history"]["periods"] == [
        "2025-07",
        "2025-08",
        "2025-10",
    ]
    # a monthly run: one month fetched on its own (no LSOA file that month: noted, not failed)
    # and added to the store
    capsys.readouterr()
    month = cli.main(["fetch", "--out", str(raw), "--from", "2025-09", "--to", "2025-09", *common])
    out = capsys.readouterr().out
    assert month == 0 and "note: registrations_lsoa: none from 2025-09 to 2025-09" in out
    assert "published quarterly (January, April, July, October)" in out
    added = cli.main(["prepare", str(raw / "releases" / "2025-09"), "--out", str(store), "--add"])
    assert added == 0

    for month, folder in months.items():
        fetched = raw if month == "2025-10" else raw / "releases" / month
        expected = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file()
            and (p.name.startswith(("gp-reg-pat-prac", "1 General", "1.Primary")))
            and (p.name != LSOA_MEMBER or month in ("2025-07", "2025-10"))
        )
        if month != "2025-10":  # the top level also holds the fixed sources
            assert sorted(p.name for p in fetched.iterdir() if p.is_file()) == expected, month
        for name in expected:
            assert (fetched / name).read_bytes() == (folder / name).read_bytes(), (month, name)

    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["history"]["periods"] == list(months)
    notes = " ".join(manifest["history"]["notes"])
    for month in ("2025-08", "2025-09"):  # the LSOA file is quarterly: named, not carried over
        assert f"release {month} has no registrations_lsoa" in notes, notes
    assert "release 2025-07 has no registrations_lsoa" not in notes
