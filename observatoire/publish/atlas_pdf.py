"""The atlas sheets as A4 PDF files, drawn with ReportLab from the same content as the HTML.

The HTML sheet (:mod:`observatoire.publish.atlas`) is for the screen and the
browser's print; its PDF twin is written here with ReportLab's page layout
(platypus): the same title, map, key figures and tables, A4 portrait, a table
that goes on over the next page repeating its header, and « page n / N » at the
foot of each page. ReportLab writes PDF itself (no browser, no system library)
and lays a zone's sheet out in a few hundredths of a second per page, so an
atlas of thousands of zones takes minutes, not hours.

The font is DejaVu Sans, read from matplotlib's own files (the maps' font,
embedded as a subset). Every text is escaped before it reaches ReportLab's
paragraph markup: a zone or owner name is printed as written, never read as a
tag (``<img src=…>`` would otherwise load a local file).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import matplotlib
import numpy as np
from PIL import Image as PILImage
from reportlab import rl_config
from reportlab.graphics.shapes import Drawing, Line, Polygon, Rect
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from observatoire import __version__

if TYPE_CHECKING:
    from observatoire.publish.atlas import AtlasContext, Cover, KeyFigure, Sheet

log = logging.getLogger(__name__)

#: Page margins (mm): left, right, top, bottom.
MARGINS = (11, 11, 11, 14)
#: Width of the text block (points).
WIDTH = A4[0] - (MARGINS[0] + MARGINS[1]) * mm
ACCENT = colors.HexColor("#0050b4")
ZAE = colors.HexColor("#6a3d9a")
GREY = colors.HexColor("#555555")
LINE = colors.HexColor("#dddddd")
HEAD = colors.HexColor("#eef2f7")
CARD = colors.HexColor("#f5f8fc")
CARD_LINE = colors.HexColor("#d0d7e2")


@functools.cache
def _fonts() -> tuple[str, str]:
    """Register DejaVu Sans (regular, bold) from matplotlib's fonts; return their names."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily("DejaVuSans", normal="DejaVuSans", bold="DejaVuSans-Bold",
                                  italic="DejaVuSans", boldItalic="DejaVuSans-Bold")
    return "DejaVuSans", "DejaVuSans-Bold"


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()

    def style(name: str, size: float, *, font: str = regular, colour: Any = colors.black,
              leading: float | None = None, **kw: Any) -> ParagraphStyle:
        return ParagraphStyle(name, fontName=font, fontSize=size, textColor=colour,
                              leading=leading or size * 1.25, **kw)

    return {
        "surtitre": style("surtitre", 7.5, colour=GREY),
        "h1": style("h1", 16, font=bold, colour=ZAE, spaceBefore=2, spaceAfter=2),
        "soustitre": style("soustitre", 8, colour=GREY),
        "h2": style("h2", 11, font=bold, spaceBefore=9, spaceAfter=3),
        "texte": style("texte", 7.5),
        "absent": style("absent", 8, colour=colors.HexColor("#6b4a00")),
        "cellule": style("cellule", 7, leading=8.4),
        "entete": style("entete", 7, font=bold, leading=8.4),
        "nombre": style("nombre", 7, leading=8.4, alignment=2),
        "entete_nombre": style("entete_nombre", 7, font=bold, leading=8.4, alignment=2),
        "legende": style("legende", 6.5, leading=7.8),
        "libelle": style("libelle", 6.5, colour=GREY, leading=7.8),
        "valeur": style("valeur", 11.5, font=bold, colour=ACCENT, leading=14),
        "detail": style("detail", 6, colour=GREY, leading=7.2),
        "pied": style("pied", 6.5, colour=GREY),
    }


def _p(text: Any, style: str = "cellule") -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)), _styles()[style])


