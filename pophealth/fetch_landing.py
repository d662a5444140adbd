"""Find a release's file link on its publisher's landing page.

NHS England puts each file of a publication in its own folder whose name is a per-release hash
(``https://files.digital.nhs.uk/<xx>/<xxxxxx>/<name>``), so the file's URL cannot be written
down before the release is out, and for many releases no copy of it exists in public material.
The landing page of the release (for example
``https://digital.nhs.uk/data-and-information/publications/statistical/patients-registered-at-a-gp-practice/october-2025``)
lists every file as an ``<a href>``: analysts' scripts read the page and pick the link whose file
name matches a pattern (the Greater London Authority's ``download_nhs_month`` does exactly this).
This module does the same for registry entries that carry ``link_pattern`` instead of a URL:

* the page is read as text (at most :data:`MAX_PAGE_BYTES`), never executed;
* every ``<a href>`` is made absolute against the page's final address, and only http(s) links
  are kept;
* the patterns are tried in order, each matched (whole, ignoring case) against the link's file
  name, the last path segment, percent-decoded; the first pattern that matches decides, and it
  must match exactly one distinct URL. No match, or more than one, is an error that lists the
  page's file links, so the analyst can pin the right one in a registry copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlparse

import requests

from pophealth.errors import PopHealthError

__all__ = [
    "MAX_PAGE_BYTES",
    "FoundLink",
    "LandingPageError",
    "choose_link",
    "file_links",
    "find_file_link",
    "link_file_name",
]

#: A landing page larger than this is refused (NHS England's pages are about 100-300 KB).
MAX_PAGE_BYTES = 8 * 1024**2
_TIMEOUT = 60
# what the error lists of a page's links: the files, not the site's navigation
_FILE_SUFFIXES = (".zip", ".csv", ".xlsx", ".xls", ".ods", ".json", ".geojson", ".pdf")


class LandingPageError(PopHealthError):
    """The landing page could not be read, or its links do not name exactly one file."""


@dataclass(frozen=True)
class FoundLink:
    """A file link chosen on a landing page.

    Attributes:
        url: The file's absolute URL, as the page links it.
        name: Its file name (the URL's last path segment, percent-decoded).
        page: The landing page's address after redirects.
        pattern: The pattern that chose it.
    """

    url: str
    name: str
    page: str
    pattern: str


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() == "a":
            for name, value in attrs:
                if name.lower() == "href" and value:
                    self.hrefs.append(value.strip())


def link_file_name(url: str) -> str:
    """The file name a URL points at: its last path segment, percent-decoded."""
    return unquote(PurePosixPath(urlparse(url).path).name)


def file_links(html: str, page_url: str) -> list[str]:
    """Absolute http(s) URLs of a page's ``<a href>`` links, in page order, without repeats.

    Args:
        html: The page's text.
        page_url: The page's address, against which relative links are resolved.

    Returns:
        The links; fragments (``#...``) are dropped, and a link repeated on the page appears once.
    """
    parser = _AnchorParser()
    parser.feed(html)
    parser.close()
    links: dict[str, None] = {}
    for href in parser.hrefs:
        absolute = urljoin(page_url, href).split("#", 1)[0]
        if urlparse(absolute).scheme in ("http", "https") and link_file_name(absolute):
            links.setdefault(absolute, None)
    return list(links)


def choose_link(
    links: Sequence[str], patterns: Iterable[str], page_url: str, label: str
) -> FoundLink:
    """Pick the one link whose file name matches the first pattern that matches any.

    Args:
        links: Absolute URLs (from :func:`file_links`).
        patterns: Regular expressions, tried in order, each matched against the whole file name,
            ignoring case.
        page_url: The landing page (for the result and messages).
        label: What is being fetched (``"source 'x' release y"``), for messages.

    Raises:
        LandingPageError: When no pattern matches a link, or the deciding pattern matches more
            than one distinct URL; the message lists the page's file links and the fix.
    """
    patterns = list(patterns)
    for pattern in patterns:
        compiled = re.compile(pattern, re.IGNORECASE)
        matched = [url for url in links if compiled.fullmatch(link_file_name(url))]
        if len(matched) == 1:
            return FoundLink(matched[0], link_file_name(matched[0]), page_url, pattern)
        if len(matched) > 1:
            raise LandingPageError(
                f"{label}: {len(matched)} links on {page_url} match {pattern!r}: "
                f"{matched[:10]}. Put the right one as 'url' in a registry copy "
                "(--registry FILE), or make link_pattern narrower."
            )
    files = [url for url in links if link_file_name(url).lower().endswith(_FILE_SUFFIXES)]
    shown = [link_file_name(url) for url in files[:25]]
    raise LandingPageError(
        f"{label}: no link on {page_url} has a file name matching {patterns}. The page links "
        f"{len(files)} file(s){': ' + ', '.join(shown) if shown else ''}. If the publisher "
        "renamed the file, put its URL as 'url' (or a new link_pattern) in a registry copy "
        "(--registry FILE); if the page is not out yet, try again after publication."
    )


def _read_page(page_url: str, label: str, timeout: float) -> tuple[str, str]:
    """The page's text and its final address; refuses errors, non-HTML and oversized pages."""
    try:
        with requests.get(page_url, stream=True, timeout=timeout) as response:
            if response.status_code >= 400:
                raise LandingPageError(
                    f"{label}: the landing page {page_url} answered HTTP {response.status_code} "
                    f"{response.reason}. If the release is not published yet, try again later; "
                    "if the page moved, put its address as landing_page (or the file's URL as "
                    "'url') in a registry copy (--registry FILE)."
                )
            content_type = response.headers.get("Content-Type", "").lower()
            if "html" not in content_type:
                raise LandingPageError(
                    f"{label}: {page_url} is not a web page (Content-Type {content_type!r}); "
                    "landing_page must be the publication's page that links the file."
                )
            body = bytearray()
            for chunk in response.iter_content(chunk_size=65536):
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    raise LandingPageError(
                        f"{label}: the landing page {page_url} is over {MAX_PAGE_BYTES:,} "
                        "bytes; refused."
                    )
            encoding = response.encoding or "utf-8"
            return bytes(body).decode(encoding, errors="replace"), response.url or page_url
    except requests.RequestException as exc:
        raise LandingPageError(
            f"{label}: could not read the landing page {page_url} ({exc})"
        ) from exc


def find_file_link(
    page_url: str, patterns: Iterable[str], label: str, timeout: float = _TIMEOUT
) -> FoundLink:
    """Read a landing page and choose its one file link matching ``patterns``.

    Args:
        page_url: The release's landing page.
        patterns: Regular expressions for the file name, tried in order (see :func:`choose_link`).
        label: What is being fetched, for messages.
        timeout: Seconds to wait for the server between bytes.

    Returns:
        The chosen link.

    Raises:
        LandingPageError: When the page cannot be read or no single link matches.
    """
    html, final_url = _read_page(page_url, label, timeout)
    return choose_link(file_links(html, final_url), patterns, final_url, label)
