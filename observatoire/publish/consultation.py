"""Consultation files of the ZAE inventory: one XLSX and one CSV per zone.

Article L318-8-2 of the code de l'urbanisme has the inventory submitted for 30
days to the owners and occupants of the zone. Each file lists one land unit per
row — parcels, surface, owner, occupants, vacancy status and its reason — with
an empty column for their remarks. Owners that are natural persons are shown as
« personne physique », never by name; legal entities by name and SIREN.

The CSV is for spreadsheets set to French: ``;``-separated, decimal comma, UTF-8
with a byte-order mark (so that Excel reads the accents). Text that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is written as
text: quoted with ``'`` in the CSV, typed as a string in the XLSX.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.analysis.zae_inventory import observation_date
from observatoire.outputs import StagedFile
from observatoire.progress import Progress, track

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Columns of the consultation table: French header → how to fill it.
HEADERS = (
    "Identifiant de la zone",
    "Nom de la zone",
    "Unité foncière",
    "Parcelles cadastrales",
    "Nombre de parcelles",
    "Surface de l'unité (m²)",
    "Part dans la zone (%)",
    "Coupée par la limite de la zone",
    "Propriétaire (catégorie)",
    "Propriétaire (dénomination, personnes morales)",
    "SIREN du propriétaire",
    "Occupants (SIRET – nom)",
    "Nombre d'occupants",
    "Occupation",
    "Statut de vacance",
    "Motif",
    "Observations du propriétaire ou de l'occupant",
)
#: Width (characters) of each XLSX column.
WIDTHS = (22, 28, 18, 34, 10, 14, 12, 12, 18, 32, 12, 48, 10, 16, 18, 60, 40)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def consultation_table(zae: pd.DataFrame, zae_unites: pd.DataFrame) -> pd.DataFrame:
    """One row per land unit of ``zae`` (all zones given), with French headers.

    Parameters
    ----------
    zae
        Zones (``zae_id``, ``zae_nom``).
    zae_unites
        The ``zae_unites`` layer of the inventory.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`HEADERS`; numbers as numbers (surface rounded to the m²,
        share in percent with one decimal), missing values as ``None``.
    """
    zu = pd.DataFrame(zae_unites[zae_unites["zae_id"].isin(zae["zae_id"])])
    zu = zu.sort_values(["zae_id", "uf_id"], kind="stable")
    names = dict(zip(zae["zae_id"], zae.get("zae_nom", zae["zae_id"]), strict=True))
    kind = zu["proprietaire_type"].where(zu["proprietaire_type"].isin(
        ["personne morale", "personne physique"]), "inconnu")
    legal = kind == "personne morale"
    idus = zu["idus"].fillna("").str.split("|").str.join(", ")
    table = pd.DataFrame({
        HEADERS[0]: zu["zae_id"],
        HEADERS[1]: zu["zae_id"].map(names),
        HEADERS[2]: zu["uf_id"],
        HEADERS[3]: idus,
        HEADERS[4]: pd.to_numeric(zu.get("nb_parcelles"), errors="coerce").astype("Int64"),
        HEADERS[5]: pd.to_numeric(zu["surface_m2"], errors="coerce").round().astype("Int64"),
        HEADERS[6]: (pd.to_numeric(zu["part_dans_zae"], errors="coerce") * 100).round(1),
        HEADERS[7]: zu["coupee_par_limite"].map({True: "oui", False: "non"}),
        HEADERS[8]: kind,
        # Natural persons are never named, whatever the input holds.
        HEADERS[9]: zu["proprietaire_nom"].where(legal, None),
        HEADERS[10]: zu["proprietaire_siren"].where(legal, None),
        HEADERS[11]: zu["occupants"],
        HEADERS[12]: pd.to_numeric(zu["nb_occupants"], errors="coerce").astype("Int64"),
        HEADERS[13]: zu["occupation"],
        HEADERS[14]: zu["statut_vacance"],
        HEADERS[15]: zu["raison_vacance"],
        HEADERS[16]: None,
    })
    return table.astype(object).where(table.notna(), None).reset_index(drop=True)


def safe_file_name(zae_id: str) -> str:
    """Turn a zone id into a file name: letters, digits, ``-``, ``_`` and ``.`` only."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(zae_id)).strip("._")
    return name[:100] or "zone"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",")
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_cells(table: pd.DataFrame) -> list[list[str]]:
    """Return the cells of ``table`` as the CSV writes them, column by column.

    Missing values are empty, decimals take a comma, text that a spreadsheet
    would run as a formula is quoted with ``'``.
    """
    return [_memo(column, _csv_cell) for column in _columns(table)]