class _NumberedCanvas(Canvas):
    """A canvas that writes « <title> — page n / N » at the foot of every page."""

    footer = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 (ReportLab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        regular, _ = _fonts()
        for page in self._pages:
            self.__dict__.update(page)
            self.setFont(regular, 6.5)
            self.setFillColor(GREY)
            self.drawString(MARGINS[0] * mm, 7 * mm, self.footer)
            self.drawRightString(A4[0] - MARGINS[1] * mm, 7 * mm,
                                 f"page {self._pageNumber} / {total}")
            super().showPage()
        super().save()


def _canvas(footer: str) -> type[Canvas]:
    return type("FooterCanvas", (_NumberedCanvas,), {"footer": footer})


@functools.lru_cache(maxsize=2**16)
def wrap(text: str, width: float, font: str, size: float) -> str:
    """Break ``text`` into lines of at most ``width`` points, words first, then characters.

    A long identifier or file name (no space) is cut where it reaches the width,
    rather than run over the next column. Kept for the texts met again (statuses,
    owner categories, reasons, the sources of every sheet).
    """
    lines: list[str] = []
    for line in simpleSplit(text, font, size, width) or [""]:
        while len(line) > 1 and stringWidth(line, font, size) > width:
            k = max(1, int(len(line) * width / stringWidth(line, font, size)))
            while k > 1 and stringWidth(line[:k], font, size) > width:
                k -= 1
            lines.append(line[:k])
            line = line[k:]
        lines.append(line)
    return "\n".join(lines)


#: Font size of the tables (points) and padding of their cells.
TABLE_SIZE = 7.0
PADDING = 2.5


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
           widths: Sequence[float], *, swatches: Sequence[str | None] = (),
           swatch_column: int | None = None) -> Table:
    """Lay a table out over the text block (``widths`` in shares), its header on each page.

    Cells are plain text broken into lines here (:func:`wrap`): ReportLab draws
    them as they are, many times faster than paragraphs.
    """
    regular, bold = _fonts()
    cols = [w * WIDTH for w in widths]
    inner = [w - 2 * PADDING - (6 if i == swatch_column else 0) for i, w in enumerate(cols)]
    head = [wrap(str(c), w, bold, TABLE_SIZE) for c, w in zip(columns, inner, strict=True)]
    body = [[wrap("" if v is None else str(v), w, regular, TABLE_SIZE)
             for v, w in zip(row, inner, strict=True)] for row in rows]
    table = Table([head, *body], colWidths=cols, repeatRows=1)
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), regular, TABLE_SIZE, TABLE_SIZE * 1.2),
        ("FONT", (0, 0), (-1, 0), bold, TABLE_SIZE, TABLE_SIZE * 1.2),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), HEAD),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, LINE),
        ("LEFTPADDING", (0, 0), (-1, -1), PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), PADDING),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    commands += [("ALIGN", (c, 0), (c, -1), "RIGHT") for c, n in enumerate(numeric) if n]
    if swatch_column is not None:
        # The status colour, as a band on the left of the status cell.
        commands.append(("LEFTPADDING", (swatch_column, 1), (swatch_column, -1), PADDING + 6))
        for r, colour in enumerate(swatches, start=1):
            if colour:
                commands.append(("LINEBEFORE", (swatch_column, r), (swatch_column, r), 5,
                                 colors.HexColor(colour)))
    table.setStyle(TableStyle(commands))
    return table


