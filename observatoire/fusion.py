"""Merge the observatories of several départements into one GeoPackage.

France is built one département at a time (each its own territory file and
``observatoire build``, possibly on a Dask cluster); :func:`merge_geopackages`
then appends every layer of these ``observatoire.gpkg`` files into one file:

- layers and attribute tables are streamed in batches of :data:`BATCH_ROWS`
  rows (read by ranges of ``fid``, written with
  :class:`~observatoire.geopackage.GeoPackageWriter`), so memory is bounded by
  the batch, never by a layer;
- context layers (buildings, roads, zoning, friches, ZAE…) are read by each
  build with a 5 km margin, so neighbouring départements hold the same rows:
  a row identical to a row of an earlier input — geometry included, compared
  by :func:`~observatoire.geopackage.row_hashes` — is dropped (8 bytes per row
  kept in memory for the layer being merged);
- the ZAE inventory of a commune is computed by the build of the territory
  holding it: the ZAE rows of a commune built by another input (a ZAE in the
  margin, counted without its parcels) are dropped in favour of that input's;
  likewise the friches, whose fields (``dans_territoire``, ``appariement``…)
  depend on the territory that read them;
- per-commune layers (:data:`PER_COMMUNE_LAYERS`) are appended without
  comparison, after checking that no commune was built by two inputs;
- ``sources`` and ``execution`` rows are appended as they are, and the merge is
  recorded in a table ``fusion``;
- the QGIS styles (``layer_styles``) of the first input styling a layer are
  copied; the QGIS project (``qgis_projects``) is **not** copied, since its
  layers point at the file name of the département's GeoPackage.

The destination is written to a temporary file and replaces the previous one
only when complete: a merge that fails leaves it untouched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio

from observatoire import __version__
from observatoire.errors import BuildError, ConfigError, CRSError, SchemaError, SourceError
from observatoire.geopackage import GeoPackageWriter, combine_checksum, row_hashes
from observatoire.readers.lineage import checksum_files

log = logging.getLogger(__name__)

#: Rows read and written at once (bounds the memory of the merge).
BATCH_ROWS = 50_000

#: Layers made of the territory's own communes: never read with a margin, never duplicated.
PER_COMMUNE_LAYERS = frozenset({"parcelles", "unites_foncieres", "gisements", "zae_unites"})

#: Layers computed per territory, by the column naming the commune of each row.
COMMUNE_COLUMNS = {"zae": "comm_insee", "friches": "comm_insee",
                   "friches_surfaces": "comm_insee"}

#: Tables copied otherwise (styles) or not at all (QGIS project), or written by the merge.
_NOT_STREAMED = frozenset({"layer_styles", "qgis_projects"})

FUSION_TABLE = "fusion"
FUSION_DESCRIPTION = ("Fusion d'observatoires : date, fichiers fusionnés et leur empreinte "
                      "SHA-256, entités lues, gardées et retirées par couche")

Progress = Callable[[str], None]

_NULLABLE: dict[pa.DataType, object] = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
}

_NULL_DTYPES = {"bool": "boolean", "int8": "Int8", "int16": "Int16", "int32": "Int32",
                "int64": "Int64", "float32": "Float32", "float64": "Float64"}


@dataclass
class MergeResult:
    """What a merge produced.

    Attributes
    ----------
    gpkg
        The merged GeoPackage.
    inputs
        The GeoPackages merged, in order.
    layer_counts
        Rows of each layer of the output (``fusion`` included).
    duplicates
        Rows dropped because an earlier input held the same row, by layer.
    other_territory
        Rows (ZAE, friches) dropped because their commune was built by another input,
        by layer.
    checksums
        Content checksum of each layer of the output, as
        :func:`~observatoire.geopackage.layer_checksum` gives for the layer read back.
    """

    gpkg: Path
    inputs: list[Path]
    layer_counts: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    other_territory: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass
class _Layer:
    """A layer of one input: its columns (attribute types by name), geometry and CRS."""

    name: str
    dtypes: dict[str, str]
    geometry_type: str | None
    crs: str | None
    fid_column: str
    description: str


@dataclass
class _Input:
    """An observatory to merge."""

    path: Path
    layers: dict[str, _Layer]
    territoire: str
    communes: frozenset[str]
    styled: frozenset[str]


@dataclass
class _Tally:
    """Rows of one layer read, kept and dropped from one input."""

    read: int = 0
    kept: int = 0
    duplicates: int = 0
    other_territory: int = 0


def merge_geopackages(inputs: Sequence[str | Path], dest: str | Path, *,
                      progress: Progress | None = None,
                      batch_rows: int = BATCH_ROWS) -> MergeResult:
    """Merge observatory GeoPackages (one per département) into one.

    Every layer and attribute table of the inputs is appended into the layer of
    the same name of ``dest``, layers in the order of their first appearance,
    rows in the order of the inputs. A row identical to one of an earlier input
    is dropped, except in :data:`PER_COMMUNE_LAYERS`; in the ZAE layer, the rows
    of a commune built by another input are dropped (that input computed the
    inventory of the commune). ``sources`` and ``execution`` rows are appended
    as they are; the merge is recorded in the table ``fusion``. Styles are those
    of the first input styling each layer; the QGIS project is not copied (its
    layers point at the département's file name). Each layer's
    ``gpkg_contents.description`` is the first input's, its closing stamp naming
    the département's territory replaced by a pointer to the ``fusion`` table.

    Parameters
    ----------
    inputs
        GeoPackages made by ``observatoire build``.
    dest
        The GeoPackage to produce; replaced only when the merge succeeds.
    progress
        Called with a French message at each layer.
    batch_rows
        Rows read and written at once.

    Returns
    -------
    MergeResult
        Layer counts, rows dropped and content checksums of the output.

    Raises
    ------
    SourceError
        An input is missing, unreadable, not a GeoPackage made by
        ``observatoire build``, or is the destination.
    SchemaError
        A layer has another geometry type, other columns, or values of another
        type in one input.
    CRSError
        A layer has another CRS in one input.
    ConfigError
        A commune was built by two inputs.
    BuildError
        The output cannot be written; ``dest`` is left as it was.
    """
    dest = Path(dest)
    say = progress or (lambda msg: log.info(msg))
    if not inputs:
        raise SourceError("fusion : aucun GeoPackage à fusionner ; donnez les fichiers "
                          "observatoire.gpkg des départements")
    if batch_rows < 1:
        raise ValueError(f"batch_rows doit être positif (reçu {batch_rows})")
    paths = [Path(p) for p in inputs]
    _check_distinct(paths, dest)
    say(f"Lecture de {len(paths)} observatoire(s)…")
    sources = [_inspect(p) for p in paths]
    _check_communes(sources)
    order = _layer_order(sources)
    plans = {name: _plan(name, sources) for name in order}

    say("Empreintes SHA-256 des fichiers fusionnés…")
    sha = [checksum_files([s.path]) for s in sources]
    owner = {c: i for i, s in enumerate(sources) for c in s.communes}
    result = MergeResult(gpkg=dest, inputs=paths)
    tallies: dict[str, list[_Tally]] = {}
    with GeoPackageWriter(dest) as writer:
        sums: dict[str, _Sum] = {}
        for name in order:
            tallies[name], sums[name] = _merge_layer(
                name, plans[name], sources, writer, owner=owner, batch_rows=batch_rows)
            kept = sum(t.kept for t in tallies[name])
            dup = sum(t.duplicates for t in tallies[name])
            other = sum(t.other_territory for t in tallies[name])
            result.duplicates[name] = dup
            result.other_territory[name] = other
            result.checksums[name] = sums[name].checksum()
            extra = f", {dup} doublon(s) retiré(s)" if dup else ""
            what = "ZAE" if name == "zae" else "entité(s)"
            extra += f", {other} {what} d'un autre territoire retirée(s)" if other else ""
            say(f"Couche « {name} » : {kept} entités{extra}")

        table = _fusion_rows(sources, sha, tallies, result.checksums)
        sums.setdefault(FUSION_TABLE, _Sum(columns=[str(c) for c in table.columns]))
        writer.write(FUSION_TABLE, table, description=FUSION_DESCRIPTION, append=True)
        sums[FUSION_TABLE].add(table)
        result.checksums[FUSION_TABLE] = sums[FUSION_TABLE].checksum()
        result.layer_counts = {name: total.rows for name, total in sums.items()}

        say("Styles QGIS et publication (le projet QGIS de chaque département, qui désigne "
            "son propre fichier, n'est pas repris)…")
        writer.commit(finalize=lambda con: _finalize(con, sources, result.layer_counts))
    log.info("Projet QGIS des départements non copié : il désigne le fichier de chaque "
             "département ; les styles des couches sont conservés (ouvrez %s dans QGIS)",
             dest.name)
    return result


# --------------------------------------------------------------------------- inputs


def _check_distinct(paths: list[Path], dest: Path) -> None:
    """Refuse a file given twice, or the destination given as an input."""
    seen: dict[tuple[int, int], Path] = {}
    for p in paths:
        try:
            st = p.stat()
        except OSError as exc:
            raise SourceError(f"{p} : fichier illisible ({exc.strerror}) ; vérifiez le chemin "
                              f"de l'observatoire à fusionner") from None
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise SourceError(f"{p} : donné deux fois (aussi comme {seen[key]}) ; "
                              f"chaque observatoire ne se fusionne qu'une fois")
        seen[key] = p
        if dest.exists() and os.path.samefile(p, dest):
            raise SourceError(f"{p} : c'est aussi la destination de la fusion ; choisissez "
                              f"un autre fichier de sortie")


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _inspect(path: Path) -> _Input:
    """Read what the merge needs of an input; refuse what ``observatoire build`` did not make."""
    not_ours = (f"{path} : ce n'est pas un observatoire produit par « observatoire build »")
    fix = "donnez le fichier observatoire.gpkg du dossier de sortie de chaque département"
    try:
        listed = [str(n) for n, _ in pyogrio.list_layers(path)]
        driver = pyogrio.read_info(path, layer=listed[0])["driver"] if listed else None
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise SourceError(f"{not_ours} (fichier illisible : {exc}) ; {fix}") from None
    if not listed:
        raise SourceError(f"{not_ours} (aucune couche) ; {fix}")
    if driver != "GPKG":
        raise SourceError(f"{not_ours} (format {driver or 'inconnu'}, pas un GeoPackage) ; "
                          f"{fix}")
    if "execution" not in listed:
        raise SourceError(f"{not_ours} (table « execution » absente) ; {fix}")
    with contextlib.closing(_ro(path)) as con:
        descriptions = dict(con.execute("SELECT table_name, coalesce(description, '') "
                                        "FROM gpkg_contents"))
        styled: frozenset[str] = frozenset()
        if "layer_styles" in listed:
            styled = frozenset(r[0] for r in con.execute(
                "SELECT DISTINCT f_table_name FROM layer_styles"))
    layers = {}
    for name in listed:
        if name in _NOT_STREAMED:
            continue
        info = pyogrio.read_info(path, layer=name)
        layers[name] = _Layer(
            name=name,
            dtypes={str(f): str(t) for f, t in zip(info["fields"], info["dtypes"], strict=True)},
            geometry_type=info["geometry_type"], crs=info["crs"],
            fid_column=info["fid_column"] or "fid",
            description=_merged_description(descriptions.get(name, "")))
    runs = pyogrio.read_dataframe(path, layer="execution", use_arrow=True)
    names = runs["territoire"].dropna().astype(str) if "territoire" in runs else []
    communes = {c.strip() for text in runs.get("communes", pd.Series(dtype=object)).dropna()
                for c in str(text).split(",") if c.strip()}
    return _Input(path=path, layers=layers, territoire=", ".join(dict.fromkeys(names)),
                  communes=frozenset(communes), styled=styled)


def _merged_description(text: str) -> str:
    """Return a layer's description without the stamp naming the département's territory."""
    # The stamp is appended by observatoire.publish.qgis.write_lineage at the build.
    stamp = text.find(" Produit par l'observatoire")
    if stamp < 0:
        return text
    return (f"{text[:stamp]} Fusion d'observatoires par l'observatoire {__version__} : "
            f"territoires et fichiers dans la table « {FUSION_TABLE} ».")


def _check_communes(sources: list[_Input]) -> None:
    """Refuse a commune built by two inputs: its parcels would be counted twice."""
    first: dict[str, _Input] = {}
    for s in sources:
        for c in sorted(s.communes):
            if c in first:
                raise ConfigError(
                    f"commune {c} construite dans {first[c].path} ({first[c].territoire}) et "
                    f"dans {s.path} ({s.territoire}) : ses parcelles seraient comptées deux "
                    f"fois ; retirez-la de l'un des deux fichiers de territoire et "
                    f"reconstruisez ce département")
            first[c] = s


def _layer_order(sources: list[_Input]) -> list[str]:
    return list(dict.fromkeys(name for s in sources for name in s.layers))


@dataclass
class _Plan:
    """How to merge one layer: reference columns and types, where to find it."""

    reference: _Layer
    holders: list[int]
    dtypes: dict[str, str]
    #: Columns to give the merged type, by input: True when all NULL there.
    recast: dict[int, dict[str, bool]]


def _plan(name: str, sources: list[_Input]) -> _Plan:
    """Check a layer has the same geometry, CRS and columns in every input holding it."""
    holders = [i for i, s in enumerate(sources) if name in s.layers]
    ref_i = holders[0]
    ref = sources[ref_i].layers[name]
    fix = ("construisez tous les départements avec la même version de l'observatoire, les "
           "mêmes profils et le même fichier d'options")
    for i in holders[1:]:
        lay, path = sources[i].layers[name], sources[i].path
        if lay.geometry_type != ref.geometry_type:
            raise SchemaError(
                f"{path}, couche « {name} » : géométries {lay.geometry_type or 'absentes'} au "
                f"lieu de {ref.geometry_type or 'aucune'} dans {sources[ref_i].path} ; {fix}")
        if lay.crs != ref.crs:
            raise CRSError(
                f"{path}, couche « {name} » : système de coordonnées {lay.crs} au lieu de "
                f"{ref.crs} dans {sources[ref_i].path} ; fusionnez à part les départements de "
                f"chaque système (EPSG:2154 en métropole, celui de chaque DROM outre-mer)")
        missing = [c for c in ref.dtypes if c not in lay.dtypes]
        extra = [c for c in lay.dtypes if c not in ref.dtypes]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"colonnes manquantes : {', '.join(missing)}")
            if extra:
                parts.append(f"colonnes en trop : {', '.join(extra)}")
            raise SchemaError(f"{path}, couche « {name} » : {' ; '.join(parts)} (par rapport à "
                              f"{sources[ref_i].path}) ; {fix}")
    dtypes = dict(ref.dtypes)
    recast: dict[int, dict[str, bool]] = {}
    for col in ref.dtypes:
        kinds = {i: sources[i].layers[name].dtypes[col] for i in holders}
        if len(set(kinds.values())) == 1:
            continue
        # pandas guesses the type of a column from its values: a column NULL everywhere in
        # a département, or integers with a NULL (floats), is typed otherwise there.
        filled = {i: k for i, k in kinds.items() if _has_values(sources[i], name, col)}
        target = next(iter(filled.values()), ref.dtypes[col])
        if len(set(filled.values())) > 1:
            if not all(k.startswith(("int", "uint", "float")) for k in filled.values()):
                first = next(iter(filled))
                other = next(i for i, k in filled.items() if k != filled[first])
                raise SchemaError(
                    f"{sources[other].path}, couche « {name} », champ « {col} » : valeurs de "
                    f"type {filled[other]} au lieu de {filled[first]} dans "
                    f"{sources[first].path} ; {fix}")
            target = "float64"
        dtypes[col] = target
        for i, k in kinds.items():
            if k != target:
                recast.setdefault(i, {})[col] = i not in filled
    return _Plan(reference=ref, holders=holders, dtypes=dtypes, recast=recast)


def _has_values(source: _Input, layer: str, column: str) -> bool:
    with contextlib.closing(_ro(source.path)) as con:
        return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM {_quote(layer)} "
                                f"WHERE {_quote(column)} IS NOT NULL)").fetchone()[0])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --------------------------------------------------------------------------- streaming


@dataclass
class _Sum:
    """Row count and hash sum of a layer written in batches (its checksum)."""

    columns: list[str]
    rows: int = 0
    total: int = 0

    def add(self, frame: pd.DataFrame, hashes: np.ndarray | None = None) -> None:
        h = row_hashes(frame) if hashes is None else hashes
        self.rows += len(frame)
        self.total = (self.total + int(h.sum(dtype=np.uint64))) % 2**64

    def checksum(self) -> str:
        return combine_checksum(self.total, self.rows, self.columns)


def _batches(path: Path, layer: _Layer, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Read a layer by ranges of fid (its primary key): each batch costs its own rows only.

    Integers and booleans are read as pandas nullable types, so a batch with a NULL
    has the types of a batch without (same hashes, same fields when written).
    """
    last: int | None = None
    fid = _quote(layer.fid_column)
    while True:
        frame = pyogrio.read_dataframe(
            path, layer=layer.name, use_arrow=True, fid_as_index=True, max_features=batch_rows,
            where=None if last is None else f"{fid} > {last}",
            arrow_to_pandas_kwargs={"types_mapper": _NULLABLE.get})
        if len(frame) == 0:
            return
        last = int(frame.index.max())
        yield frame.reset_index(drop=True)
        if len(frame) < batch_rows:
            return


def _nullable(dtype: str) -> Any:
    """Return the pandas type holding NULLs of a pyogrio field type (``int64`` → ``Int64``)."""
    if dtype in _NULL_DTYPES:
        return pd.api.types.pandas_dtype(_NULL_DTYPES[dtype])
    if dtype.startswith("datetime64"):
        return pd.api.types.pandas_dtype(dtype)
    return np.dtype(object)


def _null_column(n: int, dtype: str) -> pd.Series:
    return pd.Series(pd.array([None] * n, dtype=_nullable(dtype)))


def _conform(frame: pd.DataFrame, plan: _Plan, index: int) -> pd.DataFrame:
    """Order the columns as the reference input's; give recast columns the merged type."""
    columns = list(plan.reference.dtypes)
    if isinstance(frame, gpd.GeoDataFrame):
        columns.append(frame.geometry.name)
    frame = frame[columns]
    for col, all_null in plan.recast.get(index, {}).items():
        dtype = plan.dtypes[col]
        if all_null:
            frame[col] = _null_column(len(frame), dtype).set_axis(frame.index)
        else:  # integers among floats
            frame[col] = frame[col].astype(_nullable(dtype))
    return frame


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Whether each value is in a sorted array (vectorised binary search)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_values, values).clip(max=len(sorted_values) - 1)
    return sorted_values[pos] == values


