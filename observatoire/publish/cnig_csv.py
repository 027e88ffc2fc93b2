"""The CNIG Sites Économiques export as CSV files, one per class, for a publication on data.gouv.fr.

data.gouv.fr (and schema.data.gouv.fr's validator) check a file published under
the standard against the standard's Table Schemas (``schema.json``), which
describe CSV files. The GeoPackage of :mod:`observatoire.publish.cnig` follows
the standard's QGIS template; this module writes the same rows, read back from
that GeoPackage, as the Table Schemas define them:

- one file per class, ``site_eco.csv``, ``terrain_eco.csv``, ``etablissement.csv``
  and ``pole_eco.csv``, beside the GeoPackage;
- the fields of ``schema.json``, in its order and with its names (``SIRET``,
  ``SIREN``, ``ban-id``, ``bat-id``), a field that the template lacks left empty;
- ``;``-separated, UTF-8 without byte-order mark, a header row, as the standard's
  own examples (``exemple-valide.csv``);
- numbers with a decimal point, dates ``AAAA-MM-JJ``, years ``AAAA``;
- geometries (type ``geojson``: ``site_geomsurf``, ``terr_geomsurf``,
  ``etab_geompoint``) as GeoJSON in WGS84 longitude/latitude (RFC 7946, the
  coordinates data.gouv.fr's previews expect); points of type ``geopoint``
  (``pole_geompoint``, ``site_geompoint``) as « longitude, latitude », as the
  standard's examples write them;
- ``terr_url_cartofriches``, which the template lacks: the friche's page on
  Cartofriches when the terrain's parcels belong to a friche read from a
  Cartofriches file (:func:`cartofriches_urls`).

Each file is read back and validated against its ``schema.json`` (and the PDF's
value lists) before it can be published (:func:`validate_csv_file`).
"""

from __future__ import annotations

import csv
import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from observatoire.config import Territory
from observatoire.errors import SchemaError, SourceError
from observatoire.outputs import StagedFile
from observatoire.publish.cnig_schema import (
    CLASSES,
    GEOMETRY_FIELDS,
    GPKG_TO_SCHEMA,
    cast_cell,
    table_schema,
    validate_columns,
)

log = logging.getLogger(__name__)

#: Page of a friche on Cartofriches (Cerema), by its Cartofriches identifier.
CARTOFRICHES_URL = "https://cartofriches.cerema.fr/cartofriches/?site={site_id}"
#: Identifiers of Cartofriches sites: INSEE code, « _ », a number (``48095_11974``).
CARTOFRICHES_ID = re.compile(r"^(?:\d{5}|2[AB]\d{3})_\d+$")
#: Fields of type ``geopoint`` filled from a point on the layer's geometry, besides the
#: geometry field of ``pole_eco`` (:data:`observatoire.publish.cnig.GEOMETRY_FIELDS`).
GEOPOINT_FIELDS = {"site_eco": "site_geompoint"}
#: Rows read from the GeoPackage, written and validated at once.
CSV_BATCH = 20_000
#: Decimals of WGS84 coordinates (10⁻⁷ degree: about a centimetre).
COORD_DECIMALS = 7


def cartofriches_files(territory: Territory) -> set[str]:
    """Lineage names (column ``source`` of ``friches``) of the territory's Cartofriches files.

    A friches file is a Cartofriches export when the source says so
    (``format = "cartofriches"``) or, with ``format = "auto"``, when it is not a
    CSV (see :func:`observatoire.readers.friches.detect_format`).
    """
    from observatoire.readers.friches import detect_format
    from observatoire.readers.lineage import relative_name

    source = territory.source("friches")
    if source is None:
        return set()
    names = set()
    for path in source.paths:
        fmt = source.format if source.format != "auto" else detect_format(path)
        if fmt == "cartofriches":
            names.add(relative_name(path, territory.path.parent))
    return names


