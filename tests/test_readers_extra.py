"""Readers of the analysis inputs: DEM (GeoTIFF, ESRI ASCII), constraints, railways,
substations and owner tables (DGFiP « parcelles des personnes morales », any table)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine

from observatoire.config import Source, load_territory
from observatoire.errors import CRSError, SchemaError, SourceError
from observatoire.readers.contraintes import read_contrainte
from observatoire.readers.extra import read_extra_sources
from observatoire.readers.mnt import read_mnt
from observatoire.readers.proprietaires import normalise_name, read_proprietaires
from observatoire.readers.reseaux import read_postes_electriques, read_voies_ferrees
from observatoire.validate import validate_territory

TESTDATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]
X0, Y0 = 930_000.0, 6_690_000.0
L93 = "EPSG:2154"


def write_tif(path: Path, array: np.ndarray, transform: Affine, crs: str | None,
              nodata: float | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype=array.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(array, 1)
    return path


def mnt_source(*paths: Path, crs: str | None = None) -> Source:
    return Source(kind="mnt", paths=tuple(paths), key="sources.mnt", crs=crs)


# --------------------------------------------------------------------------- DEM


def test_ascii_grid_without_prj_needs_a_crs():
    path = TESTDATA / "MNT.asc"
    with pytest.raises(CRSError, match=r"sources\.mnt\.crs"):
        read_mnt(mnt_source(path), crs=L93)
    dem = read_mnt(mnt_source(path, crs=L93), crs=L93)
    assert dem.array.shape == (338, 498)
    assert dem.transform == Affine(10, 0, 1_049_205, 0, -10, 6_838_745 + 3380)
    # nodata -9999.9 becomes NaN: 56 211 of the 168 324 cells.
    assert int(np.isnan(dem.array).sum()) == 56_211
    assert float(np.nanmin(dem.array)) == pytest.approx(135.2, abs=1e-4)
    assert float(np.nanmax(dem.array)) == pytest.approx(160.5, abs=1e-4)
    assert dem.report.features_read == 168_324 and dem.report.features_kept == 112_113
    assert dem.report.crs_in == L93 and dem.report.format == "ascii"


def test_geotiff_nodata_window_and_mosaic(tmp_path):
    z = np.arange(20 * 30, dtype="float32").reshape(20, 30)
    z[0, 0] = -32768
    west = write_tif(tmp_path / "w.tif", z, Affine(5, 0, X0, 0, -5, Y0), L93, nodata=-32768)
    east = write_tif(tmp_path / "e.tif", z + 1000, Affine(5, 0, X0 + 150, 0, -5, Y0), L93,
                     nodata=-32768)
    dem = read_mnt(mnt_source(west), crs=L93)
    assert np.isnan(dem.array[0, 0]) and dem.array[0, 1] == 1
    assert dem.report.format == "geotiff"
    both = read_mnt(mnt_source(west, east), crs=L93)
    assert both.array.shape == (20, 60)
    assert both.array[5, 35] == z[5, 5] + 1000
    # A window over the eastern tile, with the margin of two cells.
    part = read_mnt(mnt_source(west, east), crs=L93, bounds=(X0 + 200, Y0 - 60, X0 + 250, Y0 - 10))
    xmin, ymin, xmax, ymax = part.bounds
    assert xmin == pytest.approx(X0 + 190) and xmax == pytest.approx(X0 + 260)
    assert ymin == pytest.approx(Y0 - 70) and ymax == pytest.approx(Y0)


def test_geotiff_in_another_crs_is_reprojected(tmp_path):
    # A flat 250 m DEM in WGS 84 around Besançon.
    z = np.full((40, 40), 250.0, dtype="float32")
    path = write_tif(tmp_path / "wgs.tif", z, Affine(0.001, 0, 6.0, 0, -0.001, 47.3),
                     "EPSG:4326")
    dem = read_mnt(mnt_source(path), crs=L93)
    assert dem.crs == L93 and "raster reprojeté dans le CRS du territoire" in dem.report.repairs
    valid = dem.array[np.isfinite(dem.array)]
    assert len(valid) > 1000 and np.allclose(valid, 250.0)
    xmin, ymin, _, _ = dem.bounds
    assert 900_000 < xmin < 950_000 and 6_680_000 < ymin < 6_700_000


def test_raster_coordinates_contradicting_the_crs(tmp_path):
    z = np.ones((5, 5), dtype="float32")
    path = write_tif(tmp_path / "bad.tif", z, Affine(5, 0, X0, 0, -5, Y0), "EPSG:4326")
    with pytest.raises(CRSError, match="incompatible avec EPSG:4326"):
        read_mnt(mnt_source(path), crs=L93)


def test_corrupt_raster(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00 not a tiff")
    with pytest.raises(SourceError, match="raster illisible"):
        read_mnt(mnt_source(path), crs=L93)


# --------------------------------------------------------------------------- vectors


def test_constraint_layer(tmp_path):
    path = tmp_path / "ppri.gpkg"
    frame = gpd.GeoDataFrame({"CODEZONE": ["R1", "B2"]},
                             geometry=[shapely.box(X0, Y0, X0 + 100, Y0 + 100),
                                       shapely.box(X0 + 200, Y0, X0 + 300, Y0 + 100)], crs=L93)
    pyogrio.write_dataframe(frame, path)
    source = Source(kind="contraintes", paths=(path,), key="sources.contraintes[0]",
                    name="PPRI zone rouge", constraint_type="inondation", strict=True)
    out = read_contrainte(source, crs=L93).frame
    assert len(out) == 2 and set(out.geom_type) == {"MultiPolygon"}
    assert (out["contrainte_nom"] == "PPRI zone rouge").all()
    assert (out["contrainte_type"] == "inondation").all()
    assert out["contrainte_stricte"].all()
    assert sorted(out["libelle"]) == ["B2", "R1"]


def test_railways_and_substations(tmp_path):
    rail = tmp_path / "rail.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"nature": ["Voie ferrée principale"]},
        geometry=[shapely.LineString([(X0, Y0), (X0 + 500, Y0)])], crs=L93), rail)
    out = read_voies_ferrees(Source(kind="voies_ferrees", paths=(rail,)), crs=L93).frame
    assert list(out.geom_type) == ["MultiLineString"]
    postes = tmp_path / "postes.geojson"
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"name": ["Poste A", "Poste B"], "voltage": ["63000", "225000"]},
        geometry=[shapely.Point(X0, Y0), shapely.box(X0 + 100, Y0, X0 + 140, Y0 + 20)],
        crs=L93).to_crs(4326), postes)
    result = read_postes_electriques(Source(kind="postes_electriques", paths=(postes,)),
                                     crs=L93)
    out = result.frame
    assert list(out.geom_type) == ["Point", "Point"]
    assert result.report.repairs["postes surfaciques réduits à un point"] == 1
    b = out[out["nom"] == "Poste B"].geometry.iloc[0]
    assert shapely.box(X0 + 100, Y0, X0 + 140, Y0 + 20).buffer(0.01).contains(b)
    assert sorted(out["tension"]) == ["225000", "63000"]


def _clipped(frame: gpd.GeoDataFrame, box: tuple[float, ...]) -> gpd.GeoDataFrame:
    return frame[frame.intersects(shapely.box(*box))].reset_index(drop=True)


def test_bbox_reads_of_constraints_railways_and_substations(tmp_path):
    """A bbox read equals the full read clipped by ``intersects(box)``."""
    box = (X0 + 150, Y0 - 50, X0 + 450, Y0 + 50)
    ppri = tmp_path / "ppri.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"CODEZONE": ["R1", "B2", "R3"]},
        geometry=[shapely.box(X0 - 200, Y0, X0, Y0 + 100),
                  shapely.box(X0 + 200, Y0, X0 + 300, Y0 + 100),
                  shapely.box(X0 + 440, Y0 + 40, X0 + 600, Y0 + 90)], crs=L93), ppri)
    rail = tmp_path / "rail.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"nature": ["principale", "service", "loin"]},
        geometry=[shapely.LineString([(X0, Y0), (X0 + 500, Y0)]),
                  shapely.LineString([(X0 - 300, Y0 + 60), (X0 - 200, Y0 + 200)]),
                  shapely.LineString([(X0 + 5000, Y0), (X0 + 5100, Y0)])], crs=L93), rail)
    postes = tmp_path / "postes.geojson"
    # Poste C's polygon meets the box, its point on surface does not: it is not kept.
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"name": ["Poste A", "Poste B", "Poste C"]},
        geometry=[shapely.Point(X0, Y0), shapely.box(X0 + 300, Y0, X0 + 340, Y0 + 20),
                  shapely.box(X0 + 440, Y0 - 200, X0 + 500, Y0 + 60)], crs=L93).to_crs(4326),
        postes)
    cases = [
        (read_contrainte, Source(kind="contraintes", paths=(ppri,), name="PPRI",
                                 constraint_type="inondation", strict=True), ["B2", "R3"]),
        (read_voies_ferrees, Source(kind="voies_ferrees", paths=(rail,)), ["principale"]),
        (read_postes_electriques, Source(kind="postes_electriques", paths=(postes,)),
         ["Poste B"]),
    ]
    for reader, source, kept in cases:
        full = reader(source, crs=L93)
        part = reader(source, crs=L93, bbox=box)
        expected = _clipped(full.frame, box)
        pd.testing.assert_frame_equal(pd.DataFrame(part.frame.to_wkb()),
                                      pd.DataFrame(expected.to_wkb()))
        label = {"contraintes": "libelle", "voies_ferrees": "nature"}.get(source.kind, "nom")
        assert sorted(part.frame[label]) == kept
        assert part.report.features_read < full.report.features_read


# --------------------------------------------------------------------------- owners

DGFIP_HEADER = [
    "Département (Champ géographique)", "Code Direction (Champ géographique)",
    "Code Commune (Champ géographique)", "Nom Commune (Champ géographique)",
    "Préfixe (Références cadastrales)", "Section (Références cadastrales)",
    "N° plan (Références cadastrales)", "Code droit (Propriétaire(s) parcelle)",
    "N° MAJIC (Propriétaire(s) parcelle)", "N° SIREN (Propriétaire(s) parcelle)",
    "Groupe personne (Propriétaire(s) parcelle)", "Forme juridique (Propriétaire(s) parcelle)",
    "Forme juridique abrégée (Propriétaire(s) parcelle)",
    "Dénomination (Propriétaire(s) parcelle)",
]
# Synthetic rows in the layout of the open file (one row per right).
DGFIP_ROWS = [
    ["25", "0", "267", "GENNES", "", "A", "12", "P", "+00001", "212502672", "4",
     "Commune", "COM", "COMMUNE DE GENNES"],
    ["25", "0", "267", "GENNES", "", "A", "12", "G", "+00002", "987654321", "0",
     "Société par actions simplifiée", "SAS", "GESTION IMMO"],
    ["25", "0", "267", "GENNES", "", "ZA", "7", "P", "+00003", "U00012345", "0",
     "Société civile immobilière", "SCI", "SCI DES PRÉS"],
    ["25", "0", "267", "GENNES", "101", "B", "3", "N", "+00004", "123456789", "6A",
     "Société anonyme d'économie mixte", "SAEM", "SEM DU DOUBS"],
    ["2A", "0", "4", "AJACCIO", "", "AB", "1", "P", "+00005", "222222222", "9",
     "Établissement public", "EP", "PORT D'AJACCIO"],
    ["25", "0", "267", "GENNES", "", "", "", "P", "+00006", "333333333", "0", "", "", "X"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, encoding: str,
              sep: str = ";") -> Path:
    text = "\n".join(sep.join(r) for r in [header, *rows]) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8"])
def test_dgfip_proprietaires_file(tmp_path, encoding):
    path = write_csv(tmp_path / "pm25.txt", DGFIP_HEADER, DGFIP_ROWS, encoding=encoding)
    result = read_proprietaires(Source(kind="proprietaires", paths=(path,)), crs=L93)
    out = result.frame.set_index("idu")
    assert result.report.format == "personnes_morales"
    assert sorted(out.index) == sorted(["252670000A0012", "25267000ZA0007", "252671010B0003",
                                        "2A004000AB0001"])
    # The manager (right G) is not an owner; a pseudo-SIREN (U…) is no SIREN.
    assert out.loc["252670000A0012", "proprietaire_nom"] == "COMMUNE DE GENNES"
    assert out.loc["252670000A0012", "proprietaire_groupe"] == "commune"
    assert out.loc["25267000ZA0007", "proprietaire_nom"] == "SCI DES PRÉS"
    assert out.loc["25267000ZA0007", "proprietaire_siren"] is None
    assert out.loc["25267000ZA0007", "proprietaire_cle"] == "nom:SCI DES PRÉS"
    assert out.loc["252671010B0003", "proprietaire_groupe"] == "société d'économie mixte"
    assert out.loc["2A004000AB0001", "proprietaire_siren"] == "222222222"
    assert (out["proprietaire_type"] == "personne morale").all()
    repairs = result.report.repairs
    assert repairs["droits autres que propriétaire (gérant, usufruitier…) écartés"] == 1
    assert repairs["lignes sans identifiant de parcelle valide écartées"] == 1


def test_generic_proprietaires_table_never_names_natural_persons(tmp_path):
    path = write_csv(tmp_path / "proprietaires.csv",
                     ["idu", "proprietaire", "type", "siren", "compte"],
                     [["252670000A0001", "DUPONT JEAN", "personne physique", "", "B001"],
                      ["252670000A0002", "SCI LES PINS", "", "444444444", "B002"],
                      ["252670000A0003", "MARTIN", "", "", "B003"],
                      ["bad", "X", "", "", ""]], encoding="utf-8", sep=",")
    source = Source(kind="proprietaires", paths=(path,), key="sources.proprietaires",
                    fields={"proprietaire_nom": "proprietaire"})
    result = read_proprietaires(source, crs=L93)
    out = result.frame.set_index("idu")
    assert result.report.format == "table"
    assert out.loc["252670000A0001", "proprietaire_type"] == "personne physique"
    assert out.loc["252670000A0001", "proprietaire_nom"] is None
    assert out.loc["252670000A0001", "proprietaire_cle"] == "B001"
    assert out.loc["252670000A0002", "proprietaire_type"] == "personne morale"
    assert out.loc["252670000A0002", "proprietaire_nom"] == "SCI LES PINS"
    # No type, no SIREN: unknown, and not named either.
    assert out.loc["252670000A0003", "proprietaire_type"] == "inconnu"
    assert out.loc["252670000A0003", "proprietaire_nom"] is None
    assert not out.astype(str).apply(lambda c: c.str.contains("DUPONT|MARTIN")).any().any()


def test_proprietaires_table_without_idu_column(tmp_path):
    path = write_csv(tmp_path / "o.csv", ["parcel", "name"], [["x", "y"]], encoding="utf-8",
                     sep=",")
    with pytest.raises(SchemaError, match=r"sources\.proprietaires\.champs\.idu"):
        read_proprietaires(Source(kind="proprietaires", paths=(path,),
                                  key="sources.proprietaires"), crs=L93)


def test_normalise_name():
    assert normalise_name("N° SIREN (Propriétaire(s) parcelle)") == "n siren"
    assert normalise_name("Forme juridique abrégée (Propriétaire(s) parcelle)") == (
        "forme juridique abregee")


# --------------------------------------------------------------------------- territory


def test_extra_sources_of_a_territory_and_validate(tmp_path):
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"nom": ["zone rouge"]}, geometry=[shapely.box(936_000, 6_686_000, 937_000, 6_687_000)],
        crs=L93), tmp_path / "ppri.gpkg")
    write_csv(tmp_path / "pm.csv", DGFIP_HEADER, DGFIP_ROWS[:1], encoding="latin-1")
    (tmp_path / "mnt.asc").write_bytes((TESTDATA / "MNT.asc").read_bytes())
    toml = tmp_path / "territoire.toml"
    toml.write_text(f"""
