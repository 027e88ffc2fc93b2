"""Readers of the analysis inputs: DEM, constraints, railways, substations, owners.

Same signature as the other readers, ``(source, *, crs, base) -> result``:

- ``mnt``: a GeoTIFF or an ESRI ASCII grid (several tiles are mosaicked), read with
  rasterio into a :class:`RasterResult` in the territory CRS; nodata cells become
  NaN; a raster without CRS takes the ``crs`` key of the source or is refused;
- ``contraintes``: polygons (flood zones, protected areas…), one source per layer;
- ``voies_ferrees``: lines; ``postes_electriques``: points (polygons are reduced to
  a point on their surface);
- ``proprietaires``: the DGFiP open file « parcelles des personnes morales » (CSV
  ``;``, latin-1 or UTF-8, one row per owner right) or any table keyed by IDU.
  Natural persons are never named: only rows recognised as legal entities keep a
  name.

:data:`EXTRA_READERS` maps each source kind to its reader (used by ``validate``).
"""

from __future__ import annotations

import csv
import logging
import re
import unicodedata
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS

from observatoire.config import Source, Territory
from observatoire.errors import CRSError, GeometryError, SchemaError, SourceError, where
from observatoire.readers.crs import CRS_BOUNDS, to_territory_crs
from observatoire.readers.fields import map_fields, text
from observatoire.readers.gdal import check_file, layer_is_empty, pick_layer, read_vector
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.layers import read_simple, stable_sort
from observatoire.readers.lineage import ReadResult, SourceReport, new_report, relative_name
from observatoire.readers.mairies import read_mairies
from observatoire.readers.tiles import BBox, bbox_in_file_crs, clip_to_bbox
from observatoire.schema import LINEAGE, Field, LayerSchema, conform

log = logging.getLogger(__name__)