def cartofriches_urls(terrains: pd.DataFrame, parcelles: pd.DataFrame | None,
                      friches: Iterable[pd.DataFrame], *, files: set[str]) -> pd.Series:
    """Return the Cartofriches page of each terrain lying on a Cartofriches friche.

    Parameters
    ----------
    terrains
        Rows of ``terrain_eco`` (``terr_id``, ``terr_refcad``: its parcels, ``|``-separated).
    parcelles
        The parcels (``idu``, ``friche_id``: the friche each one belongs to, as the
        analysis found it), or ``None``.
    friches
        The ``friches`` and ``friches_surfaces`` layers (``site_id``, ``source``).
    files
        Lineage names of the Cartofriches files (:func:`cartofriches_files`).

    Returns
    -------
    pandas.Series
        URL by ``terr_id``, for the terrains on a friche read from a Cartofriches
        file whose identifier is a Cartofriches one. A terrain over several such
        friches takes the one holding most of its parcels (then the smallest
        identifier).
    """
    empty = pd.Series([], dtype=object, index=pd.Index([], dtype=object, name="terr_id"))
    if parcelles is None or "friche_id" not in parcelles or not files or not len(terrains):
        return empty
    sites = pd.concat([pd.DataFrame(f)[["site_id", "source"]] for f in friches
                       if f is not None and {"site_id", "source"} <= set(f.columns)])
    ids = sites["site_id"].astype(str)
    carto = set(ids[sites["source"].isin(files) & ids.str.match(CARTOFRICHES_ID)])
    if not carto:
        return empty
    friche_of = parcelles[["idu", "friche_id"]].dropna().drop_duplicates("idu")
    friche_of = friche_of[friche_of["friche_id"].astype(str).isin(carto)]
    members = pd.DataFrame({"terr_id": terrains["terr_id"].to_numpy(),
                            "idu": terrains["terr_refcad"].fillna("").astype(str).str.split("|")
                            .to_numpy()}).explode("idu")
    hits = members.merge(friche_of, on="idu")
    if not len(hits):
        return empty
    counts = hits.groupby(["terr_id", "friche_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["terr_id", "n", "friche_id"], ascending=[True, False, True]
                              ).drop_duplicates("terr_id")
    return pd.Series([CARTOFRICHES_URL.format(site_id=s) for s in best["friche_id"]],
                     index=pd.Index(best["terr_id"].to_numpy(), name="terr_id"), dtype=object)


def _number(value: float) -> str:
    """Write a number with a decimal point, no exponent, no trailing zero (``0.2501``)."""
    return np.format_float_positional(value, trim="-")


def _geojson(geoms: np.ndarray) -> list[str]:
    """GeoJSON of each geometry, to :data:`COORD_DECIMALS` decimals; ``""`` when none or empty."""
    text = shapely.to_geojson(shapely.set_precision(geoms, 10 ** -COORD_DECIMALS))
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    return ["" if m else t for t, m in zip(text.tolist(), missing.tolist(), strict=True)]


def _geopoint(geom: shapely.Geometry | None) -> str:
    if geom is None or shapely.is_empty(geom):
        return ""
    return f"{_number(round(geom.x, 6))}, {_number(round(geom.y, 6))}"


def csv_rows(frame: gpd.GeoDataFrame, layer: str, *,
             urls: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Turn rows of a layer of the CNIG template into the cells of its CSV file.

    Parameters
    ----------
    frame
        Rows of ``site_eco``, ``terrain_eco``, ``etablissement`` or ``pole_eco``, as
        the GeoPackage holds them (the template's field names, a geometry with a CRS).
    layer
        The class.
    urls
        ``terr_url_cartofriches`` by ``terr_id`` (``terrain_eco`` only).

    Returns
    -------
    pandas.DataFrame
        One text cell per field of ``schema.json``, in its order; ``""`` for a
        missing value.
    """
    names = [f["name"] for f in table_schema(layer)["fields"]]
    cells = _csv_columns(frame, layer, urls=urls)
    return pd.DataFrame(dict(zip(names, cells, strict=True)), index=frame.index, columns=names)


def _csv_columns(frame: gpd.GeoDataFrame, layer: str, *,
                 urls: Mapping[str, str] | None = None) -> list[list[str]]:
    """Return the cells of :func:`csv_rows`, column by column (no frame made of them)."""
    fields = table_schema(layer)["fields"]
    data = pd.DataFrame(frame.drop(columns=[frame.geometry.name])).rename(columns=GPKG_TO_SCHEMA)
    geoms = frame.geometry
    points = geoms.representative_point() if len(geoms) else geoms
    if frame.crs is not None:
        geoms, points = geoms.to_crs(4326), points.to_crs(4326)
    out: list[list[str]] = []
    for field in fields:
        name, ftype = field["name"], field.get("type", "string")
        if name == GEOMETRY_FIELDS.get(layer) and ftype == "geojson":
            out.append(_geojson(np.asarray(geoms.values)))
            continue
        if name == GEOMETRY_FIELDS.get(layer) or name == GEOPOINT_FIELDS.get(layer):
            out.append([_geopoint(g) for g in points.values])
            continue
        if name == "terr_url_cartofriches" and urls is not None and "terr_id" in data:
            values = data["terr_id"].map(urls)
        elif name in data:
            values = data[name]
        else:
            values = pd.Series(None, index=data.index, dtype=object)
        if ftype in ("number", "integer"):
            nums = pd.to_numeric(values, errors="coerce").astype("float64")
            out.append(["" if np.isnan(v) else _number(v) for v in nums.to_numpy().tolist()])
        else:
            text = values.astype(object).where(values.notna(), None)
            out.append(["" if v is None else str(v) for v in text.tolist()])
    return out


def _read_batches(gpkg: Path, layer: str, batch: int) -> Iterator[gpd.GeoDataFrame]:
    start = 0
    while True:
        with warnings.catch_warnings():
            # GDAL warns about the staged file's extension (.tmp), harmlessly.
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pyogrio.read_dataframe(gpkg, layer=layer, skip_features=start,
                                           max_features=batch)
        if len(frame) or start == 0:
            yield frame
        start += len(frame)
        if len(frame) < batch:
            return


def write_csv_layer(gpkg: str | Path, layer: str, path: str | Path, *,
                    urls: Mapping[str, str] | None = None, batch: int = CSV_BATCH) -> int:
    """Write one class of a CNIG GeoPackage as the CSV file of its Table Schema.

    Parameters
    ----------
    gpkg
        A GeoPackage following the standard's template (the CNIG export).
    layer
        The class (``site_eco``…).
    path
        The CSV file to write (replaced).
    urls
        ``terr_url_cartofriches`` by ``terr_id``.
    batch
        Rows read and written at once.

    Returns
    -------
    int
        The number of rows written.
    """
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow([fd["name"] for fd in table_schema(layer)["fields"]])
        for frame in _read_batches(Path(gpkg), layer, batch):
            writer.writerows(zip(*_csv_columns(frame, layer, urls=urls), strict=True))
            rows += len(frame)
    return rows


def validate_csv_file(path: str | Path, layer: str, *, batch: int = CSV_BATCH) -> int:
    """Validate a CSV file of a class against its ``schema.json``, by batches of rows.

    The header must hold the fields of ``schema.json``, in its order; each row is
    checked by :func:`observatoire.publish.cnig_schema.validate_columns` (types, required
    values, patterns, lists, dates, GeoJSON, geopoints, unique identifiers).

    Parameters
    ----------
    path
        The CSV file (``;``-separated, UTF-8).
    layer
        Its class.
    batch
        Rows checked at once.

    Returns
    -------
    int
        The number of rows validated.

    Raises
    ------
    SchemaError
        When the header or a row does not conform (file, row and field named).
    SourceError
        When the file cannot be read.
    """
    path = Path(path)
    ts = table_schema(layer)
    fields = ts["fields"]
    names = [f["name"] for f in fields]
    missing = set(ts.get("missingValues", [""]))
    seen: dict[Any, int] = {}
    count = 0
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=";")
            header = next(reader, [])
            if header != names:
                raise SchemaError(
                    f"{path}, couche « {layer} » : en-tête différent de celui du schéma CNIG ; "
                    f"attendu : {';'.join(names)}"
                )
            lines: list[list[str]] = []
            for line in reader:
                if len(line) != len(names):
                    raise SchemaError(
                        f"{path}, couche « {layer} », ligne {reader.line_num} : {len(line)} "
                        f"champ(s) au lieu de {len(names)}"
                    )
                lines.append(line)
                if len(lines) == batch:
                    validate_columns(_cast_columns(lines, fields, missing), len(lines), layer,
                                     origin=str(path), first_row=count + 2, seen=seen)
                    count += len(lines)
                    lines = []
            validate_columns(_cast_columns(lines, fields, missing), len(lines), layer,
                             origin=str(path), first_row=count + 2, seen=seen)
            count += len(lines)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path} : CSV illisible ({exc})") from None
    return count


def _cast_columns(lines: list[list[str]], fields: list[dict[str, Any]], missing: set[str]
                  ) -> dict[str, list[Any]]:
    """Cast the cells of CSV lines to their types (:func:`cast_cell`), by field.

    A cell is cast once per distinct text of its column, but for GeoJSON, parsed
    for each cell (a mapping is mutable: each row has its own).
    """
    columns = []
    for field, texts in zip(fields, zip(*lines, strict=True) if lines else [()] * len(fields),
                            strict=True):
        if field.get("type") == "geojson":
            columns.append([cast_cell(text, field, missing) for text in texts])
        else:
            once = {text: cast_cell(text, field, missing) for text in set(texts)}
            columns.append([once[text] for text in texts])
    return dict(zip([f["name"] for f in fields], columns, strict=True))


def stage_cnig_csv(gpkg: str | Path, *, output_dir: str | Path,
                   parcelles: pd.DataFrame | None = None,
                   friches: Iterable[pd.DataFrame] = (),
                   cartofriches: set[str] | None = None) -> list[StagedFile]:
    """Write the CSV files of the CNIG export to staged files, validated.

    Parameters
    ----------
    gpkg
        The CNIG GeoPackage (the staged file of
        :func:`observatoire.publish.cnig.stage_cnig_export`, once validated).
    output_dir
        The territory's output folder; the files are ``<output_dir>/cnig/<classe>.csv``.
    parcelles, friches, cartofriches
        For ``terr_url_cartofriches`` (see :func:`cartofriches_urls`): the parcels
        with their ``friche_id``, the ``friches`` and ``friches_surfaces`` layers,
        the lineage names of the Cartofriches files.

    Returns
    -------
    list of StagedFile
        ``site_eco.csv``, ``terrain_eco.csv``, ``etablissement.csv``, ``pole_eco.csv``.

    Raises
    ------
    SchemaError
        A file does not conform to its ``schema.json``; nothing is left behind.
    """
    gpkg = Path(gpkg)
    folder = Path(output_dir) / "cnig"
    staged: list[StagedFile] = []
    counts = {}
    try:
        urls: pd.Series | None = None
        if parcelles is not None and cartofriches:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                terrains = pyogrio.read_dataframe(gpkg, layer="terrain_eco", read_geometry=False,
                                                  columns=["terr_id", "terr_refcad"])
            urls = cartofriches_urls(terrains, parcelles, friches, files=cartofriches)
        for layer in CLASSES:
            out = StagedFile(folder / f"{layer}.csv")
            staged.append(out)
            write_csv_layer(gpkg, layer, out.tmp,
                            urls=urls if layer == "terrain_eco" else None)
            counts[layer] = validate_csv_file(out.tmp, layer)
    except BaseException:
        for s in staged:
            s.discard()
        raise
    n_urls = 0 if urls is None else len(urls)
    log.info("export CNIG en CSV (schémas Table Schema) : %s ; %d terrain(s) liés à Cartofriches",
             ", ".join(f"{k} {v}" for k, v in counts.items()), n_urls)
    return staged
