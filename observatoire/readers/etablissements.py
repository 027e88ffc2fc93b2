"""Establishments (occupants of the land units): the geolocated SIRENE files, or a point layer.

Accepted inputs, alone or together (``chemin`` may list several files):

- the « Base Sirene des entreprises et de leurs établissements » géolocalisée
  (Etalab, one CSV per département, ``geo_siret_25.csv.gz``): the columns of the
  INSEE ``StockEtablissement`` file (``siret``, ``activitePrincipaleEtablissement``,
  ``etatAdministratifEtablissement``, ``dateDebut``…) plus ``longitude``,
  ``latitude``, ``geo_score``, ``geo_type``, ``geo_adresse``, ``geo_id``;
- the INSEE ``StockEtablissement`` file itself (CSV or Parquet), whose
  ``coordonneeLambertAbscisseEtablissement`` / ``coordonneeLambertOrdonneeEtablissement``
  are in the territory's legal projection;
- any point layer (GeoPackage, GeoJSON, shapefile…), e.g. the ``etablissement``
  layer of a CNIG Sites Économiques file, mapped by field name;
- the INSEE ``StockUniteLegale`` file (or an extract of it), recognised by its
  ``categorieJuridiqueUniteLegale`` column: it is joined on the SIREN to give the
  legal name (``denominationUniteLegale``) and the legal category, which tells
  establishments of natural persons (entrepreneurs individuels, category 1xxx)
  apart. The names of natural persons (``nomUniteLegale``, ``prenom…``) are never
  read.

In SIRENE, a closed establishment (``etatAdministratifEtablissement = F``) carries
its closure date in ``dateDebut``, the start of its current (closed) period.
"""

from __future__ import annotations

import csv
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.config import Source
from observatoire.errors import CRSError, SchemaError, SourceError, where
from observatoire.readers.crs import to_territory_crs
from observatoire.readers.fields import map_fields, numbers, text
from observatoire.readers.gdal import (
    check_file,
    ensure_geometry,
    first_line,
    pick_layer,
    read_vector,
)
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.layers import stable_sort
from observatoire.readers.lineage import ReadResult, SourceReport, new_report, relative_name
from observatoire.schema import LINEAGE, Field, LayerSchema, conform

log = logging.getLogger(__name__)