def _figures(figures: Sequence[KeyFigure], per_row: int = 5) -> Table:
    """Lay the key figures out as cards, ``per_row`` to a row."""
    # A card is a list of paragraphs; the last row is padded with empty cells.
    cells: list[list[Paragraph] | str] = [
        [_p(f.label, "libelle"), _p(f.value, "valeur"), _p(f.detail, "detail")] for f in figures]
    rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
    rows[-1] += [""] * (per_row - len(rows[-1]))
    width = WIDTH / per_row
    table = Table(rows, colWidths=[width] * per_row)
    commands: list[tuple[Any, ...]] = [("VALIGN", (0, 0), (-1, -1), "TOP"),
                                       ("LEFTPADDING", (0, 0), (-1, -1), 4),
                                       ("TOPPADDING", (0, 0), (-1, -1), 3),
                                       ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell != "":
                commands += [("BACKGROUND", (c, r), (c, r), CARD),
                             ("BOX", (c, r), (c, r), 1.5, colors.white),
                             ("INNERGRID", (c, r), (c, r), 0.3, CARD_LINE)]
    table.setStyle(TableStyle(commands))
    return table


def _symbol(kind: str, colour: str) -> Drawing:
    """Draw a legend symbol as on the maps: box, outline, dashes, hatches, triangle, line."""
    c = colors.HexColor(colour)
    d = Drawing(11, 7)
    if kind == "fill":
        d.add(Rect(0.5, 0.5, 10, 6, fillColor=c, strokeColor=GREY, strokeWidth=0.4))
    elif kind in ("outline", "dashed"):
        d.add(Rect(1, 1, 9, 5, fillColor=None, strokeColor=c, strokeWidth=1.4,
                   strokeDashArray=[2, 1] if kind == "dashed" else None))
    elif kind == "hatch":
        d.add(Rect(1, 1, 9, 5, fillColor=None, strokeColor=c, strokeWidth=0.8))
        for x in (1, 4, 7):
            d.add(Line(x, 1, x + 3, 6, strokeColor=c, strokeWidth=0.5))
    elif kind == "point":
        d.add(Polygon([2, 0.5, 9, 0.5, 5.5, 6.5], fillColor=c, strokeColor=colors.black,
                      strokeWidth=0.4))
    else:
        d.add(Line(0.5, 3.5, 10.5, 3.5, strokeColor=c, strokeWidth=1))
    return d


def _legend(items: Sequence[tuple[str, str, str]], *, per_row: int = 4) -> Table:
    """``(kind, colour, label)`` items as a legend: the map's symbol, then the label."""
    cells: list[Any] = []
    for kind, colour, label in items:
        cell = Table([[_symbol(kind, colour), _p(label, "legende")]], colWidths=[13, None])
        cell.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                                  ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                  ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                                  ("TOPPADDING", (0, 0), (-1, -1), 0),
                                  ("BOTTOMPADDING", (0, 0), (-1, -1), 0)]))
        cells.append(cell)
    rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
    rows[-1] += [""] * (per_row - len(rows[-1]))
    table = Table(rows, colWidths=[WIDTH / per_row] * per_row)
    table.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("TOPPADDING", (0, 0), (-1, -1), 1),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return table


class _Pixels(Flowable):
    """A map drawn from its pixels (RGBA array), as an ``Image`` of its PNG draws it.

    ReportLab's ``canvas.drawImage`` takes the pixels as they were drawn instead of
    decoding the PNG again (a quarter of a sheet's time); the PDF is the same.
    """

    def __init__(self, pixels: np.ndarray, width: float, height: float) -> None:
        super().__init__()
        self.pixels, self.width, self.height = pixels, width, height
        self.hAlign = "CENTER"  # as an Image

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        return self.width, self.height

    def draw(self) -> None:
        self.canv.drawImage(ImageReader(PILImage.fromarray(self.pixels, "RGBA")), 0, 0,
                            self.width, self.height, mask="auto")


def _map(png: bytes, height_mm: float, pixels: np.ndarray | None = None) -> Flowable:
    if pixels is not None:
        return _Pixels(pixels, WIDTH, height_mm * mm)
    return Image(io.BytesIO(png), width=WIDTH, height=height_mm * mm)


def _sources(context: AtlasContext) -> list[Any]:
    s = context.sources
    return [_p("Sources des données", "h2"),
            _table(s.columns, s.rows, s.numeric, (0.13, 0.35, 0.12, 0.15, 0.15, 0.10))
            if s.rows else _p("Aucune source n'est décrite.", "absent")]


@contextlib.contextmanager
def _binary_streams() -> Iterator[None]:
    """Write the PDF's streams compressed but not ASCII85-encoded (ReportLab's default).

    Pure Python ASCII85 costs more than the rest of a sheet with a map, and
    makes the file a quarter larger; binary streams are what PDF readers expect.
    """
    previous = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = previous


def _document(path: Path, title: str, story: list[Any], footer: str) -> None:
    doc = SimpleDocTemplate(
        str(path), pagesize=A4, leftMargin=MARGINS[0] * mm, rightMargin=MARGINS[1] * mm,
        topMargin=MARGINS[2] * mm, bottomMargin=MARGINS[3] * mm, title=title,
        author="Observatoire du foncier économique", creator=f"observatoire {__version__}",
        lang="fr-FR", invariant=True)
    with _binary_streams():
        doc.build(story, canvasmaker=_canvas(footer))