[territoire]
nom = "Test"
communes = ["25267"]

[sources.parcelles]
chemin = "{(ROOT / 'data' / 'sample' / 'parcel.gpkg').as_posix()}"
format = "bdparcellaire"
couche = "parcel"

[sources.mnt]
chemin = "mnt.asc"
crs = "EPSG:2154"

[sources.proprietaires]
chemin = "pm.csv"

[[sources.contraintes]]
chemin = "ppri.gpkg"
nom = "PPRI"
type = "inondation"
stricte = true
""", encoding="utf-8")
    territory = load_territory(toml)
    extra = read_extra_sources(territory)
    assert extra.available() == {"mnt", "proprietaires", "contraintes"}
    assert [s.name for s, _ in extra.contraintes] == ["PPRI"]
    assert len(extra.reports()) == 3
    from observatoire.analysis import extra_inputs

    inputs = extra_inputs(extra.read, contraintes=extra.contraintes)
    assert inputs.contraintes[0].strict and inputs.contraintes[0].kind == "inondation"
    assert inputs.proprietaires_absents == "personne physique"
    ok, lines = validate_territory(toml)
    text = "\n".join(lines)
    assert "IGNORÉ" not in text
    # The DEM is of Strasbourg, the parcels of Gennes: the build reads the DEM over the
    # parcels and refuses it; so does validate, which reads it the same way.
    assert not ok
    (dem,) = [ln for ln in lines if " sources.mnt :" in ln]
    assert dem.startswith("REFUSÉ") and "mnt.asc : le MNT ne couvre pas les parcelles" in dem
    (ppri,) = [ln for ln in lines if " sources.contraintes[0] :" in ln]
    assert ppri.startswith("LU") and "1 entités gardées sur 1 lues" in ppri
    (line,) = [ln for ln in lines if " sources.proprietaires :" in ln]
    assert line.startswith("RÉPARÉ") or line.startswith("LU")