def xlsx_cells(table: pd.DataFrame) -> list[list[str | None]]:
    """Return the cells of ``table`` as the workbook holds them, column by column.

    Each cell is the XML of a typed cell after its reference (:func:`_cell`);
    ``None`` for an empty one.
    """
    return [_memo(column, _cell) for column in _columns(table)]


def _memo(values: list[Any], make: Callable[[Any], _T]) -> list[_T]:
    """``make`` of each value, called once per distinct value of a type.

    Numbers of different types are told apart (1 is not 1.0, nor ``True``); decimals
    are not shared at all (0.0 and -0.0 are equal, not written alike).
    """
    kinds = {value.__class__ for value in values} - {type(None)}
    if any(issubclass(kind, float) for kind in kinds):
        return [make(value) for value in values]
    if len(kinds) <= 1:
        # One type (and NULLs): the values are their own keys.
        once = {value: make(value) for value in set(values)}
        return [once[value] for value in values]
    made: dict[tuple[type, Any], _T] = {}
    out = []
    for value in values:
        key = (value.__class__, value)
        if key in made:
            out.append(made[key])
        else:
            out.append(made.setdefault(key, make(value)))
    return out


def _columns(table: pd.DataFrame) -> list[list[Any]]:
    """Return the values of each column of ``table`` as Python objects."""
    return [table[name].tolist() for name in table.columns]


def write_csv(table: pd.DataFrame, path: str | Path, *,
              cells: list[list[str]] | None = None) -> Path:
    """Write ``table`` as a French spreadsheet CSV (``;``, decimal comma, UTF-8 with BOM).

    Parameters
    ----------
    table
        From :func:`consultation_table`.
    path
        The file to write.
    cells
        The cells of ``table``, from :func:`csv_cells`, when already made.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    columns = csv_cells(table) if cells is None else cells
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(table.columns)
        writer.writerows(zip(*columns, strict=True))
    return path


#: Rows of the units sheet made at once, then written to the file: a large zone's
#: cells are never all held at once.
STREAM_ROWS = 20_000


def write_xlsx(table: pd.DataFrame, path: str | Path, *, zone: Mapping[str, Any],
               territory: str, date_observation: dt.date,
               cells: list[list[str | None]] | None = None) -> Path:
    """Write one zone's consultation workbook: the units, and a summary sheet.

    The workbook is written as its XML parts (:func:`_write_workbook`): a cell is a
    few characters of text, where a spreadsheet library makes an object of each one.

    Parameters
    ----------
    table
        The zone's rows, from :func:`consultation_table`.
    path
        The file to write.
    zone
        The zone's row of the ``zae`` layer (name, commune, counts, rates, rule),
        with ``comm_nom`` the name of its commune when known.
    territory
        The territory's name, for the title.
    date_observation
        The inventory's date.
    cells
        The cells of ``table``, from :func:`xlsx_cells`, when already made.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    rate = zone.get("taux_vacance")
    rate_area = zone.get("taux_vacance_surface")
    rows = [
        ("Inventaire des zones d'activité économique", territory),
        ("Article", "L318-8-2 du code de l'urbanisme"),
        ("Zone", _known(zone.get("zae_nom")) or zone.get("zae_id")),
        ("Identifiant", zone.get("zae_id")),
        ("Commune", _commune(zone)),
        ("Date d'observation", date_observation.strftime("%d/%m/%Y")),
        ("Unités foncières", _number(zone.get("nb_unites"))),
        ("Unités vacantes", _number(zone.get("nb_unites_vacantes"))),
        ("Taux de vacance (nombre)", _percent(rate)),
        ("Taux de vacance (surface)", _percent(rate_area)),
        ("Surface disponible (m²)", _number(zone.get("surface_disponible_m2"), digits=0)),
        ("Règle de vacance appliquée", _known(zone.get("regle_vacance"))),
        ("Consultation", "Ce document est soumis pendant 30 jours aux propriétaires et occupants "
                         "de la zone : indiquez vos observations dans la dernière colonne de "
                         "l'onglet « Unités foncières »."),
        ("Données personnelles", "Les propriétaires personnes physiques ne sont pas nommés."),
    ]
    _write_workbook(table, rows, Path(path),
                    columns=xlsx_cells(table) if cells is None else cells)
    return Path(path)


