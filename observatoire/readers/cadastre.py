"""Cadastral parcels: Etalab GeoJSON (.json/.json.gz), BD PARCELLAIRE / PCI Express, EDIGEO.

Whatever the source, every parcel gets the canonical 14-character IDU:
INSEE (5) + préfixe (3, ``000`` by default) + section (2, zero-padded: Etalab's
``A`` is ``0A``) + numéro (4, zero-padded).
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.config import Source
from observatoire.errors import SchemaError, SourceError, where
from observatoire.readers.common import (
    ReadResult,
    SourceReport,
    clean_geometries,
    map_fields,
    new_report,
    pick_layer,
    read_vector,
    relative_name,
    text,
    to_territory_crs,
)
from observatoire.schema import LINEAGE, PARCELLES, conform

log = logging.getLogger(__name__)

ETALAB_FIELDS = {
    "code_insee": ["commune"],
    "prefixe": ["prefixe"],
    "section": ["section"],
    "numero": ["numero"],
    "contenance": ["contenance"],
    "idu": ["id"],
}
BDPARCELLAIRE_FIELDS = {
    "code_insee": ["DEPCOM", "code_insee", "insee"],
    "code_dep": ["CODE_DEP"],
    "code_com": ["CODE_COM"],
    "prefixe": ["COM_ABS", "prefixe"],
    "section": ["SECTION"],
    "numero": ["NUMERO"],
    "contenance": ["CONTENANCE", "SUPF"],
    "idu": ["IDU"],
}
EDIGEO_FIELDS = {"idu12": ["IDU"], "contenance": ["SUPF"]}
_SECTION = re.compile(r"^[0-9A-Z]{1,2}$")


def format_idu(code_insee: pd.Series, prefixe: pd.Series, section: pd.Series,
               numero: pd.Series) -> pd.DataFrame:
    """Build the canonical IDU and its padded parts.

    Parameters
    ----------
    code_insee
        5-character commune codes.
    prefixe
        Section prefixes (``None`` → ``000``), zero-padded to 3.
    section
        Sections, upper-cased and zero-padded to 2 (``A`` → ``0A``).
    numero
        Parcel numbers, zero-padded to 4 (``22`` → ``0022``).

    Returns
    -------
    pandas.DataFrame
        Columns ``idu``, ``code_insee``, ``prefixe``, ``section``, ``numero``; a part
        that cannot be formatted leaves ``idu`` empty.
    """
    insee = text(code_insee).str.upper()
    pre = text(prefixe).fillna("000").str.zfill(3)
    sec = text(section).str.upper().str.zfill(2)
    num = text(numero).str.zfill(4)
    idu = insee + pre + sec + num
    ok = (insee.str.fullmatch(r"(\d{2}|2A|2B)\d{3}") & pre.str.fullmatch(r"\d{3}")
          & sec.str.fullmatch(r"[0-9A-Z]{2}") & num.str.fullmatch(r"\d{4}")).fillna(False)
    return pd.DataFrame({
        "idu": idu.where(ok, None),
        "code_insee": insee,
        "prefixe": pre,
        "section": sec,
        "numero": num,
    })


def detect_format(path: Path) -> str:
    """Guess the cadastre format from the file name and its layers."""
    name = path.name.lower()
    if name.endswith((".tar.bz2", ".thf", ".tbz2")):
        return "edigeo"
    if name.endswith((".json", ".json.gz", ".geojson", ".geojson.gz")):
        return "etalab"
    return "bdparcellaire"


def read_parcelles(source: Source, *, crs: str, base: Path | None = None,
                   communes: tuple[str, ...] = ()) -> ReadResult:
    """Read every file of a cadastre source into the canonical ``parcelles`` layer.

    Parameters
    ----------
    source
        The ``sources.parcelles`` entry (one or several files).
    crs
        The territory's CRS.
    base
        Folder against which lineage names are written.
    communes
        Keep only these communes (all when empty).

    Returns
    -------
    ReadResult
        The parcels, one row per IDU.

    Raises
    ------
    SourceError, SchemaError, CRSError
        With the file, layer and field at fault.
    """
    fmt = source.format if source.format != "auto" else detect_format(source.path)
    report = new_report("parcelles", source.paths, fmt, source.layer)
    frames = []
    for path in source.paths:
        this_fmt = source.format if source.format != "auto" else detect_format(path)
        if this_fmt == "edigeo":
            frame = _read_edigeo(path, source, report, communes=communes)
        else:
            frame = _read_table(path, source, this_fmt, report)
        frame = to_territory_crs(frame, target=crs, declared=source.crs, path=path,
                                 layer=source.layer, report=report)
        frame = clean_geometries(frame, geometry_type="MultiPolygon", report=report, path=path,
                                 layer=source.layer)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    parcels = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    parcels = gpd.GeoDataFrame(parcels, geometry="geometry", crs=crs)
    if communes:
        outside = ~parcels["code_insee"].isin(communes)
        report.count("parcelles hors des communes du territoire écartées", int(outside.sum()))
        parcels = parcels[~outside]
    parcels = _dedupe(parcels, report)
    parcels["surface_m2"] = parcels.geometry.area.round(2)
    parcels = parcels.sort_values("idu", kind="stable").reset_index(drop=True)
    report.features_kept = len(parcels)
    return ReadResult(conform(parcels, PARCELLES), report)


def _read_table(path: Path, source: Source, fmt: str, report: SourceReport) -> gpd.GeoDataFrame:
    if fmt == "etalab" and path.name.lower().endswith(".gz"):
        raw = _read_gzip_geojson(path, source)
    else:
        layer = pick_layer(path, source.layer)
        raw = read_vector(path, layer, encoding=source.encoding)
    report.features_read += len(raw)
    if fmt == "etalab":
        mapping = ETALAB_FIELDS
    elif fmt in ("bdparcellaire", "couche"):
        mapping = BDPARCELLAIRE_FIELDS
    else:
        raise SourceError(f"{path} : format de cadastre inconnu « {fmt} »")
    if len(raw) == 0:
        raise SourceError(
            f"{where(path, source.layer)} : couche vide (aucune parcelle) ; vérifiez le fichier"
        )
    fields = map_fields(raw, mapping, source.fields, path=path, layer=source.layer)
    if "code_insee" not in fields and {"code_dep", "code_com"} <= set(fields.columns):
        fields["code_insee"] = text(fields["code_dep"]).str.zfill(2) + text(
            fields["code_com"]).str.zfill(3)
    if {"section", "numero", "code_insee"} <= set(fields.columns):
        parts = format_idu(fields["code_insee"], fields.get("prefixe", pd.Series(
            None, index=fields.index, dtype=object)), fields["section"], fields["numero"])
    elif "idu" in fields:
        parts = split_idu(fields["idu"])
    else:
        missing = next(c for c in ("code_insee", "section", "numero") if c not in fields)
        raise SchemaError(
            f"{where(path, source.layer, missing)} : champ obligatoire introuvable ; indiquez-le "
            f"avec « champs.{missing} = \"NOM_DU_CHAMP\" » ou fournissez un champ IDU"
        )
    bad = parts["idu"].isna()
    if bad.all():
        row = fields.index[0]
        raise SchemaError(
            f"{where(path, source.layer)} : aucun identifiant de parcelle valide (ex. ligne {row} :"
            f" insee={fields['code_insee'].iloc[0] if 'code_insee' in fields else None!r}) ; "
            f"vérifiez les champs commune, section et numéro"
        )
    report.count("parcelles sans identifiant valide écartées", int(bad.sum()))
    out = parts.copy()
    out["contenance"] = pd.to_numeric(fields.get("contenance"), errors="coerce") \
        if "contenance" in fields else np.nan
    frame = gpd.GeoDataFrame(out, geometry=raw.geometry.values, crs=raw.crs)
    return frame[~bad.to_numpy()]


def split_idu(idu: pd.Series) -> pd.DataFrame:
    """Split 14-character IDUs into their parts (invalid ones give an empty ``idu``)."""
    s = text(idu).str.upper()
    ok = s.str.fullmatch(r"(\d{2}|2A|2B)\d{3}\d{3}[0-9A-Z]{2}\d{4}").fillna(False)
    return pd.DataFrame({
        "idu": s.where(ok, None),
        "code_insee": s.str[:5],
        "prefixe": s.str[5:8],
        "section": s.str[8:10],
        "numero": s.str[10:14],
    })


def _read_gzip_geojson(path: Path, source: Source) -> gpd.GeoDataFrame:
    # GDAL reads .gz through /vsigzip/, but reports a truncated archive vaguely:
    # decompressing first gives a clear message and checks the CRC.
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(
            f"{path} : archive gzip corrompue ou tronquée ({exc}) ; téléchargez-la à nouveau"
        ) from None
    with tempfile.TemporaryDirectory(prefix="observatoire-") as tmp:
        plain = Path(tmp) / path.name[:-3]
        plain.write_bytes(data)
        try:
            return read_vector(plain, source.layer, encoding=source.encoding)
        except SourceError as exc:
            raise SourceError(str(exc).replace(str(plain), str(path))) from None


def _read_edigeo(path: Path, source: Source, report: SourceReport, *,
                 communes: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Read the parcels of one EDIGEO sheet (``.tar.bz2`` as distributed, or a ``.THF``)."""
    with tempfile.TemporaryDirectory(prefix="observatoire-edigeo-") as tmp:
        if path.suffix.upper() == ".THF":
            thf = path
        else:
            thf = _extract_edigeo(path, Path(tmp))
        layer = source.layer or "PARCELLE_id"
        raw = read_vector(thf, layer)
        report.features_read += len(raw)
        if len(raw) == 0:
            raise SourceError(f"{where(path, layer)} : feuille EDIGEO sans parcelle")
        fields = map_fields(raw, EDIGEO_FIELDS, source.fields, path=path, layer=layer,
                            required=["idu12"])
        dep = _edigeo_departement(path, thf, communes)
        idu12 = text(fields["idu12"]).str.upper()
        idu14 = dep + idu12
        parts = split_idu(idu14)
        bad = parts["idu"].isna()
        report.count("parcelles sans identifiant valide écartées", int(bad.sum()))
        parts["contenance"] = pd.to_numeric(fields.get("contenance"), errors="coerce")
        frame = gpd.GeoDataFrame(parts, geometry=raw.geometry.values, crs=raw.crs)
        return frame[~bad.to_numpy()]