def write_sheet_pdf(sheet: Sheet, context: AtlasContext, path: str | Path) -> Path:
    """Write a zone's sheet as an A4 portrait PDF.

    Parameters
    ----------
    sheet
        The zone's sheet (:class:`observatoire.publish.atlas.Sheet`).
    context
        What every sheet shares.
    path
        The file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    story: list[Any] = [
        _p("Inventaire des zones d'activité économique (art. L318-8-2 du code de l'urbanisme) "
           f"— {context.territory}" + (f" — {context.epci}" if context.epci else ""),
           "surtitre"),
        _p(sheet.name, "h1"),
        *[_p(line, "soustitre") for line in sheet.subtitle],
        _p(f"Situation au {context.observation}", "soustitre"),
        Spacer(1, 2 * mm),
        _map(sheet.map_png, 115, sheet.map_pixels),
        Spacer(1, 1 * mm),
        _legend(context.legend),
        KeepTogether([_p("Chiffres clés", "h2"), _figures(sheet.figures)]),
        _p(f"Statut de vacance — {sheet.rule}", "texte"),
        _p(f"Unités foncières ({len(sheet.units.rows)})", "h2"),
        *[_p(note, "texte") for note in sheet.notes],
    ]
    u = sheet.units
    if u.rows:
        story.append(_table(u.columns, u.rows, u.numeric,
                            (0.05, 0.19, 0.11, 0.17, 0.16, 0.12, 0.20),
                            swatches=u.swatches, swatch_column=5))
    else:
        story.append(_p("Aucune unité foncière n'est rattachée à cette zone.", "absent"))
    story.append(_p("Friches dans la zone", "h2"))
    if sheet.friches:
        f = sheet.friches
        story.append(_table(f.columns, f.rows, f.numeric, (0.16, 0.30, 0.16, 0.14, 0.24)))
    else:
        story.append(_p("Aucune friche recensée dans la zone.", "absent"))
    story.append(_p("Gisements fonciers de la zone", "h2"))
    if sheet.sites:
        g = sheet.sites
        story.append(_table(g.columns, g.rows, g.numeric, (0.30, 0.17, 0.15, 0.15, 0.23)))
    else:
        story.append(_p("Aucun gisement foncier (site candidat) dans la zone.", "absent"))
    story += _sources(context)
    story += _closing(context, "fiche")
    _document(path, f"{sheet.name} — atlas des ZAE — {context.territory}", story,
              f"Atlas des ZAE — {context.territory} — {sheet.name}")
    return path


def _closing(context: AtlasContext, what: str) -> list[Any]:
    return [
        Spacer(1, 4 * mm),
        _p("Document soumis pendant 30 jours aux propriétaires et occupants des unités "
           "foncières de chaque zone (art. L318-8-2 du code de l'urbanisme), puis arrêté par "
           "l'intercommunalité. Les propriétaires personnes physiques et les entrepreneurs "
           "individuels ne sont jamais nommés.", "pied"),
        _p(f"Situation au {context.observation} — {what} produite le {context.produced} par "
           f"l'observatoire du foncier économique {__version__}.", "pied"),
    ]


def write_cover_pdf(cover: Cover, context: AtlasContext, path: str | Path) -> Path:
    """Write the atlas' cover sheet as an A4 portrait PDF.

    Parameters
    ----------
    cover
        The cover (:class:`observatoire.publish.atlas.Cover`).
    context
        What every sheet shares.
    path
        The file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    story: list[Any] = [
        _p("Inventaire des zones d'activité économique (art. L318-8-2 du code de l'urbanisme)",
           "surtitre"),
        _p(f"Atlas des zones d'activité économique — {context.territory}", "h1"),
        *([_p(context.epci, "soustitre")] if context.epci else []),
        _p(f"Situation au {context.observation} — {len(cover.rows)} zone(s), une fiche par "
           f"zone", "soustitre"),
        Spacer(1, 2 * mm),
        _map(cover.map_png, 157),
        Spacer(1, 1 * mm),
        _legend([("fill", c, f"vacance : {label}") for c, label in cover.vacancy], per_row=5),
        KeepTogether([_p("Chiffres clés du territoire", "h2"), _figures(cover.figures)]),
        _p("Les zones d'activité", "h2"),
        _table(cover.columns, cover.rows, [True, False, False, *[True] * 7],
               (0.05, 0.22, 0.13, 0.08, 0.07, 0.08, 0.08, 0.09, 0.10, 0.10)),
    ]
    story += _sources(context)
    story += _closing(context, "atlas")
    _document(path, f"Atlas des zones d'activité économique — {context.territory}", story,
              f"Atlas des ZAE — {context.territory} — couverture")
    return path