def _merge_layer(name: str, plan: _Plan, sources: list[_Input], writer: GeoPackageWriter, *,
                 owner: dict[str, int], batch_rows: int) -> tuple[list[_Tally], _Sum]:
    """Append one layer of every input into the output, dropping repeated rows."""
    ref = plan.reference
    spatial = ref.geometry_type is not None
    dedupe = spatial and name not in PER_COMMUNE_LAYERS
    commune_col = COMMUNE_COLUMNS.get(name)
    seen = np.empty(0, dtype=np.uint64)
    tallies = [_Tally() for _ in sources]
    # The columns as read back: the attributes, then the geometry (named "geometry").
    columns = [*ref.dtypes, *(["geometry"] if spatial else [])]
    total = _Sum(columns=columns)
    for i in plan.holders:
        lay, tally = sources[i].layers[name], tallies[i]
        added: list[np.ndarray] = []
        others = {c for c, j in owner.items() if j != i}
        for batch in _batches(sources[i].path, lay, batch_rows=batch_rows):
            batch = _conform(batch, plan, i)
            tally.read += len(batch)
            hashes = row_hashes(batch)
            keep = np.ones(len(batch), dtype=bool)
            if commune_col and others:
                foreign = batch[commune_col].astype(object).isin(others).to_numpy(dtype=bool)
                tally.other_territory += int(foreign.sum())
                keep &= ~foreign
            if dedupe:
                repeated = keep & _in_sorted(hashes, seen)
                tally.duplicates += int(repeated.sum())
                keep &= ~repeated
            if not keep.all():
                batch, hashes = batch[keep], hashes[keep]
            if dedupe:
                added.append(hashes)
            if len(batch):
                writer.write(name, batch, description=ref.description,
                             geometry_type=ref.geometry_type, append=True)
                total.add(batch, hashes)
                tally.kept += len(batch)
        if added:
            seen = np.union1d(seen, np.concatenate(added))
    if name not in writer.layers:
        empty = _empty(sources[plan.holders[0]].path, ref, plan)
        writer.write(name, empty, description=ref.description, geometry_type=ref.geometry_type,
                     append=True)
    return tallies, total


