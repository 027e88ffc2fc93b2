"""A corpus of bad inputs, built here, each with its expected behaviour.

Either a clear error — an :class:`ObservatoireError` naming the file (and layer,
field or row) and the fix — or a documented repair counted in the source report.
Never another exception. ``CORPUS`` is reused by ``test_cli.py`` to check the same
cases through the command line.
"""

from __future__ import annotations

import bz2
import gzip
import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE, TESTDATA
from shapely import LineString, MultiPolygon, Point, Polygon, box

from observatoire.config import Source, Territory, load_territory
from observatoire.errors import (
    ConfigError,
    CRSError,
    GeometryError,
    ObservatoireError,
    SchemaError,
    SourceError,
)
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_batiments, read_routes, read_zonage
from observatoire.readers.zae import read_zae

READERS = {"parcelles": read_parcelles, "zonage": read_zonage, "friches": read_friches,
           "zae": read_zae, "batiments": read_batiments, "routes": read_routes}

#: A corner of Gennes (25267) in Lambert-93, inside the sample's parcels.
X0, Y0 = 935_000.0, 6_687_000.0


# --- helpers shared with test_cli.py ---------------------------------------------------------

def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def write_territory(folder: Path, sources: dict[str, dict | list[dict]], *,
                    out: Path | None = None, communes: tuple[str, ...] = ("25267",),
                    name: str = "territoire.toml", options: dict | None = None,
                    profiles: dict | None = None, territoire: dict | None = None) -> Path:
    """A territory file; parcels default to the sample's BD PARCELLAIRE.

    A list of tables (``contraintes``) is written as ``[[sources.<kind>]]``;
    ``territoire`` adds keys to ``[territoire]`` (``epci_nom``…), ``profiles`` the
    tables of ``[profils]``.
    """
    sources = {"parcelles": {"chemin": str(SAMPLE / "parcel.gpkg"), "format": "bdparcellaire",
                             "couche": "parcel"}} | sources
    lines = ["[territoire]", 'nom = "Territoire d\'essai"', 'code = "essai"',
             f"communes = {toml_value(list(communes))}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (territoire or {}).items()]
    lines.append("")
    for kind, tables in sources.items():
        for table in tables if isinstance(tables, list) else [tables]:
            lines.append(f"[[sources.{kind}]]" if isinstance(tables, list)
                         else f"[sources.{kind}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
            lines.append("")
    lines += ["[sorties]", f"dossier = {toml_value(str(out or folder / 'out'))}", ""]
    lines += ["[profils]"] + [f"{k} = {toml_value(v)}" for k, v in (profiles or {}).items()]
    lines += ["", "[options]"] + [f"{k} = {toml_value(v)}" for k, v in (options or {}).items()]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_source(config: Path, kind: str):
    territory: Territory = load_territory(config)
    source = territory.source(kind)
    kwargs = {"communes": territory.communes} if kind == "parcelles" else {}
    return READERS[kind](source, crs=territory.crs, base=config.parent, **kwargs)


def sample_parcels(n: int = 20) -> gpd.GeoDataFrame:
    """The first ``n`` real parcels of Gennes, in Lambert-93."""
    frame = pyogrio.read_dataframe(SAMPLE / "parcel.gpkg", layer="parcel", max_features=200)
    return frame[frame["DEPCOM"] == "25267"].head(n).reset_index(drop=True)


def etalab_geojson(path: Path, n: int = 20) -> Path:
    """An Etalab-like parcel file (lon/lat, section/numero without zeros) from real parcels."""
    real = sample_parcels(n)
    frame = gpd.GeoDataFrame({
        "id": real["DEPCOM"] + real["COM_ABS"] + real["SECTION"] + real["NUMERO"],
        "commune": real["DEPCOM"],
        "prefixe": real["COM_ABS"],
        "section": real["SECTION"].str.lstrip("0"),
        "numero": real["NUMERO"].str.lstrip("0"),
        "contenance": np.round(real.geometry.area),
    }, geometry=real.geometry.values, crs=real.crs).to_crs(4326)
    frame.to_file(path, driver="GeoJSON")
    return path


def bdparcellaire(geoms: list, *, numeros: list | None = None, crs: object = 2154,
                  **columns: list) -> gpd.GeoDataFrame:
    n = len(geoms)
    data = {"DEPCOM": ["25267"] * n, "COM_ABS": ["000"] * n, "SECTION": ["ZZ"] * n,
            "NUMERO": numeros if numeros is not None else [f"{i + 1:04d}" for i in range(n)]}
    data.update(columns)
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


def square(i: int, size: float = 10.0) -> Polygon:
    x = X0 + 100 * i
    return box(x, Y0, x + size, Y0 + size)


def nan_polygon() -> Polygon:
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Polygon([(X0, Y0), (np.nan, Y0), (X0, Y0 + 10)])


def zones(geoms: list, crs: object = 2154) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"LIBELLE": [f"U{i}" for i in range(len(geoms))]},
                            geometry=geoms, crs=crs)


