"""The report printed to an A4 portrait PDF by a real headless Chromium: no table cut.

On screen a wide table scrolls; on paper a scroll bar hides its last columns. The
report is printed with Debian's ``chromium`` (``--print-to-pdf``) and read back with
``pdftotext`` (poppler-utils): every column header of every table is on the page,
and no word lies outside the printable area. Skipped when either tool is absent.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from publication_fixtures import sample_layers

from observatoire.publish.rapport import render_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

A4_WIDTH_PT = 595.28
MARGIN_PT = 15 / 25.4 * 72  # @page margin: 15 mm
#: A file name of a real source (SIRENE), and longer: no space to wrap at.
LONG_NAME = "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8_" * 2 + ".csv"


class Headers(HTMLParser):
    """The column headers of each table of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[str]] = []
        self._th: list[str] | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag == "table":
            self.tables.append([])
        elif tag == "th":
            self._th = []

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "th" and self._th is not None:
            self.tables[-1].append("".join(self._th).strip())
            self._th = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._th is not None:
            self._th.append(data)


def tools() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    pdftotext = shutil.which("pdftotext")
    if not chromium or not pdftotext:
        pytest.skip("chromium ou pdftotext absent : apt-get install chromium poppler-utils")
    return chromium, pdftotext


def print_pdf(html: Path, pdf: Path, chromium: str) -> None:
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         f"--user-data-dir={pdf.parent / 'profil'}", "--no-pdf-header-footer",
         # No network: every request fails at once.
         "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--print-to-pdf={pdf}", html.as_uri()],
        check=True, capture_output=True, timeout=180)


def words(pdf: Path, pdftotext: str) -> list[tuple[int, float, float, float, str]]:
    """(page, xMin, xMax, yMin, text) of every word of the PDF."""
    out = subprocess.run([pdftotext, "-bbox", str(pdf), "-"], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    found = []
    for page, body in enumerate(out.split("<page ")[1:]):
        width = float(re.search(r'width="([\d.]+)"', body).group(1))
        assert abs(width - A4_WIDTH_PT) < 1, "la page imprimée n'est pas une A4 portrait"
        found += [(page, float(a), float(b), float(y), unescape(t)) for a, y, b, t in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
            body)]
    return found


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    chromium, pdftotext = tools()
    folder = tmp_path_factory.mktemp("impression")
    layers, territory, reports = sample_layers(folder)
    # A source whose file name has no space to wrap at, with repairs of long names.
    reports.append(dataclasses.replace(
        reports[0], kind="etablissements", paths=[folder / LONG_NAME], format="csv",
        repairs={"établissements sans coordonnées écartés": 12345,
                 "établissements hors du territoire écartés": 678901}))
    html = render_report(layers, reports, territory_name=territory.name,
                         communes=list(territory.communes), date="1er janvier 2026",
                         base=folder)
    page = folder / "rapport.html"
    page.write_text(html, encoding="utf-8")
    pdf = folder / "rapport.pdf"
    print_pdf(page, pdf, chromium)
    parser = Headers()
    parser.feed(html)
    return parser.tables, words(pdf, pdftotext)


def test_every_column_of_every_table_is_printed(printed):
    tables, found = printed
    assert len(tables) >= 6
    printed_words = {text for *_, text in found}
    for headers in tables:
        for header in headers:
            for word in header.split():
                assert word in printed_words, (header, headers)
    # The long file name is printed whole, broken over lines inside its column: the
    # words of that column, top to bottom, hold it.
    page, left = next((p, x0) for p, x0, _, _, t in found if t.startswith(LONG_NAME[:12]))
    column = sorted((y, t) for p, x0, _, y, t in found if p == page and abs(x0 - left) < 0.5)
    assert LONG_NAME in "".join(t for _, t in column)


def test_nothing_outside_the_page(printed):
    _, found = printed
    assert found
    outside = [(p, t) for p, x0, x1, _, t in found
               if x0 < MARGIN_PT - 1 or x1 > A4_WIDTH_PT - MARGIN_PT + 1]
    assert not outside