#: Sheets of the workbook.
_SHEETS = ("Unités foncières", "Zone")
#: Cell styles (``s``): 1 header, 2 label of the summary, 3 its values.
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/>'
    '<scheme val="minor"/></font><font><b/><sz val="11"/><name val="Calibri"/>'
    '<family val="2"/><scheme val="minor"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill><fill><patternFill patternType="solid">'
    '<fgColor rgb="FFDDEBF7"/><bgColor indexed="64"/></patternFill></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1" '
    'applyAlignment="1"><alignment vertical="top" wrapText="1"/></xf>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" '
    'applyAlignment="1"><alignment vertical="top"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyAlignment="1">'
    '<alignment vertical="top" wrapText="1"/></xf></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = ('xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
         'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"')
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_PARTS = {
    "[Content_Types].xml": (
        f'{_XML}<Types xmlns="{_PACKAGE}/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_SHEET_TYPE}"/>'
        f'<Override PartName="/xl/worksheets/sheet2.xml" ContentType="{_SHEET_TYPE}"/></Types>'),
    "_rels/.rels": (
        f'{_XML}<Relationships xmlns="{_PACKAGE}/relationships"><Relationship Id="rId1" '
        f'Type="{_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
    "xl/_rels/workbook.xml.rels": (
        f'{_XML}<Relationships xmlns="{_PACKAGE}/relationships">'
        f'<Relationship Id="rId1" Type="{_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_RELS}/worksheet" Target="worksheets/sheet2.xml"/>'
        f'<Relationship Id="rId3" Type="{_RELS}/styles" Target="styles.xml"/>'
        '</Relationships>'),
    "xl/styles.xml": _STYLES,
}
_HEADER, _LABEL, _VALUE = ' s="1"', ' s="2"', ' s="3"'
_CONTROL_ESCAPED = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"([\x00-\x08\x0b-\x1f])")
_EDGE_SPACE = re.compile(r"^\s|\s$")
#: Whatever :func:`_text_cell` changes, or marks.
_SPECIAL = re.compile(r"[\x00-\x08\x0b-\x1f&<>\ufffe\uffff]|_x[0-9a-fA-F]{4}_|^\s|\s$")
#: Longest text of a cell, in UTF-16 units (Excel's limit).
_MAX_TEXT = 32_767