CONTRAINTES = LayerSchema(
    "contraintes",
    "MultiPolygon",
    (
        Field("contrainte_nom", "str", True, "Nom de la contrainte (fichier de territoire)"),
        Field("contrainte_type", "str", True, "Type : inondation, nature, patrimoine…"),
        Field("contrainte_stricte", "bool", True, "Une parcelle à l'intérieur est exclue"),
        Field("libelle", "str", False, "Libellé de la zone dans la source"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Contraintes réglementaires déclarées par le territoire",
)
VOIES_FERREES = LayerSchema(
    "voies_ferrees",
    "MultiLineString",
    (
        Field("nature", "str", False, "Nature du tronçon"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Voies ferrées",
)
POSTES_ELECTRIQUES = LayerSchema(
    "postes_electriques",
    "Point",
    (
        Field("nom", "str", False, "Nom du poste"),
        Field("tension", "str", False, "Tension"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Postes électriques",
)
CONTRAINTES_FIELDS = {"libelle": ["libelle", "nom", "zone", "codezone", "typezone", "NOM",
                                  "nom_site", "NOM_SITE"]}
VOIES_FERREES_FIELDS = {"nature": ["nature", "NATURE", "railway"]}
POSTES_FIELDS = {"nom": ["nom", "name", "NOM", "toponyme"],
                 "tension": ["tension", "voltage", "TENSION"]}

#: Owner-table columns: the DGFiP file (names normalised: no accent, no parenthesis,
#: lower case) and common names of other tables.
DGFIP_COLUMNS = {
    "departement": ["departement"],
    "commune": ["code commune"],
    "prefixe": ["prefixe"],
    "section": ["section"],
    "numero": ["n plan", "no plan", "numero plan", "n de plan"],
    "siren": ["n siren", "no siren", "siren"],
    "groupe": ["groupe personne", "groupe de personne"],
    "forme": ["forme juridique abregee"],
    "nom": ["denomination"],
    "droit": ["code droit"],
}
#: Rights held by an owner in the DGFiP file (propriétaire, nu-propriétaire, bailleur à
#: construction, foncier, bailleur à réhabilitation); managers, occupants, usufructuaries
#: and lessees are not owners.
OWNER_RIGHTS = {"P", "N", "B", "F", "V"}
#: DGFiP « groupe de personne » (the suffix A marks Alsace-Moselle agricultural funds).
GROUPES = {
    "0": "personne morale non remarquable", "1": "État", "2": "région", "3": "département",
    "4": "commune", "5": "office HLM", "6": "société d'économie mixte",
    "7": "copropriété", "8": "associés", "9": "établissement public",
}
TABLE_FIELDS = {
    "idu": ["idu", "id_parcelle", "idpar", "code_parcelle", "parcelle", "id_par"],
    "proprietaire_cle": ["proprietaire_id", "id_proprietaire", "compte", "compte_communal",
                         "dnupro", "idprocpte"],
    "proprietaire_type": ["proprietaire_type", "type_proprietaire", "type"],
    "proprietaire_nom": ["proprietaire_nom", "denomination", "raison_sociale", "nom"],
    "proprietaire_siren": ["proprietaire_siren", "siren"],
    "proprietaire_forme": ["proprietaire_forme", "forme_juridique"],
}
OWNER_COLUMNS = ["idu", "proprietaire_cle", "proprietaire_type", "proprietaire_nom",
                 "proprietaire_siren", "proprietaire_forme", "proprietaire_groupe", LINEAGE]
_IDU = re.compile(r"^(\d{2}|2A|2B)\d{3}[0-9A-Z]{3}[0-9A-Z]{2}\d{4}$")
_SIREN = re.compile(r"^\d{9}$")


@dataclass
class RasterResult:
    """A raster read into memory, north-up, in the territory CRS.

    Attributes
    ----------
    array
        Values (float32), NaN where the source had no data.
    transform
        Affine transform of the array.
    crs
        The territory CRS.
    nodata
        The source's nodata value (already replaced by NaN in ``array``).
    report
        How the source was read.
    """

    array: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None
    report: SourceReport

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the raster."""
        rows, cols = self.array.shape
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


# --------------------------------------------------------------------------- DEM


def _raster_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".asc", ".grd", ".txt"):
        return "ascii"
    return "geotiff"


def read_mnt(source: Source, *, crs: str, base: Path | None = None,
             bounds: tuple[float, float, float, float] | None = None) -> RasterResult:
    """Read a DEM (GeoTIFF or ESRI ASCII grid; several files are mosaicked).

    Parameters
    ----------
    source
        The ``mnt`` source.
    crs
        The territory CRS.
    base
        Folder of the territory file (unused: paths are already resolved).
    bounds
        Read only this window (xmin, ymin, xmax, ymax, in the territory CRS), plus
        one cell of margin so that the slope is exact up to the window's edge.

    Returns
    -------
    RasterResult
        Elevations in the territory CRS, NaN for nodata.

    Raises
    ------
    SourceError
        The file cannot be read by GDAL.
    CRSError
        The raster declares no CRS and the source gives none, or its coordinates
        cannot belong to its CRS.
    """
    import rasterio
    import rasterio.merge
    from rasterio.errors import RasterioIOError
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    fmt = source.format if source.format != "auto" else _raster_format(source.path)
    report = new_report(source.kind, source.paths, fmt, source.layer)
    datasets = []
    try:
        for path in source.paths:
            try:
                datasets.append(rasterio.open(path))
            except RasterioIOError as exc:
                raise SourceError(
                    f"{path} : raster illisible ({str(exc).splitlines()[0][:200]}) ; indiquez "
                    f"un GeoTIFF ou une grille ASCII ESRI (.asc) complète") from None
        src_crs = _raster_crs(datasets, source)
        report.crs_in = _crs_label(src_crs)
        for ds, path in zip(datasets, source.paths, strict=True):
            _check_raster_bounds(ds, src_crs, path)
            if ds.count < 1:
                raise SourceError(f"{path} : raster sans bande ; indiquez un MNT")
            if ds.transform.b != 0 or ds.transform.d != 0:
                raise SourceError(f"{path} : raster tourné (non orienté nord) ; "
                                  f"réorientez-le (gdalwarp) avant de l'utiliser")
        nodata = datasets[0].nodata
        target = CRS.from_user_input(crs)
        window_src = None
        if bounds is not None:
            window_src = _to_crs_bounds(bounds, target, src_crs, margin=_cell(datasets[0]) * 2)
            _check_covers(datasets, window_src, source, bounds)
        if len(datasets) == 1 and window_src is None:
            ds = datasets[0]
            data = ds.read(1, masked=True)
            transform = ds.transform
        else:
            with warnings.catch_warnings():
                # rasterio 1.4 multiplies Affine objects with ``*`` (affine 3 deprecates it).
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                merged, transform = rasterio.merge.merge(datasets, bounds=window_src,
                                                         masked=True, nodata=nodata)
            data = merged[0]
    finally:
        for ds in datasets:
            ds.close()
    array = np.ma.filled(np.ma.masked_invalid(data).astype("float32"), np.nan)
    report.features_read = int(array.size)
    if src_crs.to_epsg(min_confidence=70) != target.to_epsg():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            dst_transform, width, height = calculate_default_transform(
                src_crs, target, array.shape[1], array.shape[0],
                *rasterio.transform.array_bounds(array.shape[0], array.shape[1], transform))
            out = np.full((height, width), np.nan, dtype="float32")
            reproject(array, out, src_transform=transform, src_crs=src_crs,
                      dst_transform=dst_transform, dst_crs=target, src_nodata=np.nan,
                      dst_nodata=np.nan, resampling=Resampling.bilinear)
        array, transform = out, dst_transform
        report.count("raster reprojeté dans le CRS du territoire", 1)
    valid = int(np.isfinite(array).sum())
    report.features_kept = valid
    report.count("cellules sans donnée (nodata)", int(array.size - valid))
    if valid == 0:
        raise SourceError(f"{source.path} : aucune cellule valide dans le MNT (tout est nodata) ; "
                          f"vérifiez le fichier et son emprise")
    return RasterResult(array=array, transform=transform, crs=crs,
                        nodata=float(nodata) if nodata is not None else None, report=report)


def _check_covers(datasets: list[Any], window: tuple[float, float, float, float],
                  source: Source, bounds: tuple[float, float, float, float]) -> None:
    """Refuse a DEM none of whose files meets the parcels' box (``window``, file CRS)."""
    for ds in datasets:
        b = ds.bounds
        if b.left < window[2] and b.right > window[0] and b.bottom < window[3] \
                and b.top > window[1]:
            return
    b = datasets[0].bounds
    raise SourceError(
        f"{source.path} : le MNT ne couvre pas les parcelles du territoire (emprise du MNT "
        f"{b.left:.0f}, {b.bottom:.0f}, {b.right:.0f}, {b.top:.0f} ; parcelles {bounds[0]:.0f}, "
        f"{bounds[1]:.0f}, {bounds[2]:.0f}, {bounds[3]:.0f}) ; indiquez les dalles du MNT qui "
        f"couvrent les communes du territoire, ou vérifiez son système de coordonnées "
        f"(clé « {source.key or 'sources.mnt'}.crs »)")


def _raster_crs(datasets: list[Any], source: Source) -> CRS:
    crs = datasets[0].crs
    if crs is None or not crs.to_wkt():
        if source.crs is None:
            raise CRSError(
                f"{source.path} : le raster ne déclare aucun système de coordonnées (pas de "
                f".prj ?) ; déclarez-le avec la clé « {source.key or 'sources.mnt'}.crs » du "
                f"fichier de territoire (ex. crs = \"EPSG:2154\")")
        return CRS.from_user_input(source.crs)
    return CRS.from_user_input(crs.to_wkt())


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else crs.name


def _cell(ds: Any) -> float:
    return max(abs(ds.transform.a), abs(ds.transform.e))


def _check_raster_bounds(ds: Any, crs: CRS, path: Path) -> None:
    epsg = crs.to_epsg(min_confidence=70)
    limits = CRS_BOUNDS.get(epsg) if epsg else None
    if limits is None:
        return
    b = ds.bounds
    if b.left < limits[0] or b.bottom < limits[1] or b.right > limits[2] or b.top > limits[3]:
        raise CRSError(
            f"{path} : emprise du raster ({b.left:.6g}, {b.bottom:.6g}, {b.right:.6g}, "
            f"{b.top:.6g}) incompatible avec EPSG:{epsg} ; vérifiez le système de coordonnées "
            f"déclaré (clé « crs » de la source)")


def _to_crs_bounds(bounds: tuple[float, float, float, float], src: CRS, dst: CRS, *,
                   margin: float) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    if src.to_epsg(min_confidence=70) == dst.to_epsg(min_confidence=70):
        out = bounds
    else:
        out = transform_bounds(src, dst, *bounds)
    return out[0] - margin, out[1] - margin, out[2] + margin, out[3] + margin


# --------------------------------------------------------------------------- vectors


def read_contrainte(source: Source, *, crs: str, base: Path | None = None,
                    bbox: BBox | None = None) -> ReadResult:
    """Read one constraint layer (polygons) with its name, kind and strictness.

    Parameters
    ----------
    source
        The constraint source (``[[sources.contraintes]]``).
    crs
        The territory CRS.
    base
        Folder against which lineage names are written.
    bbox
        Only the zones intersecting this box (territory CRS).

    Returns
    -------
    ReadResult
        ``contrainte_nom``, ``contrainte_type``, ``contrainte_stricte``, ``libelle``.
    """
    frame, report = read_simple(source, CONTRAINTES, CONTRAINTES_FIELDS, crs=crs, base=base,
                                bbox=bbox)
    frame["contrainte_nom"] = source.name or source.key
    frame["contrainte_type"] = source.constraint_type or "autre"
    frame["contrainte_stricte"] = bool(source.strict)
    if "libelle" in frame:
        frame["libelle"] = text(frame["libelle"])
    frame = stable_sort(frame, [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, CONTRAINTES), report)


def read_voies_ferrees(source: Source, *, crs: str, base: Path | None = None,
                       bbox: BBox | None = None) -> ReadResult:
    """Read railway lines into ``voies_ferrees``.

    ``bbox`` (territory CRS): only the sections intersecting it.
    """
    frame, report = read_simple(source, VOIES_FERREES, VOIES_FERREES_FIELDS, crs=crs, base=base,
                                bbox=bbox)
    frame = stable_sort(frame, [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, VOIES_FERREES), report)


def read_postes_electriques(source: Source, *, crs: str, base: Path | None = None,
                            bbox: BBox | None = None) -> ReadResult:
    """Read electrical substations (points, or polygons reduced to a point on their surface).

    ``bbox`` (territory CRS): only the substations whose point lies in it.
    """
    report = new_report(source.kind, source.paths, source.format, source.layer)
    frames = []
    for path in source.paths:
        layer = pick_layer(path, source.layer)
        report.layer = layer
        file_bbox = (bbox_in_file_crs(path, layer, bbox, crs=crs, declared=source.crs)
                     if bbox is not None else None)
        raw = read_vector(path, layer, encoding=source.encoding, bbox=file_bbox)
        if not isinstance(raw, gpd.GeoDataFrame):
            raise GeometryError(f"{where(path, layer)} : couche sans géométrie ; indiquez une "
                                f"couche de points ou de polygones (clé « couche »)")
        report.features_read += len(raw)
        if len(raw) == 0 and (bbox is None or layer_is_empty(path, layer)):
            raise SourceError(f"{where(path, layer)} : couche vide ; vérifiez le fichier")
        raw = to_territory_crs(raw, target=crs, declared=source.crs, path=path, layer=layer,
                               report=report)
        g = np.asarray(raw.geometry.array, dtype=object)
        surfaces = shapely.get_dimensions(g) == 2
        if surfaces.any():
            g = g.copy()
            g[surfaces] = shapely.point_on_surface(shapely.make_valid(g[surfaces]))
            report.count("postes surfaciques réduits à un point", int(surfaces.sum()))
        raw = raw.set_geometry(gpd.GeoSeries(g, index=raw.index, crs=raw.crs))
        raw = clean_geometries(raw, geometry_type="Point", report=report, path=path,
                               layer=layer)
        frame = map_fields(clip_to_bbox(raw, bbox), POSTES_FIELDS, source.fields, path=path,
                           layer=layer)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = stable_sort(gpd.GeoDataFrame(frame, geometry="geometry", crs=crs), [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, POSTES_ELECTRIQUES), report)


# --------------------------------------------------------------------------- owners


def normalise_name(name: str) -> str:
    """Column name without accents, parentheses or punctuation, lower case.

    ``N° SIREN (Propriétaire(s) parcelle)`` → ``n siren``.
    """
    head = str(name).split("(")[0]
    norm = unicodedata.normalize("NFKD", head).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", norm).strip()


def _read_table(path: Path, source: Source) -> pd.DataFrame:
    """Read a CSV/TXT (separator sniffed, UTF-8 then latin-1), Parquet or any GDAL table."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise SourceError(f"{path} : fichier Parquet illisible ({exc}) ; "
                              f"téléchargez-le à nouveau") from None
        return frame.astype(object).where(frame.notna(), None).astype(str).where(
            frame.notna(), None)
    if suffix in (".csv", ".txt", ".tsv"):
        encodings = [source.encoding] if source.encoding else ["utf-8-sig", "latin-1"]
        for enc in encodings:
            try:
                with path.open(encoding=enc, newline="") as f:
                    head = f.readline()
                sep = max([";", ",", "\t", "|"], key=head.count)
                return pd.read_csv(path, sep=sep, dtype=str, encoding=enc,
                                   keep_default_na=False, na_values=[""],
                                   quoting=csv.QUOTE_MINIMAL)
            except UnicodeDecodeError:
                continue
            except (pd.errors.ParserError, csv.Error) as exc:
                raise SourceError(f"{path} : CSV illisible ({str(exc)[:200]}) ; vérifiez le "
                                  f"séparateur et les guillemets") from None
        raise SourceError(f"{path} : encodage non reconnu ; indiquez-le avec la clé "
                          f"« {source.key}.encodage » (ex. \"latin-1\")")
    layer = pick_layer(path, source.layer)
    frame = read_vector(path, layer, encoding=source.encoding, read_geometry=False)
    return pd.DataFrame(frame).astype(object).where(frame.notna(), None)


def _is_dgfip(columns: list[str]) -> bool:
    names = {normalise_name(c) for c in columns}
    return {"section", "denomination"} <= names and any(n in names for n in DGFIP_COLUMNS["numero"])


def read_proprietaires(source: Source, *, crs: str, base: Path | None = None) -> ReadResult:
    """Read an owner table keyed by IDU.

    Parameters
    ----------
    source
        The ``proprietaires`` source: format ``personnes_morales`` (the DGFiP file),
        ``table`` (any table with an IDU column; map fields with ``champs``) or
        ``auto``.
    crs, base
        As the other readers (the table has no geometry).

    Returns
    -------
    ReadResult
        ``frame`` is a table (no geometry), one row per (parcel, owner):
        ``idu``, ``proprietaire_cle`` (opaque owner key), ``proprietaire_type``
        (``personne morale`` / ``personne physique`` / ``inconnu``),
        ``proprietaire_nom`` and ``proprietaire_siren`` (legal entities only),
        ``proprietaire_forme``, ``proprietaire_groupe``.

    Raises
    ------
    SchemaError
        A column needed to build the IDU is missing.
    """
    report = new_report(source.kind, source.paths, source.format, source.layer)
    frames = []
    fmt = source.format
    for path in source.paths:
        check_file(path)
        raw = _read_table(path, source)
        report.features_read += len(raw)
        this = fmt if fmt != "auto" else ("personnes_morales" if _is_dgfip(list(raw.columns))
                                          else "table")
        report.format = this
        if this == "personnes_morales":
            frame = _dgfip_owners(raw, source, path, report)
        else:
            frame = _table_owners(raw, source, path, report)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = frame.drop_duplicates(["idu", "proprietaire_cle"]).sort_values(
        ["idu", "proprietaire_cle"], kind="stable").reset_index(drop=True)
    report.features_kept = len(frame)
    return ReadResult(frame[OWNER_COLUMNS], report)  # type: ignore[arg-type]


def _find_columns(raw: pd.DataFrame, wanted: Mapping[str, list[str]],
                  overrides: Mapping[str, str], path: Path) -> dict[str, str]:
    by_norm: dict[str, str] = {}
    for col in raw.columns:
        by_norm.setdefault(normalise_name(col), col)
    found: dict[str, str] = {}
    for canon, src in overrides.items():
        if src not in raw.columns:
            raise SchemaError(
                f"{where(path, None, src)} : colonne absente (déclarée dans « champs.{canon} ») ; "
                f"colonnes : {', '.join(map(str, raw.columns[:30]))}")
        found[canon] = src
    for canon, names in wanted.items():
        if canon in found:
            continue
        for n in names:
            if n in by_norm:
                found[canon] = by_norm[n]
                break
    return found


def _dgfip_owners(raw: pd.DataFrame, source: Source, path: Path, report: SourceReport
                  ) -> pd.DataFrame:
    cols = _find_columns(raw, DGFIP_COLUMNS, source.fields, path)
    for need in ("departement", "commune", "section", "numero", "nom"):
        if need not in cols:
            raise SchemaError(
                f"{where(path, None, need)} : colonne introuvable dans le fichier des parcelles "
                f"des personnes morales (cherché : {', '.join(DGFIP_COLUMNS[need])}) ; "
                f"indiquez-la avec « {source.key}.champs.{need} = \"NOM DE LA COLONNE\" »")
    s = {k: raw[v].astype(object).where(raw[v].notna(), "").astype(str).str.strip()
         for k, v in cols.items()}
    dep = s["departement"].str.zfill(2)
    commune = s["commune"]
    insee = dep + pd.Series([c.zfill(5 - len(d)) for d, c in zip(dep, commune, strict=True)],
                            index=raw.index, dtype=object)
    prefixe = s.get("prefixe", pd.Series("", index=raw.index)).replace("", "000").str.zfill(3)
    section = s["section"].str.upper().str.zfill(2)
    numero = s["numero"].str.zfill(4)
    idu = insee + prefixe + section + numero
    keep = idu.str.match(_IDU) & s["section"].ne("") & s["numero"].str.strip("0").ne("")
    report.count("lignes sans identifiant de parcelle valide écartées", int((~keep).sum()))
    if "droit" in s:
        owner = s["droit"].str.upper().isin(OWNER_RIGHTS) | (s["droit"] == "")
        report.count("droits autres que propriétaire (gérant, usufruitier…) écartés",
                     int((keep & ~owner).sum()))
        keep &= owner
    siren = s.get("siren", pd.Series("", index=raw.index)).str.replace(" ", "")
    valid_siren = siren.str.match(_SIREN)
    nom = s["nom"].replace("", None)
    groupe = s.get("groupe", pd.Series("", index=raw.index)).str.upper().str.rstrip("A")
    frame = pd.DataFrame({
        "idu": idu,
        # Entities without SIREN (DGFiP gives them a pseudo-number starting with U) are
        # keyed by name.
        "proprietaire_cle": ("siren:" + siren).where(valid_siren, "nom:" + nom.fillna("")
                                                     .str.upper()),
        "proprietaire_type": "personne morale",
        "proprietaire_nom": nom,
        "proprietaire_siren": siren.where(valid_siren, None),
        "proprietaire_forme": s.get("forme", pd.Series("", index=raw.index)).replace("", None),
        "proprietaire_groupe": groupe.map(GROUPES),
    })[keep]
    empty_key = frame["proprietaire_cle"].eq("nom:")
    report.count("lignes sans SIREN ni dénomination écartées", int(empty_key.sum()))
    return frame[~empty_key].astype(object).where(frame[~empty_key].notna(), None)


def _owner_type(values: pd.Series) -> pd.Series:
    v = values.astype(object).where(values.notna(), "").astype(str).map(normalise_name)
    out = pd.Series("inconnu", index=values.index, dtype=object)
    out[v.str.contains("moral") | v.isin(["pm", "m"])] = "personne morale"
    out[v.str.contains("physique") | v.isin(["pp", "p"])] = "personne physique"
    return out


def _table_owners(raw: pd.DataFrame, source: Source, path: Path, report: SourceReport
                  ) -> pd.DataFrame:
    cols = _find_columns(raw, {k: [normalise_name(n) for n in v]
                               for k, v in TABLE_FIELDS.items()}, source.fields, path)
    if "idu" not in cols:
        raise SchemaError(
            f"{where(path, None, 'idu')} : colonne d'identifiant de parcelle introuvable "
            f"(cherché : {', '.join(TABLE_FIELDS['idu'])}) ; indiquez-la avec "
            f"« {source.key}.champs.idu = \"NOM DE LA COLONNE\" »")
    n = len(raw)
    empty = pd.Series([None] * n, index=raw.index, dtype=object)

    def col(name: str) -> pd.Series:
        if name not in cols:
            return empty
        c = raw[cols[name]].astype(object)
        c = c.where(c.notna(), None).map(lambda v: None if v is None else str(v).strip() or None)
        return c

    idu = col("idu").fillna("").str.upper().str.replace(" ", "")
    keep = idu.str.match(_IDU)
    report.count("lignes sans identifiant de parcelle valide écartées", int((~keep).sum()))
    siren = col("proprietaire_siren").fillna("").str.replace(" ", "")
    valid_siren = siren.str.match(_SIREN)
    kind = _owner_type(col("proprietaire_type"))
    # Without a declared type, a valid SIREN means a legal entity; nothing else is assumed.
    kind = kind.where(~((kind == "inconnu") & valid_siren), "personne morale")
    legal = kind == "personne morale"
    nom = col("proprietaire_nom")
    key = col("proprietaire_cle")
    key = key.where(key.notna(), ("siren:" + siren).where(valid_siren, None))
    key = key.where(key.notna(), ("nom:" + nom.fillna("").str.upper()).where(
        legal & nom.notna(), None))
    frame = pd.DataFrame({
        "idu": idu,
        "proprietaire_cle": key,
        "proprietaire_type": kind,
        # Natural persons are never named.
        "proprietaire_nom": nom.where(legal, None),
        "proprietaire_siren": siren.where(valid_siren & legal, None),
        "proprietaire_forme": col("proprietaire_forme").where(legal, None),
        "proprietaire_groupe": None,
    })[keep]
    return frame.astype(object).where(frame.notna(), None)


# --------------------------------------------------------------------------- all


#: Source kind → reader, for ``validate`` and the build.
EXTRA_READERS: dict[str, Callable[..., Any]] = {
    "mnt": read_mnt,
    "contraintes": read_contrainte,
    "voies_ferrees": read_voies_ferrees,
    "postes_electriques": read_postes_electriques,
    "proprietaires": read_proprietaires,
    # Read for the mutabilité (observatoire.mutabilite), checked here by validate.
    "mairies": read_mairies,
    "chefs_lieux": read_mairies,
}


@dataclass
class ExtraSources:
    """The analysis inputs of a territory, as read.

    Attributes
    ----------
    mnt, voies_ferrees, postes_electriques, proprietaires
        Results of the readers, ``None`` for a source not configured.
    contraintes
        ``(source, result)`` of every constraint layer, in file order.
    """

    mnt: RasterResult | None = None
    contraintes: list[tuple[Source, ReadResult]] = field(default_factory=list)
    voies_ferrees: ReadResult | None = None
    postes_electriques: ReadResult | None = None
    proprietaires: ReadResult | None = None

    def reports(self) -> list[SourceReport]:
        """Return the reports of every source read, for the ``sources`` table."""
        out = [r.report for r in (self.mnt, self.voies_ferrees, self.postes_electriques,
                                  self.proprietaires) if r is not None]
        return out + [r.report for _, r in self.contraintes]

    def available(self) -> set[str]:
        """Kinds of the sources read."""
        kinds = {k for k in ("mnt", "voies_ferrees", "postes_electriques", "proprietaires")
                 if getattr(self, k) is not None}
        return kinds | ({"contraintes"} if self.contraintes else set())


def read_extra_sources(territory: Territory, *,
                       bounds: tuple[float, float, float, float] | None = None
                       ) -> ExtraSources:
    """Read every analysis input the territory configures.

    Parameters
    ----------
    territory
        The loaded territory file.
    bounds
        Extent of the parcels (territory CRS): the DEM is read over it only.

    Returns
    -------
    ExtraSources
        The results; sources not configured are ``None`` (or an empty list).
    """
    out = ExtraSources()
    if (src := territory.source("mnt")) is not None:
        log.info("lecture du MNT (%s)", ", ".join(p.name for p in src.paths))
        out.mnt = read_extra_source(src, territory, bounds=bounds)
    for src in territory.constraints:
        log.info("lecture de la contrainte « %s »", src.name)
        out.contraintes.append((src, read_extra_source(src, territory, bounds=bounds)))
    for kind in ("voies_ferrees", "postes_electriques", "proprietaires"):
        if (src := territory.source(kind)) is not None:
            log.info("lecture de %s (%s)", kind, ", ".join(p.name for p in src.paths))
            setattr(out, kind, read_extra_source(src, territory, bounds=bounds))
    return out


def read_extra_source(source: Source, territory: Territory, *,
                      bounds: tuple[float, float, float, float] | None = None) -> Any:
    """Read one analysis input as the build does, and count what serves the territory.

    The build and ``validate`` both read through here.

    Parameters
    ----------
    source
        A source of a kind of :data:`EXTRA_READERS`.
    territory
        The loaded territory file.
    bounds
        Box of the territory's parcels: the DEM is read over it (and refused when it
        does not meet it); the constraint zones meeting it, the railways and
        substations within 5 km of it and the owner rows of the territory's
        communes are counted in ``report.features_in_territory``. ``None``: the
        whole source, nothing counted.

    Returns
    -------
    RasterResult or ReadResult
        As the source's reader.
    """
    kw: dict[str, Any] = {"crs": territory.crs, "base": territory.path.parent}
    if source.kind == "mnt":
        return read_mnt(source, bounds=bounds, **kw)
    result = EXTRA_READERS[source.kind](source, **kw)
    if bounds is None:
        return result
    report = result.report
    if source.kind == "proprietaires":
        insee = result.frame["idu"].astype(str).str[:5]
        report.features_in_territory = int(insee.isin(territory.communes).sum())
    else:
        from observatoire.ingest import context_extent, count_meeting

        area = shapely.box(*bounds) if source.kind == "contraintes" else context_extent(bounds)
        report.features_in_territory = count_meeting(result.frame, area)
    return result


__all__ = ["EXTRA_READERS", "ExtraSources", "RasterResult", "normalise_name",
           "read_contrainte", "read_extra_source", "read_extra_sources", "read_mnt",
           "read_postes_electriques", "read_proprietaires", "read_voies_ferrees"]