def _empty(path: Path, ref: _Layer, plan: _Plan) -> pd.DataFrame:
    """Return a layer without rows, with the reference columns and types."""
    frame = pyogrio.read_dataframe(path, layer=ref.name, where="0 = 1")
    for col, dtype in plan.dtypes.items():
        if dtype != ref.dtypes[col]:
            frame[col] = _null_column(0, dtype)
    return frame


# --------------------------------------------------------------------------- record, styles


def _fusion_rows(sources: list[_Input], sha: list[str], tallies: dict[str, list[_Tally]],
                 checksums: dict[str, str]) -> pd.DataFrame:
    """Return the ``fusion`` table: one row per input and layer."""
    date = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    rows = [{
        "date_fusion": date,
        "version": __version__,
        "rang": i + 1,
        "fichier": s.path.as_posix(),
        "sha256": sha[i],
        "territoire": s.territoire,
        "couche": name,
        "entites_lues": tally[i].read,
        "entites_gardees": tally[i].kept,
        "doublons_retires": tally[i].duplicates,
        "zae_autre_territoire": tally[i].other_territory,
        "empreinte_couche": checksums[name],
    } for i, s in enumerate(sources) for name, tally in tallies.items()
        if name in s.layers and name != FUSION_TABLE]
    return pd.DataFrame(rows, columns=[
        "date_fusion", "version", "rang", "fichier", "sha256", "territoire", "couche",
        "entites_lues", "entites_gardees", "doublons_retires", "zae_autre_territoire",
        "empreinte_couche"])