def _text_cell(text: str, style: str = "") -> str:
    """Return the end of a text cell (after its reference): inline, escaped as Excel does."""
    if len(text) <= _MAX_TEXT // 2 and not _SPECIAL.search(text):
        return f'{style} t="inlineStr"><is><t>{text}</t></is></c>'
    if len(text) > _MAX_TEXT // 2 and len(text.encode("utf-16-le")) > 2 * _MAX_TEXT:
        text = text.encode("utf-16-le")[:2 * _MAX_TEXT].decode("utf-16-le", errors="ignore")
    # Control characters as _xHHHH_ (and a literal _xHHHH_ protected), as Excel writes them.
    text = _CONTROL.sub(lambda m: f"_x{ord(m.group(1)):04X}_",
                        _CONTROL_ESCAPED.sub(r"_x005F\1", text))
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    space = ' xml:space="preserve"' if _EDGE_SPACE.search(text) else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'{style} t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _cell(value: Any, style: str = "") -> str | None:
    """Return the end of a cell of ``value`` (after its reference), typed; ``None`` if NULL.

    Text stays text (never a formula, a number or a link); numbers are numbers. An
    empty text is an empty cell, as is a NULL (``None``, NaN, ``<NA>``).
    """
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float | np.floating) and np.isnan(value)):
        return None
    if isinstance(value, str) and not value:
        return None
    if isinstance(value, str):
        return _text_cell(value, style)
    if isinstance(value, bool | np.bool_):
        return f'{style} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, Real):
        if not np.isfinite(float(value)):
            raise ValueError(f"nombre infini dans un fichier de consultation : {value!r}")
        return f"{style}><v>{value:.16G}</v></c>"
    return _text_cell(str(value), style)


def _column_letters(n: int) -> list[str]:
    letters = []
    for i in range(n):
        name, k = "", i + 1
        while k:
            k, r = divmod(k - 1, 26)
            name = chr(65 + r) + name
        letters.append(name)
    return letters


def _cols(widths: Iterable[int]) -> str:
    """``<cols>``: runs of equal widths, in characters."""
    out, runs = [], [list(g) for _, g in itertools.groupby(enumerate(widths, start=1),
                                                           key=lambda p: p[1])]
    for run in runs:
        out.append(f'<col min="{run[0][0]}" max="{run[-1][0]}" width="{run[0][1]}" '
                   'customWidth="1"/>')
    return "<cols>" + "".join(out) + "</cols>"


_MARGINS = '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" ' \
           'footer="0.3"/>'