ETABLISSEMENTS = LayerSchema(
    "etablissements",
    "Point",
    (
        Field("siret", "str", True, "Numéro SIRET (14 chiffres)"),
        Field("siren", "str", True, "Numéro SIREN de l'entreprise (9 chiffres)"),
        Field("nom", "str", False, "Enseigne ou dénomination usuelle de l'établissement"),
        Field("raison_sociale", "str", False, "Dénomination de l'unité légale (personnes morales)"),
        Field("categorie_juridique", "str", False, "Catégorie juridique Insee (niveau III)"),
        Field("type_personne", "str", False,
              "personne morale ou personne physique (entrepreneur individuel) ; vide si inconnu"),
        Field("diffusible", "bool", True, "Diffusion publique autorisée (statut Sirene « O »)"),
        Field("naf", "str", False, "Activité principale (code NAF)"),
        Field("naf_libelle", "str", False, "Libellé de l'activité principale"),
        Field("etat", "str", False, "État administratif : A (actif) ou F (fermé)"),
        Field("date_creation", "date", False, "Date de création de l'établissement"),
        Field("date_fermeture", "date", False, "Date de fermeture (établissement fermé)"),
        Field("date_maj", "date", False, "Date de dernière mise à jour dans Sirene"),
        Field("siege", "str", False, "Siège de l'entreprise : oui ou non"),
        Field("tranche_effectif", "str", False, "Tranche d'effectif salarié (code Insee)"),
        Field("annee_effectif", "str", False, "Millésime de la tranche d'effectif"),
        Field("adresse", "str", False, "Adresse"),
        Field("code_insee", "str", False, "Code INSEE de la commune"),
        Field("commune", "str", False, "Nom de la commune"),
        Field("ban_id", "str", False, "Identifiant de l'adresse (Base adresse nationale)"),
        Field("geocodage", "str", False, "Qualité de localisation (liste du standard CNIG)"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Établissements (Sirene géolocalisé ou couche ponctuelle)",
    key="siret",
)

#: Canonical field → source field names (case-insensitive), in order of preference.
ETABLISSEMENTS_FIELDS: dict[str, list[str]] = {
    "siret": ["siret", "etab_siret", "etabsiret"],
    "siren": ["siren", "etab_siren", "etabsiren"],
    "enseigne": ["enseigne1Etablissement", "enseigne", "etab_nom", "etabnom", "nom"],
    "denomination_usuelle": ["denominationUsuelleEtablissement"],
    "raison_sociale": ["denominationUniteLegale", "etab_raison_sociale", "etabraison",
                       "raison_sociale"],
    "categorie_juridique": ["categorieJuridiqueUniteLegale", "etab_nat_juridique", "etabjuridi",
                            "categorie_juridique"],
    "statut_diffusion": ["statutDiffusionEtablissement"],
    "naf": ["activitePrincipaleEtablissement", "etab_activite_code", "etacticode", "naf",
            "code_naf", "ape"],
    "naf_libelle": ["etab_activite_libelle", "etactilib", "libelle_naf", "naf_libelle"],
    "etat": ["etatAdministratifEtablissement", "etab_actif", "etabactif", "etat"],
    "date_creation": ["dateCreationEtablissement", "etab_creation_date", "etcreadate",
                      "date_creation"],
    "date_debut": ["dateDebut"],
    "date_fermeture": ["etab_fermeture_date", "etfermdate", "date_fermeture",
                       "dateFermetureEtablissement"],
    "date_maj": ["dateDernierTraitementEtablissement", "etab_actu_date", "etactudate",
                 "date_maj"],
    "siege": ["etablissementSiege", "etab_siege", "etabsiege", "siege"],
    "tranche_effectif": ["trancheEffectifsEtablissement", "etab_effectif_code", "eteffcode",
                         "tranche_effectif"],
    "annee_effectif": ["anneeEffectifsEtablissement", "etab_effectif_annee", "eteffannee",
                       "annee_effectif"],
    "adresse": ["geo_adresse", "etab_adresse", "etabadress", "adresse"],
    "numero_voie": ["numeroVoieEtablissement"],
    "type_voie": ["typeVoieEtablissement"],
    "libelle_voie": ["libelleVoieEtablissement"],
    "code_postal": ["codePostalEtablissement"],
    "code_insee": ["codeCommuneEtablissement", "comm_insee", "etcominsee", "code_insee",
                   "plg_code_commune"],
    "commune": ["libelleCommuneEtablissement", "comm_nom", "etcomnom", "commune"],
    "ban_id": ["identifiantAdresseEtablissement", "ban_id", "ban-id", "banid", "geo_id"],
    "geo_type": ["geo_type"],
    "geocodage": ["geocodage_qualite", "etgeoquali"],
    "longitude": ["longitude", "x_longitude", "lon"],
    "latitude": ["latitude", "y_latitude", "lat"],
    "x": ["coordonneeLambertAbscisseEtablissement", "x"],
    "y": ["coordonneeLambertOrdonneeEtablissement", "y"],
    "epsg": ["epsg"],
}

#: Columns read from a ``StockUniteLegale`` file (never the names of natural persons).
UNITES_LEGALES_FIELDS: dict[str, list[str]] = {
    "siren": ["siren"],
    "raison_sociale": ["denominationUniteLegale"],
    "categorie_juridique": ["categorieJuridiqueUniteLegale"],
}

#: Values Sirene uses for non-diffusible or missing data.
MISSING = {"", "[ND]", "NA", "NAN", "N/A", "NULL", "NONE"}

#: ``geo_type`` of the Etalab geocoding (addok) → CNIG ``geocodage_qualite``.
GEO_TYPES = {
    "housenumber": "localisation à la plaque adresse",
    "interpolation": "localisation à la plaque adresse",
    "street": "localisation à la rue (sans numéro)",
    "locality": "localisation au lieu-dit",
    "municipality": "localisation à la commune",
}

#: CNIG ``geocodage_qualite`` values (standard, § 3.4), for layers that already carry it.
GEOCODAGE_CNIG = (
    "non localisé", "localisation à la commune", "localisation au lieu-dit",
    "localisation à la rue (sans numéro)", "localisation à la plaque adresse",
    "localisation à la parcelle", "localisation au bâtiment", "inconnu", "autre", "sans objet",
)

_TABULAR = (".csv", ".txt", ".gz", ".zip", ".bz2", ".xz", ".parquet")
#: Sirene CSV files are large: read them by chunks of this many rows.
CHUNK_ROWS = 200_000


def read_etablissements(source: Source, *, crs: str, base: Path | None = None) -> ReadResult:
    """Read establishments into the ``etablissements`` point layer.

    Parameters
    ----------
    source
        The ``etablissements`` source: one or several files (see the module's
        documentation); ``format`` is ``sirene`` (tables with coordinates),
        ``couche`` (a point layer) or ``auto`` (by file extension).
    crs
        The territory's CRS.
    base
        Folder of the territory file (lineage names are relative to it).

    Returns
    -------
    ReadResult
        The canonical ``etablissements`` layer (see :data:`ETABLISSEMENTS`) in
        ``crs``, one row per SIRET, and its source report.

    Raises
    ------
    SourceError
        Unreadable or corrupt file, empty table, no establishment file among the paths.
    SchemaError
        No SIRET column, or no coordinates.
    CRSError
        Coordinates whose CRS cannot be known or contradict it.
    """
    report = new_report(source.kind, source.paths, source.format, source.layer)
    frames: list[gpd.GeoDataFrame] = []
    unites: list[pd.DataFrame] = []
    for path in source.paths:
        tabular = source.format == "sirene" or (
            source.format == "auto" and _is_tabular(path))
        if not tabular:
            frames.append(_read_layer(path, source, crs, base, report))
            continue
        table = _read_table(path, source, report)
        if _is_unites_legales(table):
            unites.append(table)
        else:
            frames.append(_table_to_points(table, path, source, crs, base, report))
    if not frames:
        raise SourceError(
            f"{source.path} : aucun fichier d'établissements (colonne siret) parmi "
            f"« {source.key or 'sources.etablissements'}.chemin » ; un fichier StockUniteLegale "
            f"seul ne suffit pas"
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)
    if unites:
        frame = _join_unites_legales(frame, pd.concat(unites, ignore_index=True), report)
    frame = _finish(frame, report)
    report.features_kept = len(frame)
    return ReadResult(frame, report)


def _is_tabular(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(_TABULAR) and not name.endswith((".geojson.gz", ".json.gz"))


def _is_unites_legales(table: pd.DataFrame) -> bool:
    lower = {c.lower() for c in table.columns}
    return "categoriejuridiqueunitelegale" in lower and "siret" not in lower


def _wanted_columns(source: Source) -> set[str]:
    names = {n.lower() for cands in ETABLISSEMENTS_FIELDS.values() for n in cands}
    names |= {n.lower() for cands in UNITES_LEGALES_FIELDS.values() for n in cands}
    names |= {v.lower() for v in source.fields.values()}
    return names


def _read_table(path: Path, source: Source, report: SourceReport) -> pd.DataFrame:
    """Read a CSV (plain or compressed) or Parquet table as text, keeping known columns only."""
    check_file(path)
    wanted = _wanted_columns(source)
    if path.name.lower().endswith(".parquet"):
        return _read_parquet(path, wanted)
    encoding = source.encoding or "utf-8-sig"
    try:
        header = pd.read_csv(path, nrows=0, sep=",", encoding=encoding, dtype=str)
        sep = ","
        if len(header.columns) == 1 and ";" in str(header.columns[0]):
            sep = ";"
        chunks = pd.read_csv(path, sep=sep, encoding=encoding, dtype=str,
                             keep_default_na=False, quoting=csv.QUOTE_MINIMAL,
                             usecols=lambda c: str(c).strip().lower() in wanted,
                             chunksize=CHUNK_ROWS)
        table = pd.concat(list(chunks), ignore_index=True)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path} : texte illisible en {encoding.removesuffix('-sig')} (octet {exc.start}) ; "
            f"les fichiers Sirene sont en UTF-8 — vérifiez le fichier ou déclarez "
            f"« {source.key or 'sources.etablissements'}.encodage »"
        ) from None
    except pd.errors.EmptyDataError:
        raise SourceError(f"{path} : fichier vide ou sans en-tête ; téléchargez-le à nouveau") \
            from None
    except (pd.errors.ParserError, csv.Error, ValueError, OverflowError, EOFError, OSError,
            zipfile.BadZipFile) as exc:
        raise SourceError(
            f"{path} : tableau illisible ({first_line(exc)}) ; vérifiez qu'il est complet "
            f"(téléchargement interrompu ?) et que le séparateur est « , » ou « ; »"
        ) from None
    table.columns = [str(c).strip() for c in table.columns]
    report.features_read += len(table) if not _is_unites_legales(table) else 0
    return table


def _read_parquet(path: Path, wanted: set[str]) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        cols = [n for n in names if n.lower() in wanted]
        table = pd.read_parquet(path, columns=cols)
    except Exception as exc:  # pyarrow raises several types for one corrupt file
        raise SourceError(
            f"{path} : fichier Parquet illisible ({first_line(exc)}) ; téléchargez-le à nouveau"
        ) from None
    return table.astype(object).where(table.notna(), None).map(
        lambda v: v if v is None or isinstance(v, str) else str(v))


def _table_to_points(table: pd.DataFrame, path: Path, source: Source, crs: str,
                     base: Path | None, report: SourceReport) -> gpd.GeoDataFrame:
    """Turn a Sirene table into points, from longitude/latitude or Lambert x/y."""
    if len(table) == 0:
        raise SourceError(f"{path} : tableau sans aucune ligne ; vérifiez le fichier")
    fields = map_fields(table, ETABLISSEMENTS_FIELDS, source.fields, path=path, layer=None,
                        required=["siret"])
    fields = pd.DataFrame({c: _missing_to_none(fields[c]) for c in fields.columns},
                          index=fields.index)
    n = len(fields)

    def coord(name: str) -> pd.Series:
        if name in fields:
            return numbers(fields[name])
        return pd.Series(np.nan, index=fields.index)

    lon, lat, x, y = coord("longitude"), coord("latitude"), coord("x"), coord("y")
    has_lonlat = int((lon.notna() & lat.notna()).sum())
    has_xy = int((x.notna() & y.notna()).sum())
    if not has_lonlat and not has_xy:
        if {"longitude", "latitude", "x", "y"} & set(fields.columns):
            report.count("établissements sans coordonnées (non géolocalisés) écartés", n)
            log.warning("%s : aucun établissement géolocalisé", path)
            return _empty_points(crs)
        raise SchemaError(
            f"{where(path, None, 'longitude')} : aucune coordonnée (cherché : longitude/latitude, "
            f"coordonneeLambertAbscisseEtablissement/…Ordonnee…, x/y) ; utilisez le fichier "
            f"Sirene géolocalisé ou indiquez les champs avec « champs.longitude » et "
            f"« champs.latitude »"
        )
    if has_lonlat >= has_xy:
        xs, ys = lon, lat
        file_crs = source.crs or "EPSG:4326"
    else:
        xs, ys = x, y
        file_crs = source.crs or _lambert_crs(fields, table.columns, path, crs, source)
    located = xs.notna() & ys.notna()
    report.count("établissements sans coordonnées (non géolocalisés) écartés",
                 int((~located).sum()))
    if "statut_diffusion" in fields:
        hidden = text(fields["statut_diffusion"]).fillna("O").str.upper() != "O"
        report.count("établissements non diffusibles (statut Sirene « P ») lus", int(hidden.sum()))
    fields = fields[located]
    points = gpd.GeoDataFrame(
        fields.drop(columns=[c for c in ("longitude", "latitude", "x", "y", "epsg")
                             if c in fields.columns]),
        geometry=gpd.points_from_xy(xs[located], ys[located]), crs=file_crs)
    points = to_territory_crs(points, target=crs, declared=None, path=path, layer=None,
                              report=report, key=source.key or "sources.etablissements")
    points[LINEAGE] = relative_name(path, base)
    return points


def _lambert_crs(fields: pd.DataFrame, columns: pd.Index, path: Path, crs: str,
                 source: Source) -> str:
    """CRS of x/y columns: the ``epsg`` column, else (Insee columns) the territory's CRS."""
    if "epsg" in fields:
        codes = text(fields["epsg"]).dropna().unique()
        if len(codes) == 1:
            return f"EPSG:{codes[0]}"
        if len(codes) > 1:
            raise CRSError(
                f"{where(path, None, 'epsg')} : plusieurs systèmes de coordonnées "
                f"({', '.join(sorted(codes)[:5])}) ; séparez le fichier par territoire"
            )
    insee = ETABLISSEMENTS_FIELDS["x"][0].lower()
    if "x" not in source.fields and insee in {str(c).lower() for c in columns}:
        # Insee gives coordonneeLambert…Etablissement in the legal projection of the
        # territory (Lambert-93 in metropolitan France, UTM overseas).
        return crs
    raise CRSError(
        f"{where(path, None, 'x')} : système des coordonnées x/y inconnu ; déclarez-le avec "
        f"« {source.key or 'sources.etablissements'}.crs = \"EPSG:2154\" »"
    )


def _read_layer(path: Path, source: Source, crs: str, base: Path | None,
                report: SourceReport) -> gpd.GeoDataFrame:
    layer = pick_layer(path, source.layer, prefer=("etablissement", "etablissements"))
    raw = ensure_geometry(read_vector(path, layer, encoding=source.encoding), path=path,
                          layer=layer)
    report.features_read += len(raw)
    report.layer = layer
    if len(raw) == 0:
        raise SourceError(f"{where(path, layer)} : couche vide ; vérifiez le fichier")
    raw = to_territory_crs(raw, target=crs, declared=source.crs, path=path, layer=layer,
                           report=report, key=source.key or "sources.etablissements")
    raw = clean_geometries(raw, geometry_type="Point", report=report, path=path, layer=layer)
    fields = map_fields(raw, ETABLISSEMENTS_FIELDS, source.fields, path=path, layer=layer,
                        required=["siret"])
    fields = fields.drop(columns=[c for c in ("longitude", "latitude", "x", "y", "epsg")
                                  if c in fields.columns])
    fields[LINEAGE] = relative_name(path, base)
    return gpd.GeoDataFrame(fields, geometry="geometry", crs=crs)


def _missing_to_none(values: pd.Series) -> pd.Series:
    """Sirene's ``[ND]`` (not diffusible) and empty strings become NULL."""
    out = values.astype(object)
    upper = out.map(lambda v: v.strip().upper() if isinstance(v, str) else v)
    return out.where(~upper.isin(MISSING) & out.notna(), None)


def _empty_points(crs: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"siret": pd.Series([], dtype=object)},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _join_unites_legales(frame: gpd.GeoDataFrame, unites: pd.DataFrame,
                         report: SourceReport) -> gpd.GeoDataFrame:
    """Fill the legal name and category from a ``StockUniteLegale`` table, by SIREN."""
    ul = map_fields(unites, UNITES_LEGALES_FIELDS, {}, path=Path("StockUniteLegale"), layer=None,
                    required=["siren", "categorie_juridique"])
    ul = pd.DataFrame({k: text(ul[k]) for k in ul.columns})
    ul = ul.dropna(subset=["siren"]).drop_duplicates("siren", keep="last").set_index("siren")
    siren = _siren(frame)
    out = frame.copy()
    for col in ("raison_sociale", "categorie_juridique"):
        if col not in ul:
            continue
        joined = siren.map(ul[col])
        out[col] = text(out[col]).fillna(joined) if col in out else joined
    report.count("établissements complétés par le fichier des unités légales",
                 int(siren.isin(ul.index).sum()))
    return out


def _siren(frame: pd.DataFrame) -> pd.Series:
    siret = text(frame["siret"]).fillna("")
    siren = text(frame["siren"]) if "siren" in frame else pd.Series(None, index=frame.index)
    return siren.fillna(siret.str[:9]).astype(object)


def _finish(frame: gpd.GeoDataFrame, report: SourceReport) -> gpd.GeoDataFrame:
    """Normalise values (SIRET, state, dates, names) and keep one row per SIRET."""
    crs = frame.crs
    if len(frame) == 0:
        return conform(gpd.GeoDataFrame({c: [] for c in ETABLISSEMENTS.columns},
                                        geometry=gpd.GeoSeries([], crs=crs), crs=crs),
                       ETABLISSEMENTS)
    col = _columns(frame)
    siret = col("siret").str.replace(r"[\s\u00a0.]", "", regex=True)
    ok = siret.str.fullmatch(r"\d{14}").fillna(False).astype(bool)
    report.count("établissements au SIRET mal formé (14 chiffres attendus) écartés",
                 int((~ok).sum()))
    out = pd.DataFrame(index=frame.index)
    out["siret"] = siret
    out["siren"] = col("siren").fillna(siret.str[:9])
    out["nom"] = col("enseigne").fillna(col("denomination_usuelle"))
    out["raison_sociale"] = col("raison_sociale")
    cat = col("categorie_juridique").str.replace(r"\.0$", "", regex=True)
    out["categorie_juridique"] = cat
    out["type_personne"] = cat.map(
        lambda c: ("personne physique" if c.startswith("1") else "personne morale")
        if isinstance(c, str) else None)
    statut = col("statut_diffusion")
    out["diffusible"] = (statut.fillna("O").str.upper() == "O").astype(bool)
    out["naf"] = col("naf").str.upper()
    out["naf_libelle"] = col("naf_libelle")
    out["etat"] = col("etat").map(_etat)
    bad_dates = 0
    for name in ("date_creation", "date_debut", "date_fermeture", "date_maj"):
        parsed, bad = _dates(col(name))
        out[name] = parsed
        bad_dates += bad
    report.count("dates illisibles mises à NULL", bad_dates)
    # Sirene: a closed establishment's current period starts at its closure.
    closed = out["etat"] == "F"
    out["date_fermeture"] = out["date_fermeture"].where(
        out["date_fermeture"].notna() | ~closed, out["date_debut"].where(closed))
    out["siege"] = col("siege").map(_oui_non)
    out["tranche_effectif"] = col("tranche_effectif").map(
        lambda v: v.zfill(2) if isinstance(v, str) and v.isdigit() and len(v) < 2 else v)
    out["annee_effectif"] = col("annee_effectif").str[:4]
    address = col("adresse")
    parts = [col(c).fillna("") for c in ("numero_voie", "type_voie", "libelle_voie",
                                        "code_postal", "commune")]
    composed = parts[0].str.cat(parts[1:], sep=" ").str.split().str.join(" ")
    out["adresse"] = address.fillna(composed.where(composed.str.len() > 0))
    out["code_insee"] = col("code_insee").map(
        lambda v: v.zfill(5) if isinstance(v, str) and v.isdigit() and len(v) == 4 else v)
    out["commune"] = col("commune")
    out["ban_id"] = col("ban_id")
    geocodage = col("geocodage").map(_geocodage_cnig)
    out["geocodage"] = geocodage.fillna(col("geo_type").str.lower().map(GEO_TYPES)).fillna(
        "inconnu")
    out[LINEAGE] = col(LINEAGE)
    out = gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=crs)
    out = out[ok.to_numpy()]
    # One row per SIRET: the most recently updated wins, whatever the files' order.
    out = out.assign(_maj=out["date_maj"].fillna(""))
    out = stable_sort(out, ["siret", "_maj", LINEAGE])
    dup = out["siret"].duplicated(keep="last")
    report.count("établissements en double (même SIRET) écartés", int(dup.sum()))
    out = out[~dup.to_numpy()].drop(columns=["_maj", "date_debut"]).reset_index(drop=True)
    return conform(out, ETABLISSEMENTS)