def friches_csv(rows: list[tuple[str, str]], *, encoding: str = "utf-8", nom: str = "Friche",
                bom: bool = False) -> bytes:
    lines = ["site_id;site_nom;site_type;site_statut;geompoint;geomsurf"]
    lines += [f"{sid};{nom} {i};friche industrielle;friche sans projet;{wkt};"
              for i, (sid, wkt) in enumerate(rows)]
    data = ("\n".join(lines) + "\n").encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


# --- the corpus of refused inputs ------------------------------------------------------------

@dataclass(frozen=True)
class Bad:
    """A bad source: how to build it, and the error it must give."""

    kind: str
    build: Callable[[Path], dict]
    error: type[ObservatoireError]
    match: str
    file: str  # the name the message must contain


def _truncated_geojson(d: Path) -> dict:
    data = etalab_geojson(d / "full.json").read_bytes()
    (d / "cadastre-tronque.json").write_bytes(data[: len(data) // 2])
    return {"chemin": "cadastre-tronque.json"}


def _corrupt_gz(d: Path) -> dict:
    data = gzip.compress(etalab_geojson(d / "full.json").read_bytes())
    (d / "cadastre.json.gz").write_bytes(data[: len(data) // 2])
    return {"chemin": "cadastre.json.gz"}


def _not_gzip(d: Path) -> dict:
    (d / "cadastre.json.gz").write_bytes(b"<html>502 Bad Gateway</html>\n")
    return {"chemin": "cadastre.json.gz"}


def _corrupt_tbz2(d: Path) -> dict:
    data = (TESTDATA / "edigeo-25354000AB01.tar.bz2").read_bytes()
    (d / "edigeo-25267000ZA01.tar.bz2").write_bytes(data[: len(data) // 2])
    return {"chemin": "edigeo-25267000ZA01.tar.bz2"}


def _bz2_not_tar(d: Path) -> dict:
    (d / "edigeo-25267000ZA01.tar.bz2").write_bytes(bz2.compress(b"pas une archive tar\n" * 50))
    return {"chemin": "edigeo-25267000ZA01.tar.bz2"}


def _zero_bytes(d: Path) -> dict:
    (d / "zonage.gpkg").write_bytes(b"")
    return {"chemin": "zonage.gpkg"}


def _folder(d: Path) -> dict:
    (d / "zonage.gpkg").mkdir()
    return {"chemin": "zonage.gpkg"}


def _missing(d: Path) -> dict:
    return {"chemin": "zonage-absent.gpkg"}


def _empty_layer(d: Path) -> dict:
    zones([square(0)]).iloc[:0].to_file(d / "zonage.gpkg", layer="zonage")
    return {"chemin": "zonage.gpkg"}


def _empty_parcel_layer(d: Path) -> dict:
    bdparcellaire([square(0)]).iloc[:0].to_file(d / "parcelles.gpkg", layer="parcel")
    return {"chemin": "parcelles.gpkg"}


def _no_crs(d: Path) -> dict:
    frame = zones([square(0)]).set_crs(None, allow_override=True)
    with pytest.warns(UserWarning, match="crs"):
        frame.to_file(d / "zonage.shp")
    return {"chemin": "zonage.shp"}


def _lying_crs(d: Path) -> dict:
    zones([square(0), square(1)]).set_crs(4326, allow_override=True).to_file(
        d / "zonage.geojson", driver="GeoJSON")
    return {"chemin": "zonage.geojson"}


def _lines_in_polygon_layer(d: Path) -> dict:
    zones([LineString([(X0, Y0), (X0 + 10, Y0 + 10)])] * 3).to_file(d / "zonage.gpkg")
    return {"chemin": "zonage.gpkg"}


def _all_nan(d: Path) -> dict:
    zones([nan_polygon()] * 2).to_file(d / "zonage.gpkg")
    return {"chemin": "zonage.gpkg"}


def _broken_wkt(d: Path) -> dict:
    (d / "friches.csv").write_bytes(friches_csv([("F1", "POINT (6.2 47.2)"),
                                                 ("F2", "POINT (6.21 47.2")]))
    return {"chemin": "friches.csv"}


def _latin1_csv(d: Path) -> dict:
    (d / "friches.csv").write_bytes(friches_csv([("F1", "POINT (6.2 47.2)")],
                                                encoding="latin-1", nom="Scierie Vérot"))
    return {"chemin": "friches.csv"}


def _missing_field(d: Path) -> dict:
    gpd.GeoDataFrame({"NOM": ["UY"]}, geometry=[square(0)], crs=2154).to_file(d / "zonage.gpkg")
    return {"chemin": "zonage.gpkg"}


def _wrong_layer(d: Path) -> dict:
    zones([square(0)]).to_file(d / "zonage.gpkg", layer="zone_urba")
    return {"chemin": "zonage.gpkg", "couche": "zonage"}


def _not_gis(d: Path) -> dict:
    (d / "zonage.gpkg").write_text("Ceci n'est pas un GeoPackage.\n", encoding="utf-8")
    return {"chemin": "zonage.gpkg"}


def _table_without_geometry(d: Path) -> dict:
    (d / "zonage.csv").write_text("LIBELLE,TYPEZONE\nUY,U\n", encoding="utf-8")
    return {"chemin": "zonage.csv"}


def _utf8_cpg_with_latin1(d: Path) -> dict:
    zones([square(0)]).assign(LIBELONG=["Zone d'activité"]).to_file(d / "zonage.shp",
                                                                    encoding="ISO-8859-1")
    (d / "zonage.cpg").write_text("UTF-8", encoding="ascii")
    return {"chemin": "zonage.shp"}


def _unknown_zae_layer_type(d: Path) -> dict:
    gpd.GeoDataFrame({"site_id": ["Z1"]}, geometry=[Point(X0, Y0)], crs=2154).to_file(
        d / "zae.gpkg", layer="site_eco")
    return {"chemin": "zae.gpkg"}


CORPUS: dict[str, Bad] = {
    "geojson_tronque": Bad("parcelles", _truncated_geojson, SourceError,
                           r"illisible.*complet", "cadastre-tronque.json"),
    "gzip_tronque": Bad("parcelles", _corrupt_gz, SourceError,
                        r"cadastre\.json\.gz : archive gzip corrompue ou tronquée",
                        "cadastre.json.gz"),
    "gzip_qui_nen_est_pas": Bad("parcelles", _not_gzip, SourceError,
                                r"cadastre\.json\.gz : archive gzip corrompue",
                                "cadastre.json.gz"),
    "tar_bz2_tronque": Bad("parcelles", _corrupt_tbz2, SourceError,
                           r"archive EDIGEO corrompue ou tronquée", "edigeo-25267000ZA01"),
    "bz2_sans_tar": Bad("parcelles", _bz2_not_tar, SourceError,
                        r"archive EDIGEO corrompue", "edigeo-25267000ZA01"),
    "fichier_vide": Bad("zonage", _zero_bytes, SourceError, r"fichier vide \(0 octet\)",
                        "zonage.gpkg"),
    "dossier": Bad("zonage", _folder, SourceError, r"c'est un dossier", "zonage.gpkg"),
    "fichier_absent": Bad("zonage", _missing, SourceError,
                          r"introuvable.*relatif au dossier", "zonage-absent.gpkg"),
    "couche_vide": Bad("zonage", _empty_layer, SourceError, r"couche vide", "zonage.gpkg"),
    "cadastre_vide": Bad("parcelles", _empty_parcel_layer, SourceError,
                         r"couche vide \(aucune parcelle\)", "parcelles.gpkg"),
    "sans_crs": Bad("zonage", _no_crs, CRSError,
                    r"aucun système de coordonnées.*« sources\.zonage\.crs »", "zonage.shp"),
    "crs_contredit": Bad("zonage", _lying_crs, CRSError,
                         r"incompatibles avec EPSG:4326.*mètres.*sources\.zonage\.crs",
                         "zonage.geojson"),
    "lignes_dans_polygones": Bad("zonage", _lines_in_polygon_layer, GeometryError,
                                 r"LineString.*attend MultiPolygon", "zonage.gpkg"),
    "coordonnees_nan": Bad("zonage", _all_nan, CRSError, r"non finies", "zonage.gpkg"),
    "wkt_casse": Bad("friches", _broken_wkt, SchemaError,
                     r"champ « geompoint » : WKT invalide ligne 3", "friches.csv"),
    "csv_latin1": Bad("friches", _latin1_csv, SourceError,
                      r"encodage illisible en utf-8.*sources\.friches\.encodage = \"latin-1\"",
                      "friches.csv"),
    "champ_absent": Bad("zonage", _missing_field, SchemaError,
                        r"champ « libelle ».*champs\.libelle", "zonage.gpkg"),
    "couche_absente": Bad("zonage", _wrong_layer, SourceError,
                          r"couche « zonage ».*couche absente.*zone_urba", "zonage.gpkg"),
    "pas_un_fichier_sig": Bad("zonage", _not_gis, SourceError, r"illisible|non reconnu",
                              "zonage.gpkg"),
    "table_sans_geometrie": Bad("zonage", _table_without_geometry, GeometryError,
                                r"table sans géométrie", "zonage.csv"),
    "cpg_utf8_mensonger": Bad("zonage", _utf8_cpg_with_latin1, SourceError,
                              r"texte illisible.*encodage = \"latin-1\"", "zonage.shp"),
    "zae_en_points": Bad("zae", _unknown_zae_layer_type, GeometryError,
                         r"géométries de type Point.*attend MultiPolygon", "zae.gpkg"),
}


# --- the corpus of refused territory files ---------------------------------------------------
#
# What the build refuses beyond the readers: the settings (checked before any source is
# read) and a DEM that misses the parcels (read over them). ``validate`` must refuse
# each too (test_validate.py).


@dataclass(frozen=True)
class BadTerritory:
    """A territory file the build refuses, and the error it must give."""

    write: Callable[[Path, Path], Path]  # (folder, output folder) -> the territory file
    error: type[ObservatoireError]
    match: str
    names: str  # what the message must name: a key of the territory file, or a file


def _profiles(**tables: dict) -> Callable[[Path, Path], Path]:
    return lambda d, out: write_territory(d, {}, out=out, profiles=tables)


def _options(**options: object) -> Callable[[Path, Path], Path]:
    return lambda d, out: write_territory(d, {}, out=out, options=options)


def _dem_elsewhere(d: Path, out: Path) -> Path:
    """The real DEM of Strasbourg-Neudorf (tests/data) for the parcels of Gennes."""
    shutil.copy(TESTDATA / "MNT.asc", d / "mnt.asc")
    return write_territory(d, {"mnt": {"chemin": "mnt.asc", "crs": "EPSG:2154"}}, out=out)


def _same_constraint_column(d: Path, out: Path) -> Path:
    """Two constraint layers (the sample's zoning, as a polygon layer) named alike."""
    layer = {"chemin": str(SAMPLE / "zoning.gpkg"), "couche": "zoning2", "type": "inondation"}
    return write_territory(d, {"contraintes": [layer | {"nom": "Zone rouge"},
                                               layer | {"nom": "zone-rouge"}]}, out=out)


_RAPIDE = {"indicateur": "dist_route_rapide_m", "poids": 5, "fonction": "lineaire",
           "points": [[0, 1], [1000, 0]]}

TERRITORY_CORPUS: dict[str, BadTerritory] = {
    "poids_negatif": BadTerritory(
        _profiles(industrie={"criteres": {"pente": {"poids": -1}}}), ConfigError,
        r"poids négatif -1", "profils.industrie.criteres.pente.poids"),
    "poids_en_texte": BadTerritory(
        _profiles(logistique={"criteres": {"surface": {"poids": "lourd"}}}), ConfigError,
        r"valeur invalide 'lourd' ; un nombre est attendu",
        "profils.logistique.criteres.surface.poids"),
    "fiabilite_min_en_pourcentage": BadTerritory(
        _profiles(industrie={"fiabilite_min": 75}), ConfigError, r"75.0 hors de \[0, 1\]",
        "profils.industrie.fiabilite_min"),
    "route_de_profil_non_declaree": BadTerritory(
        _profiles(industrie={"criteres": {"rapide": _RAPIDE}}), ConfigError,
        r"déclarez le groupe « rapide » dans options\.classes_routes",
        "profils.industrie.criteres.rapide.indicateur"),
    "vacance_cle_inconnue": BadTerritory(
        _options(vacance={"seuil": 1}), ConfigError, r"clé inconnue", "options.vacance.seuil"),
    "score_min_hors_bornes": BadTerritory(
        _options(score_min_gisement=150), ConfigError, r"150.0 hors de \[0, 100\]",
        "options.score_min_gisement"),
    "partition_inconnue": BadTerritory(
        _options(partition="departement"), ConfigError, r"valeur invalide 'departement'",
        "options.partition"),
    "export_cnig_sans_epci": BadTerritory(
        _options(export_cnig=True), ConfigError, r"export CNIG Sites Économiques",
        "territoire.epci_nom"),
    "contraintes_homonymes": BadTerritory(
        _same_constraint_column, ConfigError, r"même identifiant « part_contrainte_zone_rouge »",
        "zone-rouge"),
    "mnt_hors_du_territoire": BadTerritory(
        _dem_elsewhere, SourceError, r"le MNT ne couvre pas les parcelles du territoire",
        "mnt.asc"),
}


@pytest.mark.parametrize("case", sorted(TERRITORY_CORPUS))
def test_bad_territory_gives_a_clear_error(case, tmp_path):
    from observatoire.pipeline import build

    bad = TERRITORY_CORPUS[case]
    out = tmp_path / "sorties"
    config = bad.write(tmp_path, out)
    # Settings are refused as the file is loaded, a DEM once the build reads it.
    with pytest.raises(bad.error, match=bad.match) as info:
        build(load_territory(config))
    message = str(info.value)
    assert bad.names in message
    assert "\n" not in message
    assert not out.exists() or not any(out.iterdir())  # nothing published


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_gives_a_clear_error(case, tmp_path):
    bad = CORPUS[case]
    table = bad.build(tmp_path)
    config = write_territory(tmp_path, {bad.kind: table})
    with pytest.raises(bad.error, match=bad.match) as info:
        read_source(config, bad.kind)
    message = str(info.value)
    assert bad.file in message
    assert "\n" not in message
    assert "Traceback" not in message


# --- repaired inputs: the repair is counted ---------------------------------------------------

def _read_parcels(tmp_path: Path, frame: gpd.GeoDataFrame, name: str = "parcelles.gpkg"):
    frame.to_file(tmp_path / name, layer="parcel")
    config = write_territory(tmp_path, {"parcelles": {"chemin": name}})
    return read_source(config, "parcelles")


def test_invalid_geometries_of_each_kind(tmp_path):
    bow_tie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    # A ring touching itself at (X0+5, Y0+10): an "inverted hole" of 10 m².
    self_touching = Polygon([(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 10), (X0 + 5, Y0 + 10),
                             (X0 + 7, Y0 + 5), (X0 + 3, Y0 + 5), (X0 + 5, Y0 + 10),
                             (X0, Y0 + 10)])
    collapsed = Polygon([(X0, Y0), (X0 + 10, Y0), (X0 + 20, Y0)])
    assert not any(shapely.is_valid([bow_tie, self_touching, collapsed]))
    frame = bdparcellaire([square(0), bow_tie, self_touching, Polygon(), None, collapsed])
    result = _read_parcels(tmp_path, frame)
    assert result.report.repairs == {
        "géométries nulles": 1,
        "géométries vides": 1,
        "géométries réparées (make_valid)": 3,
        "géométries d'un autre type que MultiPolygon écartées": 1,
    }
    areas = result.frame.set_index("numero")["surface_m2"].to_dict()
    # The bow-tie becomes its two triangles (2 × 25 m²); the inverted hole is cut out.
    assert areas == {"0001": 100.0, "0002": 50.0, "0003": 90.0}
    assert result.frame.is_valid.all() and (result.frame.geom_type == "MultiPolygon").all()


def test_mixed_geometry_types_keep_the_polygons(tmp_path):
    frame = bdparcellaire([square(0), Point(X0, Y0), LineString([(X0, Y0), (X0 + 5, Y0)]),
                           MultiPolygon([square(3), square(4)]),
                           shapely.GeometryCollection([square(5), Point(X0, Y0)])])
    result = _read_parcels(tmp_path, frame)
    assert result.report.repairs == {"géométries d'un autre type que MultiPolygon écartées": 2}
    got = result.frame.set_index("numero")["surface_m2"].to_dict()
    assert got == {"0001": 100.0, "0004": 200.0, "0005": 100.0}


def test_same_parcel_twice_in_one_file(tmp_path):
    frame = bdparcellaire([square(0), square(0, 20), square(1), square(1), square(2)],
                          numeros=["0001", "0001", "0002", "0002", "0003"])
    result = _read_parcels(tmp_path, frame)
    assert result.report.repairs == {
        "parcelles en double identiques fusionnées": 1,
        "parcelles en double de géométrie différente (la plus grande gardée)": 1,
    }
    assert result.frame.set_index("numero")["surface_m2"].to_dict() == {
        "0001": 400.0, "0002": 100.0, "0003": 100.0}


def test_same_parcel_in_two_files_does_not_depend_on_order(tmp_path):
    # Same IDU, different geometries: one larger, and a same-area tie (shifted square).
    a = bdparcellaire([square(0), square(1), square(2)], CONTENANCE=[100, 100, 100])
    shifted = shapely.affinity.translate(square(1), 3, 0)
    b = bdparcellaire([square(0, 15), shifted, square(2)], CONTENANCE=[225, 101, 99])
    a.to_file(tmp_path / "a.gpkg", layer="parcel")
    b.to_file(tmp_path / "b.gpkg", layer="parcel")
    results = []
    for order in (["a.gpkg", "b.gpkg"], ["b.gpkg", "a.gpkg"]):
        source = Source(kind="parcelles", paths=tuple(tmp_path / n for n in order),
                        key="sources.parcelles")
        results.append(read_parcelles(source, crs="EPSG:2154").frame)
    pd.testing.assert_frame_equal(pd.DataFrame(results[0].to_wkb()),
                                  pd.DataFrame(results[1].to_wkb()))
    got = results[0].set_index("numero")
    assert got.loc["0001", "surface_m2"] == 225.0 and got.loc["0001", "source"] == "b.gpkg"
    # Identical geometries in both files: the first file by name is the lineage.
    assert got.loc["0003", "source"] == "a.gpkg"


def test_latin1_shapefile_without_cpg(tmp_path):
    frame = zones([square(0), square(1)]).assign(
        LIBELONG=["Zone d'activité économique", "Forêt communale"])
    frame.to_file(tmp_path / "zonage.shp", encoding="ISO-8859-1")
    (tmp_path / "zonage.cpg").unlink(missing_ok=True)
    assert "é".encode("latin-1") in (tmp_path / "zonage.dbf").read_bytes()
    config = write_territory(tmp_path, {"zonage": {"chemin": "zonage.shp"}})
    result = read_source(config, "zonage")
    assert sorted(result.frame["libelong"]) == ["Forêt communale", "Zone d'activité économique"]


def test_lying_cpg_fixed_by_declaring_the_encoding(tmp_path):
    table = _utf8_cpg_with_latin1(tmp_path)
    config = write_territory(tmp_path, {"zonage": table | {"encodage": "latin-1"}})
    result = read_source(config, "zonage")
    assert result.frame["libelong"].tolist() == ["Zone d'activité"]


def test_latin1_csv_read_when_declared(tmp_path):
    table = _latin1_csv(tmp_path)
    config = write_territory(tmp_path, {"friches": table | {"encodage": "latin-1"}})
    result = read_source(config, "friches")
    assert result.frame["site_nom"].tolist() == ["Scierie Vérot 0"]


def test_csv_with_byte_order_mark(tmp_path):
    (tmp_path / "friches.csv").write_bytes(friches_csv([("F1", "POINT (6.2 47.2)")], bom=True))
    config = write_territory(tmp_path, {"friches": {"chemin": "friches.csv"}})
    assert read_source(config, "friches").frame["site_id"].tolist() == ["F1"]


def test_csv_with_polygons_uses_the_header_to_find_the_separator(tmp_path):
    wkt = "POLYGON ((6.2 47.2, 6.201 47.2, 6.201 47.201, 6.2 47.201, 6.2 47.2))"
    data = ("site_id;site_nom;geompoint;geomsurf\n"
            f"F1;Friche;;{wkt}\nF2;Autre;;{wkt}\n").encode()
    (tmp_path / "friches.csv").write_bytes(data)
    config = write_territory(tmp_path, {"friches": {"chemin": "friches.csv"}})
    result = read_source(config, "friches")
    assert len(result.frame) == 2 and len(result.extra["friches_surfaces"]) == 2
    assert result.frame["site_nom"].tolist() == ["Friche", "Autre"]


def test_csv_in_lambert93_needs_the_crs_key(tmp_path):
    (tmp_path / "friches.csv").write_bytes(friches_csv([("F1", f"POINT ({X0} {Y0})")]))
    config = write_territory(tmp_path, {"friches": {"chemin": "friches.csv"}})
    with pytest.raises(CRSError, match=r"sources\.friches\.crs = \"EPSG:2154\""):
        read_source(config, "friches")
    config = write_territory(tmp_path, {"friches": {"chemin": "friches.csv",
                                                    "crs": "EPSG:2154"}})
    point = read_source(config, "friches").frame.geometry.iloc[0]
    assert (point.x, point.y) == (X0, Y0)


def test_numbers_stored_as_text(tmp_path):
    frame = bdparcellaire([square(0), square(1), square(2)], numeros=[1, 22, 333],
                          CONTENANCE=["100", "1 234,5", "n/c"])
    result = _read_parcels(tmp_path, frame)
    got = result.frame.set_index("idu")["contenance"]
    assert got["25267000ZZ0001"] == 100.0 and got["25267000ZZ0022"] == 1234.5
    assert np.isnan(got["25267000ZZ0333"])
    assert result.report.repairs == {
        "valeurs non numériques du champ « contenance » mises à NULL": 1}


def test_road_importance_stored_as_text(tmp_path):
    roads = gpd.GeoDataFrame({"NATURE": ["Route", "Route", "Type autoroutier"],
                              "IMPORTANCE": ["2", "4", "1"], "NUMERO": ["D683", None, "A36"]},
                             geometry=[LineString([(X0, Y0), (X0 + i + 1, Y0)])
                                       for i in range(3)], crs=2154)
    roads.to_file(tmp_path / "routes.gpkg")
    config = write_territory(tmp_path, {"routes": {"chemin": "routes.gpkg"}})
    frame = read_source(config, "routes").frame.set_index("numero", drop=False)
    assert sorted(frame["importance"]) == [1, 2, 4]
    assert frame.loc["D683", "classe"] == "principale"
    assert frame.loc["A36", "classe"] == "autoroute"


def test_a_few_absurd_or_nan_coordinates_are_dropped_and_counted(tmp_path):
    geoms = [square(i) for i in range(6)]
    geoms[1] = Polygon([(X0, Y0), (1e20, Y0), (1e20, 1e20)])
    geoms[2] = nan_polygon()
    result = _read_parcels(tmp_path, bdparcellaire(geoms))
    assert sorted(result.frame["numero"]) == ["0001", "0004", "0005", "0006"]
    assert result.report.repairs == {
        "entités aux coordonnées non finies (NaN) écartées": 1,
        "entités aux coordonnées hors du domaine de EPSG:2154 écartées": 1,
    }


def test_unclosed_ring_is_closed(tmp_path):
    ring = [[6.2, 47.2], [6.201, 47.2], [6.201, 47.201], [6.2, 47.201]]  # not closed
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"LIBELLE": "UY"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}},
        {"type": "Feature", "properties": {"LIBELLE": "A"},
         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}}]}
    (tmp_path / "zonage.geojson").write_text(json.dumps(doc), encoding="utf-8")
    config = write_territory(tmp_path, {"zonage": {"chemin": "zonage.geojson"}})
    frame = read_source(config, "zonage").frame.set_index("libelle")
    assert frame.loc["UY"].geometry.area == pytest.approx(frame.loc["A"].geometry.area)


def test_declared_layer_and_mapped_field(tmp_path):
    gpd.GeoDataFrame({"ZONE": ["UY"]}, geometry=[square(0)], crs=2154).to_file(
        tmp_path / "plu.gpkg", layer="zone_urba")
    config = write_territory(tmp_path, {"zonage": {"chemin": "plu.gpkg", "couche": "zone_urba",
                                                   "champs": {"libelle": "ZONE"}}})
    frame = read_source(config, "zonage").frame
    assert frame["libelle"].tolist() == ["UY"] and frame["zone_activite"].tolist() == [True]
    bad = write_territory(tmp_path, {"zonage": {"chemin": "plu.gpkg",
                                                "champs": {"libelle": "LIBELLE"}}})
    with pytest.raises(SchemaError, match=r"champ « LIBELLE ».*champs\.libelle.*ZONE"):
        read_source(bad, "zonage")


def test_etalab_real_file_truncated_at_many_points(tmp_path):
    """Truncations of a real Etalab file: always the same clear error."""
    data = etalab_geojson(tmp_path / "full.json").read_bytes()
    for i, cut in enumerate(np.linspace(1, len(data) - 2, 7).astype(int)):
        path = tmp_path / f"cadastre-{i}.json"
        path.write_bytes(data[:cut])
        source = Source(kind="parcelles", paths=(path,), key="sources.parcelles")
        with pytest.raises(SourceError, match=path.name):
            read_parcelles(source, crs="EPSG:2154")


def test_edigeo_sheet_without_thf(tmp_path):
    import tarfile

    path = tmp_path / "edigeo-25267000ZA01.tar.bz2"
    (tmp_path / "lisezmoi.txt").write_text("rien", encoding="utf-8")
    with tarfile.open(path, "w:bz2") as tar:
        tar.add(tmp_path / "lisezmoi.txt", arcname="lisezmoi.txt")
    with pytest.raises(SourceError, match=r"aucune fiche \.THF"):
        read_parcelles(Source(kind="parcelles", paths=(path,)), crs="EPSG:2154")


def test_edigeo_archive_member_paths_are_never_trusted(tmp_path):
    """A member named ../../x is extracted flat, inside the temporary folder."""
    import io
    import tarfile

    real = TESTDATA / "edigeo-25354000AB01.tar.bz2"
    path = tmp_path / "edigeo-25354000AB01.tar.bz2"
    with tarfile.open(real) as src, tarfile.open(path, "w:bz2") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if data is not None:
                m.name = "../../" + Path(m.name).name
                dst.addfile(m, io.BytesIO(data))
    result = read_parcelles(Source(kind="parcelles", paths=(path,)), crs="EPSG:2154")
    assert len(result.frame) > 0
    assert not list(tmp_path.parent.parent.glob("*.THF"))


def test_copy_of_sample_with_invalid_geometry_is_repaired(tmp_path):
    """A real layer (the sample's zoning) with one zone turned into a bow-tie."""
    shutil.copy(SAMPLE / "zoning.gpkg", tmp_path / "zoning.gpkg")
    frame = pyogrio.read_dataframe(tmp_path / "zoning.gpkg", layer="zoning2")
    x, y = frame.geometry.iloc[0].representative_point().coords[0]
    frame.loc[0, "geometry"] = Polygon([(x, y), (x + 10, y + 10), (x + 10, y), (x, y + 10)])
    pyogrio.write_dataframe(frame, tmp_path / "zoning.gpkg", layer="zoning2")
    config = write_territory(tmp_path, {"zonage": {"chemin": "zoning.gpkg",
                                                   "couche": "zoning2"}})
    result = read_source(config, "zonage")
    assert result.report.repairs["géométries réparées (make_valid)"] == 1
    assert result.frame.is_valid.all()


def test_measured_and_3d_geometries_become_2d(tmp_path):
    """A CSV with a WKT column (read by GDAL as a layer), holding XYM and XYZM polygons."""
    (tmp_path / "zonage.csv").write_text(
        "WKT,LIBELLE\n"
        f'"POLYGON M (({X0} {Y0} 1,{X0 + 10} {Y0} 1,{X0 + 10} {Y0 + 10} 1,{X0} {Y0} 1))",UY\n'
        f'"POLYGON ZM (({X0} {Y0} 1 2,{X0 + 10} {Y0} 1 2,{X0} {Y0 + 10} 1 2,{X0} {Y0} 1 2))",A\n',
        encoding="utf-8")
    config = write_territory(tmp_path, {"zonage": {"chemin": "zonage.csv", "crs": "EPSG:2154"}})
    frame = read_source(config, "zonage").frame
    assert not shapely.has_z(frame.geometry.values).any()
    assert not shapely.has_m(frame.geometry.values).any()
    assert sorted(frame.geometry.area) == [50.0, 50.0]
    out = tmp_path / "o.gpkg"
    frame.to_file(out)  # writable as a plain MultiPolygon layer
    assert pyogrio.read_info(out)["geometry_type"] == "MultiPolygon"


def test_degrees_in_a_lambert93_file(tmp_path):
    """A file that says Lambert-93 but holds lon/lat: refused with the hint, fixed by the key."""
    frame = zones([box(6.0, 47.2, 6.001, 47.201), box(6.01, 47.2, 6.011, 47.201)], crs=2154)
    frame.to_file(tmp_path / "zonage.gpkg")
    config = write_territory(tmp_path, {"zonage": {"chemin": "zonage.gpkg"}})
    with pytest.raises(CRSError, match=r"ressemblent à des degrés.*sources\.zonage\.crs = "
                                       r"\"EPSG:4326\""):
        read_source(config, "zonage")
    config = write_territory(tmp_path, {"zonage": {"chemin": "zonage.gpkg", "crs": "EPSG:4326"}})
    result = read_source(config, "zonage")
    assert result.frame.total_bounds[0] > 900_000  # now in Lambert-93, near Besançon
    assert result.report.repairs == {"CRS du fichier remplacé par celui déclaré (fichiers)": 1}


def test_gzip_with_a_wrong_checksum_is_refused(tmp_path):
    """A complete archive whose CRC does not match its content (bit rot): refused."""
    data = bytearray(gzip.compress(etalab_geojson(tmp_path / "full.json").read_bytes()))
    data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    (tmp_path / "cadastre.json.gz").write_bytes(bytes(data))
    config = write_territory(tmp_path, {"parcelles": {"chemin": "cadastre.json.gz"}})
    with pytest.raises(SourceError, match=r"cadastre\.json\.gz : archive gzip corrompue ou "
                                          r"tronquée \(CRC check failed"):
        read_source(config, "parcelles")