def _finalize(con: sqlite3.Connection, sources: list[_Input], counts: dict[str, int]) -> None:
    """Check the row counts written, copy the styles."""
    written = dict(con.execute("SELECT table_name, feature_count FROM gpkg_ogr_contents"))
    for name, n in counts.items():
        if written.get(name) != n:
            raise BuildError(f"fusion : couche « {name} » écrite avec {written.get(name)} "
                             f"entités au lieu de {n} ; rien n'a été publié")
    _copy_styles(con, sources, set(counts))


def _copy_styles(con: sqlite3.Connection, sources: list[_Input], layers: set[str]) -> None:
    """Copy into ``layer_styles`` the styles of each layer from the first input styling it."""
    done: set[str] = set()
    for s in sources:
        wanted = sorted((s.styled & layers) - done)
        if not wanted:
            continue
        with contextlib.closing(_ro(s.path)) as src:
            if not done:
                _create_styles_table(con, src, s.path)
            cur = src.execute(f"SELECT * FROM layer_styles WHERE f_table_name IN "
                              f"({', '.join('?' * len(wanted))}) ORDER BY id", wanted)
            names = [d[0] for d in cur.description]
            keep = [k for k, c in enumerate(names) if c != "id"]
            columns = ", ".join(_quote(names[k]) for k in keep)
            marks = ", ".join("?" * len(keep))
            con.executemany(f"INSERT INTO layer_styles ({columns}) VALUES ({marks})",
                            ([row[k] for k in keep] for row in cur))
        done.update(wanted)
    if done:
        log.info("Styles QGIS copiés pour %d couche(s)", len(done))


