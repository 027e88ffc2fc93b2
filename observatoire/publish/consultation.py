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
import itertools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from observatoire.analysis.zae_inventory import observation_date
from observatoire.outputs import StagedFile
from observatoire.progress import Progress, track

log = logging.getLogger(__name__)

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
    return [[_csv_cell(v) for v in column] for column in _columns(table)]


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


#: Zones of more rows than this are written row by row to disk (constant memory).
STREAM_ROWS = 20_000
#: Pixels of one character of the default font (Calibri 11), as xlsxwriter counts them.
_CHAR_PX = 7


def write_xlsx(table: pd.DataFrame, path: str | Path, *, zone: Mapping[str, Any],
               territory: str, date_observation: dt.date) -> Path:
    """Write one zone's consultation workbook: the units, and a summary sheet.

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

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    # Text stays text: no formula, number or link is made of a string.
    settings: dict[str, Any] = {"strings_to_formulas": False, "strings_to_numbers": False,
                                "strings_to_urls": False}
    # A small workbook is assembled in memory (no temporary file); a large zone is
    # written row by row instead, so that its cells are never all held at once.
    settings["constant_memory" if len(table) > STREAM_ROWS else "in_memory"] = True
    wb = xlsxwriter.Workbook(str(path), settings)
    ws = wb.add_worksheet("Unités foncières")
    header = wb.add_format({"bold": True, "pattern": 1, "bg_color": "#DDEBF7",
                            "text_wrap": True, "valign": "top"})
    for col, name in enumerate(table.columns):
        ws.write_string(0, col, name, header)
    for row, values in enumerate(zip(*_columns(table), strict=True), start=1):
        _write_row(ws, row, values)
    # Widths in pixels: the file then holds the widths given, in characters.
    for i, width in enumerate(WIDTHS):
        ws.set_column_pixels(i, i, width * _CHAR_PX)
    ws.freeze_panes(1, 3)  # D2: the header row and the unit's zone, name and id
    if len(table):
        ws.autofilter(0, 0, len(table), len(table.columns) - 1)

    info = wb.add_worksheet("Zone")
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
    label = wb.add_format({"bold": True, "valign": "top"})
    text = wb.add_format({"text_wrap": True, "valign": "top"})
    for row, (name, value) in enumerate(rows):
        info.write_string(row, 0, name, label)
        _write_cell(info, row, 1, value, text)
    info.set_column_pixels(0, 0, 30 * _CHAR_PX)
    info.set_column_pixels(1, 1, 90 * _CHAR_PX)
    wb.close()
    return Path(path)


def _write_row(ws: Worksheet, row: int, values: Iterable[Any]) -> None:
    for col, value in enumerate(values):
        # An empty text is an empty cell, as is NaN (a table made by hand).
        if value is not None and value != "" and value == value:
            _write_cell(ws, row, col, value)


def _write_cell(ws: Worksheet, row: int, col: int, value: Any,
                cell_format: Format | None = None) -> None:
    """Write a value with its type: text as text (never a formula), numbers as numbers."""
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float | np.floating) and np.isnan(value)):  # NULL: NaN, <NA>
        ws.write_blank(row, col, None, cell_format)
    elif isinstance(value, str):
        ws.write_string(row, col, value, cell_format)
    elif isinstance(value, bool | np.bool_):
        ws.write_boolean(row, col, bool(value), cell_format)
    elif isinstance(value, Real):
        ws.write_number(row, col, value, cell_format)
    else:
        ws.write_string(row, col, str(value), cell_format)


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
PARALLEL_MIN_ZONES = 200
#: Zones whose files one task writes.
CHUNK_ZONES = 100


@dataclass
class _Zones:
    """Zones whose files one task writes: their rows, and where to write them."""

    table: pd.DataFrame  # the rows of these zones, zone after zone
    cells: list[list[str]]  # the same rows as CSV cells, column by column
    runs: list[tuple[int, int]]  # the rows of each zone in ``table``
    infos: list[dict[str, Any]]  # each zone's row of ``zae``, with ``comm_nom``
    targets: list[tuple[Path, Path]]  # each zone's XLSX and CSV


def _write_zones(task: _Zones, shared: tuple[str, dt.date]) -> int:
    """Write the XLSX and CSV of each zone of ``task``; return how many zones."""
    territory, obs = shared
    for (lo, hi), info, (xlsx, csv_path) in zip(task.runs, task.infos, task.targets,
                                                 strict=True):
        rows = task.table.iloc[lo:hi]
        write_xlsx(rows, xlsx, zone=info, territory=territory, date_observation=obs)
        write_csv(rows, csv_path, cells=[column[lo:hi] for column in task.cells])
    return len(task.infos)


def _chunks(table: pd.DataFrame, cells: list[list[str]], runs: list[tuple[int, int]],
            infos: list[dict[str, Any]], targets: list[tuple[Path, Path]], size: int
            ) -> Iterator[_Zones]:
    """Cut the zones into tasks of ``size`` zones, each with its own rows."""
    for k in range(0, len(infos), size):
        part = runs[k:k + size]
        lo = min((a for a, b in part if b > a), default=0)
        hi = max((b for a, b in part if b > a), default=0)
        yield _Zones(table.iloc[lo:hi], [column[lo:hi] for column in cells],
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
        :data:`PARALLEL_MIN_ZONES` zones on, else this process alone. Most zones
        are small: the cost of a file is mostly that of opening and closing it,
        which the workers share.

    Returns
    -------
    list of StagedFile
        Two per zone, to publish with the other outputs.
    """
    from observatoire.executor import ProcessExecutor, SerialExecutor, available_cores

    obs, _ = observation_date(date_observation)
    folder = Path(output_dir) / "consultation"
    table = consultation_table(zae, zae_unites)
    cells = csv_cells(table)
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
        chunks = _chunks(table, cells, runs, infos, targets, CHUNK_ZONES)
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
