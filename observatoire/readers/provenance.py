"""Producer and date of each source, credited as the Licence Ouverte 2.0 requires.

The Licence Ouverte / Open Licence 2.0 (Etalab) asks whoever reuses the data to
name its producer and the date of its last update. Each source's report
(:class:`~observatoire.readers.lineage.SourceReport`) gets both, for the ``sources``
table, the report and the map:

- **producer**: the ``producteur`` key of the source in the territory file when
  given; otherwise what the format or the file says — Etalab cadastre:
  « DGFiP / Etalab », BD PARCELLAIRE: « IGN, DGFiP », EDIGEO: « DGFiP », a BD
  TOPO layer (recognised by its fields): « IGN », Cartofriches: « Cerema », CNIG
  Friches: the ``source_nom`` of the friches kept (else « Cerema »), CNIG Sites
  économiques: its ``source_producteur``, Sirene: « INSEE », the PLU's zoning: the
  authority named by the documents' ``idurba`` (else « Géoportail de
  l'Urbanisme »); otherwise « non renseigné », with a warning naming the key to
  set;
- **date of the data**: the ``date`` key of the source when given; otherwise the
  latest date of the file's own date field (Etalab's ``updated``, the CNIG
  ``site_actu_date``, BD TOPO's ``date_modification``, zone_urba's ``datvalid``…,
  :data:`DATE_FIELDS`), noted by the readers through :func:`note_provenance`;
  otherwise the approval date in the zoning's ``idurba``, the last change of the
  layer recorded by a GeoPackage (``gpkg_contents.last_change``), and last the
  file's modification date — each flagged as such in ``data_date_origin``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from observatoire.config import Source, Territory
from observatoire.readers.lineage import SourceReport

log = logging.getLogger(__name__)

#: Date fields telling when the data were last updated, by preference (case-insensitive).
DATE_FIELDS = (
    "updated",  # Etalab cadastre
    "site_actu_date", "terr_actu_date", "etab_actu_date", "pole_actu_date",  # CNIG
    "date_modification", "date_maj",  # BD TOPO 3, BD TOPO 2
    "datvalid", "datappro",  # CNIG zone_urba
    "created", "site_identif_date", "date_creation", "date_creat",
)
#: Fields found only in IGN's BD TOPO (versions 2 and 3).
BDTOPO_FIELDS = ("prec_plani", "precision_planimetrique")
#: Producer written when nothing names it.
UNKNOWN_PRODUCER = "non renseigné"
#: Producers listed at most for one source (the most frequent first).
MAX_PRODUCERS = 4

_ORIGIN_KEY = "fichier de territoire ({key}.date)"
_ORIGIN_FIELD = "champ « {field} » de {file} (date la plus récente)"
_ORIGIN_IDURBA = "date d'approbation du document d'urbanisme (idurba)"
_ORIGIN_GPKG = "dernière modification de la couche (métadonnées du GeoPackage {file})"
_ORIGIN_MTIME = "date de modification du fichier {file} (aucune date dans les données)"
#: Dates outside these years are typing errors, not dates of data.
_YEARS = (1950, dt.date.today().year + 1)


def note_provenance(report: SourceReport, frame: pd.DataFrame, *, path: Path,
                    producer_field: str | None = None) -> None:
    """Note in ``report`` what a file read says of its producer and date.

    Called by the readers on each file as read (before the fields are mapped):
    the latest date of the first field of :data:`DATE_FIELDS` that holds one is
    kept when later than the report's; a BD TOPO layer names IGN; the values of
    ``producer_field`` (CNIG ``source_producteur``) name the producers.

    Parameters
    ----------
    report
        The report of the source being read (changed in place).
    frame
        The file's features, with their source fields.
    path
        The file (named in ``data_date_origin``).
    producer_field
        A field naming the producer of each feature, if the format has one.
    """
    lower = {str(c).lower(): c for c in frame.columns}
    for name in DATE_FIELDS:
        column = lower.get(name.lower())
        if column is None:
            continue
        latest = latest_date(frame[column])
        if latest is None:
            continue
        if latest > report.data_date:
            report.data_date = latest
            report.data_date_origin = _ORIGIN_FIELD.format(field=column, file=path.name)
        break
    if not report.producer and any(f in lower for f in BDTOPO_FIELDS):
        report.producer = "IGN (BD TOPO)"
    if producer_field and not report.producer and producer_field.lower() in lower:
        names = _most_frequent(frame[lower[producer_field.lower()]])
        if names:
            report.producer = names


def latest_date(values: pd.Series) -> str | None:
    """Return the latest plausible date of a column (``AAAA-MM-JJ``), or ``None``.

    Dates are read from date and datetime columns, from text (``2024-03-01``,
    ``20240301``, ``01/03/2024``, ``2024/03/01``, with or without a time) and from
    numbers of days since 1970-01-01 (Cartofriches' R dates); years outside 1950
    to next year (typing errors) are ignored, and so are columns of years only.
    """
    present = values.dropna()
    if not len(present) or pd.api.types.is_bool_dtype(present):
        return None
    first, last = _YEARS
    if pd.api.types.is_datetime64_any_dtype(present):
        years = present.dt.year
        stamps = present[(years >= first) & (years <= last)]
        return stamps.max().date().isoformat() if len(stamps) else None
    if pd.api.types.is_numeric_dtype(present):
        numbers = pd.to_numeric(present, errors="coerce").dropna().unique()
        if len(numbers) and ((numbers >= 1900) & (numbers <= 2100)).all():
            return None  # years, not days: too coarse for a date of data
        low, high = ((dt.date(y, 1, 1) - _EPOCH).days for y in (first, last + 1))
        found = [_EPOCH + dt.timedelta(days=int(n)) for n in numbers if low <= n < high]
    else:
        # Ten characters hold every form: a time of day (many distinct values) is cut first.
        texts = present.astype(str).str.strip().str[:10].unique()
        found = [d for text in texts if (d := _parse_date(text))]
    found = [d for d in found if first <= d.year <= last]
    return max(found).isoformat() if found else None


_EPOCH = dt.date(1970, 1, 1)
#: Text forms of a date: pattern, ``strptime`` format, characters read.
_DATE_FORMS = ((re.compile(r"^\d{4}-\d{2}-\d{2}"), "%Y-%m-%d", 10),
               (re.compile(r"^\d{8}$"), "%Y%m%d", 8),
               (re.compile(r"^\d{2}/\d{2}/\d{4}"), "%d/%m/%Y", 10),
               (re.compile(r"^\d{4}/\d{2}/\d{2}"), "%Y/%m/%d", 10))


def _parse_date(text: str) -> dt.date | None:
    for pattern, fmt, width in _DATE_FORMS:
        if pattern.match(text):
            try:
                return dt.datetime.strptime(text[:width], fmt).date()
            except ValueError:
                return None
    return None


def attribute_sources(reports: Sequence[SourceReport], territory: Territory,
                      layers: Mapping[str, pd.DataFrame | None]) -> None:
    """Give each report its producer and data date (see the module's description).

    Parameters
    ----------
    reports
        The reports of the sources read (changed in place).
    territory
        The territory file: the ``producteur`` and ``date`` keys of each source.
    layers
        Canonical layers the producer is read from: ``zonage`` (``idurba``),
        ``friches`` (``source_nom``), ``etablissements`` (``date_maj``).
    """
    for report in reports:
        source = source_of(report, territory)
        key = source.key if source and source.key else f"sources.{report.kind}"
        if source is not None and source.producer:
            report.producer = source.producer
        else:
            report.producer = (_producer(report, layers, territory) or report.producer
                               or UNKNOWN_PRODUCER)
            if report.producer == UNKNOWN_PRODUCER:
                log.warning("%s : producteur des données inconnu ; indiquez-le avec "
                            "« %s.producteur = \"…\" » (la Licence Ouverte impose de le "
                            "citer)", _names(report), key)
        if source is not None and source.date:
            report.data_date = source.date
            report.data_date_origin = _ORIGIN_KEY.format(key=key)
        elif not report.data_date:
            _fallback_date(report, layers)


def source_of(report: SourceReport, territory: Territory) -> Source | None:
    """Return the source of the territory file that ``report`` describes."""
    candidates = [s for s in territory.all_sources() if s.kind == report.kind]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    paths = {Path(p).resolve() for p in report.paths}
    return next((s for s in candidates if {p.resolve() for p in s.paths} == paths),
                next((s for s in candidates if paths & {p.resolve() for p in s.paths}), None))


def credits(reports: Iterable[SourceReport]) -> list[tuple[str, str, str]]:
    """Return ``(producer, data date, source kinds)`` to credit, one per producer and date."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in reports:
        kinds = out.setdefault((r.producer or UNKNOWN_PRODUCER, r.data_date), [])
        if r.kind not in kinds:
            kinds.append(r.kind)
    return [(producer, date, ", ".join(kinds)) for (producer, date), kinds in out.items()]


def _names(report: SourceReport) -> str:
    return ", ".join(Path(p).name for p in report.paths[:3]) or report.kind


def _producer(report: SourceReport, layers: Mapping[str, pd.DataFrame | None],
              territory: Territory) -> str | None:
    kind, fmt = report.kind, report.format
    if kind == "parcelles":
        return {"etalab": "DGFiP / Etalab (cadastre)",
                "bdparcellaire": "IGN, DGFiP (BD PARCELLAIRE)",
                "edigeo": "DGFiP (plan cadastral informatisé)"}.get(fmt)
    if kind == "friches":
        if fmt == "cartofriches":
            return "Cerema (Cartofriches)"
        named = _most_frequent(_column(layers.get("friches"), "source_nom"))
        return named or ("Cerema" if fmt == "cnig_csv" else None)
    if kind == "zonage":
        return (_authorities(_column(layers.get("zonage"), "idurba"), territory)
                or "Géoportail de l'Urbanisme")
    if kind == "etablissements":
        if fmt == "sirene" or (fmt == "auto" and any(_tabular(p) for p in report.paths)):
            return "INSEE (Sirene)"
    if kind == "proprietaires" and fmt == "personnes_morales":
        return "DGFiP (fichiers des parcelles des personnes morales)"
    if kind == "mnt":
        name = " ".join(Path(p).name.lower() for p in report.paths).replace("_", "")
        for product in ("RGE ALTI", "BD ALTI"):
            if product.lower().replace(" ", "") in name.replace("-", ""):
                return f"IGN ({product})"
    return None


def _tabular(path: Path) -> bool:
    # As the establishments reader decides: a table (CSV, Parquet…) is a Sirene file.
    name = Path(path).name.lower()
    return name.endswith((".csv", ".txt", ".gz", ".zip", ".bz2", ".xz", ".parquet")) and \
        not name.endswith((".geojson.gz", ".json.gz"))


def _column(frame: pd.DataFrame | None, name: str) -> pd.Series:
    if frame is None or name not in frame.columns:
        return pd.Series([], dtype=object)
    return frame[name]


def _most_frequent(values: pd.Series) -> str | None:
    """Return the most frequent names of a column (at most :data:`MAX_PRODUCERS`)."""
    names = values.dropna().astype(str).str.strip()
    counts = names[names != ""].value_counts(sort=True)
    if not len(counts):
        return None
    # Ties in the order of the names: the same text whatever the reading order.
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = [name for name, _ in ordered[:MAX_PRODUCERS]]
    more = len(ordered) - len(shown)
    return ", ".join(shown) + (f" et {more} autre(s)" if more else "")


#: ``idurba`` of the CNIG standards: ``<INSEE or SIREN>_<type>_<AAAAMMJJ>`` (2017),
#: ``DU_<INSEE or SIREN>_…`` (partition of the 2022 standard).
_IDURBA = re.compile(r"^(?:DU_)?(?P<code>\d{9}|(?:\d{2}|2A|2B)\d{3})_(?P<type>[A-Za-z]+)"
                     r"(?:_(?P<date>\d{8}))?")


def _authorities(idurba: pd.Series, territory: Territory) -> str | None:
    """Return the authorities of the planning documents named by their ``idurba``."""
    names = []
    for value in sorted(set(idurba.dropna().astype(str).str.strip())):
        match = _IDURBA.match(value)
        if not match:
            continue
        code, doc = match["code"], match["type"].upper().replace("PLUI", "PLUi")
        if len(code) == 9:
            who = (f"{territory.epci_nom} (SIREN {code})" if code == territory.epci_siren
                   and territory.epci_nom else f"EPCI SIREN {code}")
        else:
            commune = territory.options.noms_communes.get(code)
            who = f"Commune de {commune} ({code})" if commune else f"Commune {code}"
        text = f"{who}, {doc}"
        if text not in names:
            names.append(text)
    if not names:
        return None
    shown = names[:MAX_PRODUCERS]
    more = len(names) - len(shown)
    return " ; ".join(shown) + (f" et {more} autre(s)" if more else "") + \
        " (via le Géoportail de l'Urbanisme)"


def _fallback_date(report: SourceReport, layers: Mapping[str, pd.DataFrame | None]) -> None:
    """Date of the data when the file has no date field: approval, metadata, file date."""
    if report.kind == "etablissements":
        latest = latest_date(_column(layers.get("etablissements"), "date_maj"))
        if latest:
            report.data_date = latest
            report.data_date_origin = _ORIGIN_FIELD.format(field="date_maj",
                                                           file=_names(report))
            return
    if report.kind == "zonage":
        dates = [m["date"] for v in _column(layers.get("zonage"), "idurba").dropna().astype(str)
                 if (m := _IDURBA.match(v.strip())) and m["date"]]
        latest = latest_date(pd.Series(dates, dtype=object))
        if latest:
            report.data_date, report.data_date_origin = latest, _ORIGIN_IDURBA
            return
    found = [(d, p) for p in report.paths if (d := _gpkg_last_change(Path(p), report.layer))]
    if found:
        date, path = max(found)
        report.data_date = date
        report.data_date_origin = _ORIGIN_GPKG.format(file=path.name)
        return
    stamps = []
    for p in report.paths:
        try:
            stamps.append((dt.datetime.fromtimestamp(Path(p).stat().st_mtime).date(), Path(p)))
        except OSError:
            continue
    if stamps:
        day, path = max(stamps)
        report.data_date = day.isoformat()
        report.data_date_origin = _ORIGIN_MTIME.format(file=path.name)


def _gpkg_last_change(path: Path, layer: str | None) -> str | None:
    """``last_change`` of a GeoPackage's layer (its only or first feature layer)."""
    if path.suffix.lower() != ".gpkg":
        return None
    try:
        # immutable: no lock and no -wal/-shm file written beside the source (a GeoPackage
        # in WAL mode would get them), which may sit in a read-only folder.
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            rows = con.execute("SELECT table_name, last_change FROM gpkg_contents "
                               "WHERE data_type IN ('features', 'attributes', "
                               "'2d-gridded-coverage') ORDER BY table_name").fetchall()
    except sqlite3.Error:
        return None
    changes = dict(rows)
    value = changes.get(layer) if layer in changes else (rows[0][1] if rows else None)
    return latest_date(pd.Series([value], dtype=object)) if value else None