def _write_workbook(table: pd.DataFrame, summary: list[tuple[str, Any]], path: Path, *,
                    columns: list[list[str | None]]) -> None:
    """Write the units sheet of ``table`` (its cells ``columns``) and the summary sheet."""
    letters = _column_letters(len(table.columns))
    last = f"{letters[-1]}{len(table) + 1}"
    filtered = len(table) > 0
    name = _SHEETS[0].replace("'", "''")
    defined = (f'<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0" '
               f'hidden="1">\'{name}\'!$A$1:${letters[-1]}${len(table) + 1}</definedName>'
               '</definedNames>' if filtered else "")
    workbook = (f'{_XML}<workbook {_MAIN}><bookViews><workbookView/></bookViews><sheets>'
                f'<sheet name="{_SHEETS[0]}" sheetId="1" r:id="rId1"/>'
                f'<sheet name="{_SHEETS[1]}" sheetId="2" r:id="rId2"/></sheets>{defined}'
                '</workbook>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for part, text in _PARTS.items():
            zf.writestr(part, text)
        zf.writestr("xl/workbook.xml", workbook)
        with zf.open("xl/worksheets/sheet1.xml", "w") as raw, io.TextIOWrapper(
                raw, encoding="utf-8") as f:
            f.write(
                f'{_XML}<worksheet {_MAIN}><dimension ref="A1:{last}"/><sheetViews>'
                '<sheetView tabSelected="1" workbookViewId="0"><pane xSplit="3" ySplit="1" '
                'topLeftCell="D2" activePane="bottomRight" state="frozen"/>'
                '<selection pane="topRight" activeCell="D1" sqref="D1"/>'
                '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
                '<selection pane="bottomRight"/></sheetView></sheetViews>'
                f'<sheetFormatPr defaultRowHeight="15"/>{_cols(WIDTHS)}<sheetData>'
                '<row r="1">' + "".join(f'<c r="{c}1"{_text_cell(str(h), _HEADER)}'
                                        for c, h in zip(letters, table.columns, strict=True))
                + "</row>")
            for lo in range(0, len(table), STREAM_ROWS):
                block = []
                ends = [c[lo:lo + STREAM_ROWS] for c in columns]
                for n, row in enumerate(zip(*ends, strict=True), start=lo + 2):
                    cells = "".join(f'<c r="{c}{n}"{end}' for c, end in zip(
                        letters, row, strict=True) if end)
                    block.append(f'<row r="{n}">{cells}</row>')
                f.write("".join(block))
            f.write("</sheetData>" + (f'<autoFilter ref="A1:{last}"/>' if filtered else "")
                    + _MARGINS + "</worksheet>")
        info = "".join(
            f'<row r="{n}"><c r="A{n}"{_text_cell(label, _LABEL)}'
            f'<c r="B{n}"{_cell(value, _VALUE) or _VALUE + "/>"}</row>'
            for n, (label, value) in enumerate(summary, start=1))
        zf.writestr("xl/worksheets/sheet2.xml", (
            f'{_XML}<worksheet {_MAIN}><dimension ref="A1:B{len(summary)}"/><sheetViews>'
            '<sheetView workbookViewId="0"/></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
            f'{_cols((30, 90))}<sheetData>{info}</sheetData>{_MARGINS}</worksheet>'))


def _known(value: Any) -> Any:
    """``value``, or ``None`` for a NULL (``None``, NaN, ``<NA>``)."""
    return None if value is None or (np.ndim(value) == 0 and pd.isna(value)) else value


def _commune(zone: Mapping[str, Any]) -> str | None:
    """``Gennes (25267)``: the zone's commune, by name when known."""
    code, name = zone.get("comm_insee"), zone.get("comm_nom")
    if code is None or pd.isna(code):
        return None
    return f"{name} ({code})" if isinstance(name, str) and name else str(code)


def _number(value: Any, *, digits: int | None = None) -> Any:
    if value is None or pd.isna(value):
        return None
    return round(float(value), digits) if digits is not None else int(value)


def _percent(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return f"{float(value) * 100:.1f} %".replace(".", ",")


#: Zones from which the files are written by worker processes (when the machine has cores).
#: A zone's two files take a few milliseconds; starting the workers, seconds: at 611
#: zones (41,250 units), this process alone wrote them in 3.2 s, two workers in 4.9 s.
PARALLEL_MIN_ZONES = 2_000
#: Zones whose files one task writes.
CHUNK_ZONES = 100


@dataclass
class _Zones:
    """Zones whose files one task writes: their rows, and where to write them."""

    table: pd.DataFrame  # the rows of these zones, zone after zone
    cells: list[list[str]]  # the same rows as CSV cells, column by column
    xlsx: list[list[str | None]]  # and as workbook cells
    runs: list[tuple[int, int]]  # the rows of each zone in ``table``
    infos: list[dict[str, Any]]  # each zone's row of ``zae``, with ``comm_nom``
    targets: list[tuple[Path, Path]]  # each zone's XLSX and CSV


def _write_zones(task: _Zones, shared: tuple[str, dt.date]) -> int:
    """Write the XLSX and CSV of each zone of ``task``; return how many zones."""
    territory, obs = shared
    for (lo, hi), info, (xlsx, csv_path) in zip(task.runs, task.infos, task.targets,
                                                 strict=True):
        rows = task.table.iloc[lo:hi]
        write_xlsx(rows, xlsx, zone=info, territory=territory, date_observation=obs,
                   cells=[column[lo:hi] for column in task.xlsx])
        write_csv(rows, csv_path, cells=[column[lo:hi] for column in task.cells])
    return len(task.infos)


def _chunks(table: pd.DataFrame, cells: list[list[str]], xlsx: list[list[str | None]],
            runs: list[tuple[int, int]], infos: list[dict[str, Any]],
            targets: list[tuple[Path, Path]], size: int) -> Iterator[_Zones]:
    """Cut the zones into tasks of ``size`` zones, each with its own rows."""
    for k in range(0, len(infos), size):
        part = runs[k:k + size]
        lo = min((a for a, b in part if b > a), default=0)
        hi = max((b for a, b in part if b > a), default=0)
        yield _Zones(table.iloc[lo:hi], [column[lo:hi] for column in cells],
                     [column[lo:hi] for column in xlsx],
                     [(a - lo, b - lo) if b > a else (0, 0) for a, b in part],
                     infos[k:k + size], targets[k:k + size])


def stage_consultation(zae: gpd.GeoDataFrame, zae_unites: gpd.GeoDataFrame, *,
                       output_dir: str | Path, territory: str,
                       date_observation: dt.date | str | None,
                       progress: Progress | None = None,
                       communes: Mapping[str, str] | None = None,
                       workers: int | None = None) -> list[StagedFile]:
    """Write each zone's consultation XLSX and CSV to staged files.

    Parameters
    ----------
    zae
        The ``zae`` layer with the inventory's columns.
    zae_unites
        The ``zae_unites`` layer.
    output_dir
        The territory's output folder; files go to ``<output_dir>/consultation/``
        as ``<zae_id>.xlsx`` and ``<zae_id>.csv``.
    territory
        The territory's name.
    date_observation
        ``options.date_observation`` (``None``: today).
    progress
        The build's progress: counts the zones (:func:`observatoire.progress.track`).
    communes
        INSEE code → commune name: the zone's commune is named in its workbook.
    workers
        Processes writing the files; default: every core available from
        :data:`PARALLEL_MIN_ZONES` zones on, else this process alone.

    Returns
    -------
    list of StagedFile
        Two per zone, to publish with the other outputs.
    """
    from observatoire.executor import ProcessExecutor, SerialExecutor, available_cores

    obs, _ = observation_date(date_observation)
    folder = Path(output_dir) / "consultation"
    table = consultation_table(zae, zae_unites)
    cells, xlsx_columns = csv_cells(table), xlsx_cells(table)
    # The table is sorted by zone: the rows of each zone are one run, found once.
    found = {key: (int(rows[0]), int(rows[-1]) + 1) for key, rows in
             table.groupby(HEADERS[0], sort=False, dropna=True).indices.items()}
    names = communes or {}
    zones = pd.DataFrame(zae.drop(columns=zae.geometry.name)).sort_values(
        "zae_id", kind="stable").to_dict("records")
    runs = [found.get(zone["zae_id"], (0, 0)) for zone in zones]
    infos = [{**zone, "comm_nom": names.get(zone.get("comm_insee"))} for zone in zones]
    staged: list[StagedFile] = []
    used: set[str] = set()
    try:
        targets = []
        for zone in zones:
            name = safe_file_name(zone["zae_id"])
            while name in used:
                name += "_"
            used.add(name)
            xlsx, csv_file = StagedFile(folder / f"{name}.xlsx"), StagedFile(folder / f"{name}.csv")
            staged += [xlsx, csv_file]
            targets.append((xlsx.tmp, csv_file.tmp))
        n = workers if workers is not None else (
            available_cores() if len(zones) >= PARALLEL_MIN_ZONES else 1)
        shared = (territory, obs)
        chunks = _chunks(table, cells, xlsx_columns, runs, infos, targets, CHUNK_ZONES)
        label = "zones (fichiers de consultation)"
        with ProcessExecutor(n) if n > 1 else SerialExecutor() as pool:
            done = pool.imap(_write_zones, chunks, shared=shared)
            for _ in track(progress, _each_zone(done), total=len(zones), label=label):
                pass
    except BaseException:
        for s in staged:
            s.discard()
        raise
    log.info("consultation : %d fichier(s) pour %d zone(s)", len(staged), len(zae))
    return staged


def _each_zone(counts: Iterable[int]) -> Iterator[None]:
    """One item per zone written, from the number of zones of each task done."""
    for count in counts:
        yield from itertools.repeat(None, count)