def _create_styles_table(con: sqlite3.Connection, src: sqlite3.Connection, path: Path) -> None:
    """Create ``layer_styles`` as in ``src`` and register it as GDAL does."""
    ddl = src.execute("SELECT sql FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'layer_styles'").fetchone()[0]
    if not ddl.lstrip().upper().startswith("CREATE TABLE"):
        raise SourceError(f"{path} : table « layer_styles » illisible ; reconstruisez ce "
                          f"département")
    con.execute(ddl)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    description = src.execute("SELECT description FROM gpkg_contents "
                              "WHERE table_name = 'layer_styles'").fetchone()
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', ?, ?)",
                (description[0] if description else "Styles QGIS des couches (QML)", now))
    has_ogr = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                          "AND name = 'gpkg_ogr_contents'").fetchone()[0]
    if has_ogr:
        con.execute("INSERT INTO gpkg_ogr_contents (table_name, feature_count) "
                    "VALUES ('layer_styles', 0)")
        for event, op in (("insert", "+"), ("delete", "-")):
            con.execute(
                f'CREATE TRIGGER "trigger_{event}_feature_count_layer_styles" AFTER '
                f'{event.upper()} ON "layer_styles" BEGIN UPDATE gpkg_ogr_contents SET '
                f"feature_count = feature_count {op} 1 WHERE lower(table_name) = "
                f"lower('layer_styles'); END;")