def _extract_edigeo(path: Path, dest: Path) -> Path:
    try:
        with tarfile.open(path, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            for m in members:
                # Flatten: sheets sometimes nest a folder; never trust member paths.
                target = dest / Path(m.name).name
                src = tar.extractfile(m)
                if src is None:
                    continue
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise SourceError(
            f"{path} : archive EDIGEO corrompue ou tronquée ({exc}) ; téléchargez-la à nouveau"
        ) from None
    thfs = sorted(dest.glob("*.[Tt][Hh][Ff]"))
    if not thfs:
        raise SourceError(
            f"{path} : aucune fiche .THF dans l'archive ; ce n'est pas une feuille EDIGEO PCI"
        )
    return thfs[0]


def _edigeo_departement(path: Path, thf: Path, communes: tuple[str, ...]) -> str:
    """Département code of an EDIGEO sheet: from its name, else from the territory."""
    m = re.search(r"(\d{2}|2A|2B)(\d{3})[0-9A-Z]{3}[0-9A-Z]{2}\d{2}", path.name.upper())
    if m:
        return m.group(1)
    deps = sorted({c[:2] for c in communes})
    if len(deps) == 1:
        return deps[0]
    raise SourceError(
        f"{path} : impossible de déduire le département de la feuille EDIGEO ; gardez le nom "
        f"distribué (edigeo-DDCCC…) ou ne déclarez qu'un département dans territoire.communes"
    )


def _dedupe(parcels: gpd.GeoDataFrame, report: SourceReport) -> gpd.GeoDataFrame:
    """Keep one feature per IDU: identical duplicates dropped, differing ones reported.

    When two features share an IDU with different geometries (two vintages, two
    overlapping files), the largest is kept, deterministically, and the rest
    counted: the choice does not depend on the order of the input files.
    """
    dup = parcels["idu"].duplicated(keep=False)
    if not dup.any():
        return parcels
    d = parcels[dup].copy()
    d["_wkb"] = d.geometry.normalize().to_wkb()
    d["_area"] = d.geometry.area
    identical = d.duplicated(subset=["idu", "_wkb"], keep="first")
    report.count("parcelles en double identiques fusionnées", int(identical.sum()))
    d = d[~identical]
    d = d.sort_values(["idu", "_area", "_wkb"], ascending=[True, False, True], kind="stable")
    differing = d["idu"].duplicated(keep="first")
    if differing.any():
        report.count("parcelles en double de géométrie différente (la plus grande gardée)",
                     int(differing.sum()))
        log.warning("%d parcelles en double avec des géométries différentes, ex. %s",
                    int(differing.sum()), d.loc[differing, "idu"].iloc[0])
    kept = d[~differing].drop(columns=["_wkb", "_area"])
    return gpd.GeoDataFrame(pd.concat([parcels[~dup], kept]), geometry="geometry",
                            crs=parcels.crs)