def _columns(frame: pd.DataFrame) -> Callable[[str], pd.Series]:
    """Return a getter of text columns that yields an all-NULL column when absent."""
    def get(name: str) -> pd.Series:
        if name in frame:
            return _missing_to_none(text(frame[name]))
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return get


def _etat(value: str | None) -> str | None:
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in ("a", "actif", "active", "oui", "o", "true", "1", "ouvert"):
        return "A"
    if v in ("f", "fermé", "ferme", "closed", "non", "n", "false", "0", "c", "cessé", "cesse"):
        return "F"
    return None


def _oui_non(value: str | None) -> str | None:
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in ("true", "oui", "o", "1", "vrai", "t"):
        return "oui"
    if v in ("false", "non", "n", "0", "faux", "f"):
        return "non"
    return None


def _geocodage_cnig(value: str | None) -> str | None:
    if not isinstance(value, str):
        return None
    for v in GEOCODAGE_CNIG:
        if v.casefold() == value.strip().casefold():
            return v
    return None


def _dates(values: pd.Series) -> tuple[pd.Series, int]:
    """Parse ISO (``2021-03-15``, with or without a time) or French (``15/03/2021``) dates.

    Returns
    -------
    tuple
        ISO text dates (``None`` where missing or unreadable) and the number of
        unreadable non-empty values.
    """
    raw = values.astype(object)
    iso = pd.to_datetime(raw.str[:10], format="%Y-%m-%d", errors="coerce")
    fr = pd.to_datetime(raw, format="%d/%m/%Y", errors="coerce")
    parsed = iso.fillna(fr)
    out = parsed.dt.strftime("%Y-%m-%d").astype(object).where(parsed.notna(), None)
    bad = int((raw.notna() & parsed.isna()).sum())
    return out, bad


def mask_natural_persons(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Blank the names of establishments of natural persons and of non-diffusible ones.

    For the layer written into the observatory (maps read it): an entrepreneur
    individuel's trade name may be their own name.

    Parameters
    ----------
    frame
        The ``etablissements`` layer.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy where ``nom``, ``raison_sociale`` and ``adresse`` are NULL for those
        establishments.
    """
    out = frame.copy()
    hidden = (out["type_personne"] == "personne physique") | ~out["diffusible"].astype(bool)
    for col in ("nom", "raison_sociale", "adresse"):
        out[col] = out[col].astype(object).where(~hidden, None)
    return out
