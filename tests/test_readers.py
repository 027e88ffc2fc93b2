"""Readers on the real files: Etalab, BD PARCELLAIRE, EDIGEO, CNIG friches, Cartofriches, CNIG ZAE.

Also the IDU padding rule and CRS handling (reprojection, declared CRS, overseas).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE, TESTDATA, shared_file, standard_file

from observatoire.config import Source
from observatoire.errors import CRSError, SourceError
from observatoire.readers.cadastre import format_idu, read_parcelles, split_idu
from observatoire.readers.common import SourceReport, numbers, to_territory_crs
from observatoire.readers.friches import parse_idu_list, read_friches
from observatoire.readers.layers import read_zonage
from observatoire.readers.zae import read_zae

ETALAB = "etalab-cadastre/cadastre-91216-parcelles.json"
LUXIOL = "edigeo-luxiol"
FRICHES_CSV = "cartofriches/friches_standard_test.csv"
CARTOFRICHES = "cartofriches/cartofriches_fxy_2024-03.gpkg"
SITES_ECO = "cnig-sites-economiques/schema/sites_economiques.gpkg"


def parcelles(*paths: Path, **kw) -> Source:
    return Source(kind="parcelles", paths=tuple(paths), key="sources.parcelles", **kw)


def _geometry_digest(frame: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    return sorted(zip(frame["idu"], shapely.to_wkb(shapely.normalize(frame.geometry.values),
                                                  hex=True), strict=True))


# --- Etalab ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def etalab() -> tuple[Path, gpd.GeoDataFrame]:
    path = shared_file(ETALAB)
    return path, read_parcelles(parcelles(path), crs="EPSG:2154").frame


def test_etalab_4241_parcels_with_etalab_ids(etalab):
    path, frame = etalab
    raw = pyogrio.read_dataframe(path, read_geometry=False)
    assert len(frame) == 4241
    assert frame["idu"].str.len().eq(14).all()
    assert frame["idu"].is_unique
    # The canonical IDU is exactly Etalab's `id` (which keeps the zeros that section
    # and numero lose).
    assert set(frame["idu"]) == set(raw["id"])
    assert frame.crs.to_epsg() == 2154
    assert (frame.geom_type == "MultiPolygon").all() and frame.is_valid.all()


def test_etalab_parts_are_padded(etalab):
    path, frame = etalab
    raw = pyogrio.read_dataframe(path, read_geometry=False).set_index("id")
    row = frame.set_index("idu").loc["91216000AB0037"]
    assert raw.loc["91216000AB0037", "numero"] == "37"  # as Etalab publishes it
    assert (row["code_insee"], row["prefixe"], row["section"], row["numero"]) == (
        "91216", "000", "AB", "0037")
    assert row["contenance"] == 254881.0
    assert row["source"] == "cadastre-91216-parcelles.json"


def test_etalab_area_is_lambert93_area(etalab):
    path, frame = etalab
    raw = pyogrio.read_dataframe(path).set_index("id")
    expected = raw.geometry.to_crs(2154).area.round(2)
    got = frame.set_index("idu")["surface_m2"]
    assert np.allclose(got.sort_index(), expected.sort_index(), atol=0.02)
    # The fiscal contenance and the computed area agree to a few percent overall.
    assert abs(got.sum() / frame["contenance"].sum() - 1) < 0.05


def test_etalab_gzipped_gives_the_same_parcels(etalab, tmp_path):
    path, frame = etalab
    gz = tmp_path / "cadastre-91216-parcelles.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    result = read_parcelles(parcelles(gz), crs="EPSG:2154")
    assert result.report.format == "etalab"
    assert _geometry_digest(result.frame) == _geometry_digest(frame)


def test_etalab_several_files_at_once(etalab, tmp_path):
    """Two commune-like files (the real file split by section), one of them gzipped."""
    path, frame = etalab
    doc = json.loads(path.read_text(encoding="utf-8"))
    feats = doc["features"]
    first = [f for f in feats if f["properties"]["section"] < "AK"]
    second = [f for f in feats if f["properties"]["section"] >= "AK"]
    assert first and second
    a = tmp_path / "cadastre-a-parcelles.json"
    b = tmp_path / "cadastre-b-parcelles.json.gz"
    a.write_text(json.dumps({**doc, "features": first}), encoding="utf-8")
    b.write_bytes(gzip.compress(json.dumps({**doc, "features": second}).encode()))
    result = read_parcelles(parcelles(a, b), crs="EPSG:2154")
    assert len(result.frame) == 4241
    assert result.report.features_read == 4241
    assert _geometry_digest(result.frame) == _geometry_digest(frame)
    assert set(result.frame["source"]) == {a.name, b.name}


def test_etalab_file_twice_merges_identical_duplicates(etalab, tmp_path):
    path, _ = etalab
    gz = tmp_path / "copie.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    result = read_parcelles(parcelles(path, gz), crs="EPSG:2154")
    assert len(result.frame) == 4241
    assert result.report.repairs == {"parcelles en double identiques fusionnées": 4241}


def test_etalab_commune_filter(etalab):
    path, _ = etalab
    result = read_parcelles(parcelles(path), crs="EPSG:2154", communes=("91217",))
    assert len(result.frame) == 0
    assert result.report.repairs["parcelles hors des communes du territoire écartées"] == 4241


# --- BD PARCELLAIRE --------------------------------------------------------------------------

def test_bdparcellaire_sample():
    path = SAMPLE / "parcel.gpkg"
    result = read_parcelles(parcelles(path, format="bdparcellaire", layer="parcel"),
                            crs="EPSG:2154", communes=("25267",))
    frame = result.frame
    assert result.report.features_read == 851
    assert len(frame) == 828
    assert frame["idu"].str.len().eq(14).all() and frame["idu"].is_unique
    assert (frame["code_insee"] == "25267").all()
    # Row 0 of the file: DEPCOM 25267, COM_ABS 000, SECTION ZA, NUMERO 0025.
    assert "252670000ZA0025" not in set(frame["idu"])
    assert "25267000ZA0025" in set(frame["idu"])
    raw = pyogrio.read_dataframe(path, layer="parcel", read_geometry=False)
    raw = raw[raw["DEPCOM"] == "25267"]
    expected = set(raw["DEPCOM"] + raw["COM_ABS"] + raw["SECTION"] + raw["NUMERO"])
    assert set(frame["idu"]) == expected


def test_etalab_shapefile_with_automatic_format(tmp_path):
    """Etalab also publishes shapefiles: same fields as its GeoJSON."""
    from test_bad_inputs import etalab_geojson

    frame = pyogrio.read_dataframe(etalab_geojson(tmp_path / "cadastre.json"))
    frame.to_file(tmp_path / "parcelles.shp")
    result = read_parcelles(parcelles(tmp_path / "parcelles.shp"), crs="EPSG:2154")
    assert sorted(result.frame["idu"]) == sorted(frame["id"])
    assert result.report.format == "bdparcellaire"


# --- EDIGEO ----------------------------------------------------------------------------------

def test_edigeo_shipped_sheet():
    path = TESTDATA / "edigeo-25354000AB01.tar.bz2"
    result = read_parcelles(parcelles(path), crs="EPSG:2154")
    frame = result.frame
    assert result.report.format == "edigeo"
    assert result.report.crs_in == "EPSG:2154"
    assert len(frame) == result.report.features_read > 0
    assert frame["idu"].str.match(r"^25354000AB\d{4}$").all()
    assert frame["contenance"].notna().all()
    # EDIGEO's SUPF and the drawn area agree to a few percent over the sheet.
    assert abs(frame["surface_m2"].sum() / frame["contenance"].sum() - 1) < 0.05


def test_edigeo_eight_sheets_of_luxiol():
    folder = shared_file(LUXIOL)
    sheets = sorted(folder.glob("edigeo-*.tar.bz2"))
    assert len(sheets) == 8
    result = read_parcelles(parcelles(*sheets), crs="EPSG:2154")
    frame = result.frame
    assert len(frame) == 511
    assert frame["idu"].is_unique and frame["idu"].str.len().eq(14).all()
    assert (frame["code_insee"] == "25354").all()
    assert set(frame["section"]) == {"AB", "AK", "ZB", "ZC", "ZD", "ZE", "ZH", "ZI"}
    # Each parcel's lineage is its own sheet.
    assert (frame["source"].str[15:17] == frame["section"]).all()
    assert frame.is_valid.all() and (frame.geom_type == "MultiPolygon").all()


def test_edigeo_commune_bundle_of_sheets(tmp_path):
    """An archive bundling sheet archives (a whole commune) reads every sheet."""
    import tarfile

    folder = shared_file(LUXIOL)
    sheets = [folder / f"edigeo-25354000{s}01.tar.bz2" for s in ("AB", "ZB", "ZD")]
    bundle = tmp_path / "edigeo-25354.tar"
    with tarfile.open(bundle, "w") as tar:
        for sheet in sheets:
            tar.add(sheet, arcname=f"25354/{sheet.name}")
    separate = read_parcelles(parcelles(*sheets), crs="EPSG:2154").frame
    together = read_parcelles(parcelles(bundle, format="edigeo"), crs="EPSG:2154").frame
    assert len(together) == len(separate) > 0
    assert _geometry_digest(together) == _geometry_digest(separate)
    assert set(together["section"]) == {"AB", "ZB", "ZD"}


# --- Friches ---------------------------------------------------------------------------------

def test_cnig_friches_csv():
    path = shared_file(FRICHES_CSV)
    result = read_friches(Source(kind="friches", paths=(path,)), crs="EPSG:2154")
    frame = result.frame
    assert len(frame) == 2594
    assert frame["site_id"].is_unique
    assert frame.crs.to_epsg() == 2154 and (frame.geom_type == "Point").all()
    with open(path, encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f, delimiter=";"))
    lon, lat = map(float, first["geompoint"].removeprefix("POINT (").rstrip(")").split())
    point = gpd.GeoSeries.from_xy([lon], [lat], crs=4326).to_crs(2154).iloc[0]
    got = frame.set_index("site_id").loc[first["site_id"]]
    assert got.geometry.distance(point) < 0.01
    assert got["site_statut"] == first["site_statut"]
    assert len(result.extra["friches_surfaces"]) == 0  # geomsurf is empty in this file


@pytest.mark.shared
def test_cartofriches_geopackage_list_columns():
    path = shared_file(CARTOFRICHES)
    result = read_friches(Source(kind="friches", paths=(path,)), crs="EPSG:2154")
    frame = result.frame.set_index("site_id")
    raw = pyogrio.read_dataframe(path, columns=["site_id", "l_idpar"],
                                 read_geometry=False).set_index("site_id")
    listed = raw["l_idpar"].dropna()
    listed = listed[listed.str.startswith("{") & listed.str.contains(",")]
    site = listed.index[0]
    expected = "|".join(listed.loc[site].strip("{}").split(","))
    assert frame.loc[site, "unite_fonciere_refcad"] == expected
    assert not frame["unite_fonciere_refcad"].dropna().str.contains(r"[{},]").any()
    # 23,878 sites, the overseas ones fall outside Lambert-93 and are counted.
    dropped = result.report.repairs.get(
        "entités hors du domaine de la projection du territoire (EPSG:2154) écartées", 0)
    assert result.report.features_read == 23878
    assert len(frame) + dropped == 23878
    assert 0 < dropped < 500


def test_parse_idu_list():
    assert parse_idu_list("{01004000BD0051,01004000BD0064}") == "01004000BD0051|01004000BD0064"
    assert parse_idu_list("a|b|a") == "A|B"
    assert parse_idu_list('["x", "y"]') == "X|Y"
    assert parse_idu_list("{}") is None
    assert parse_idu_list(None) is None


def test_cartofriches_sample_geojson():
    path = SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson"
    result = read_friches(Source(kind="friches", paths=(path,), format="cartofriches"),
                          crs="EPSG:2154")
    assert len(result.frame) == 14
    assert result.report.crs_in == "EPSG:4326"


# --- CNIG Sites Économiques ------------------------------------------------------------------

def test_cnig_sites_economiques_template_is_empty():
    path = standard_file(SITES_ECO)
    with pytest.raises(SourceError, match=r"site_eco.*couche vide.*retirez « sources\.zae »"):
        read_zae(Source(kind="zae", paths=(path,), key="sources.zae"), crs="EPSG:2154")


def _shoelace(ring: list[list[float]]) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:],
                                                                    strict=False))) / 2


def test_site_eco_from_the_standard_example(tmp_path):
    """The standard's example row, put into a copy of the standard's own GeoPackage."""
    template = standard_file(SITES_ECO)
    example = standard_file("cnig-sites-economiques/schema/site-eco/exemple-valide.csv")
    with open(example, encoding="utf-8", newline="") as f:
        row = next(csv.DictReader(f, delimiter=";"))
    ring = json.loads(row["site_geomsurf"])["coordinates"][0]
    # The example's ring is not closed (…589.70 vs …589.707): close it as GDAL would.
    ring = [*ring, ring[0]]
    gpkg = tmp_path / "sites_economiques.gpkg"
    shutil.copy(template, gpkg)
    info = pyogrio.read_info(gpkg, layer="site_eco")
    values = {}
    for name, dtype in zip(info["fields"], info["dtypes"], strict=True):
        raw = row.get(name) or None
        if raw is None:
            values[name] = [None]
        elif dtype == "float64":
            values[name] = [float(raw.replace(",", "."))]
        elif dtype == "int32":
            values[name] = [int(float(raw))]
        else:
            values[name] = [raw]
    frame = gpd.GeoDataFrame(values, geometry=[shapely.MultiPolygon([shapely.Polygon(ring)])],
                             crs=2154)
    frame = frame.astype({n: "float64" for n, d in zip(info["fields"], info["dtypes"],
                                                        strict=True) if d == "float64"})
    pyogrio.write_dataframe(frame, gpkg, layer="site_eco", append=True)

    result = read_zae(Source(kind="zae", paths=(gpkg,), key="sources.zae"), crs="EPSG:2154")
    zae = result.frame
    assert len(zae) == 1
    z = zae.iloc[0]
    assert z["zae_id"] == "80024_SITE-ECO_00001"
    assert z["zae_nom"] == "ZAC Les Bornes du Temps"
    assert z["zae_type"] == "zone d'activité économique"
    assert z["zae_vocation"] == "entrepôts"
    assert z["comm_insee"] == "80024"
    assert z["zae_origine"] == "cnig"
    assert result.report.layer == "site_eco"
    assert z.geometry.area == pytest.approx(_shoelace(ring), abs=1e-3)


# --- IDU -------------------------------------------------------------------------------------

def test_idu_padding_rule():
    parts = format_idu(pd.Series(["25267", "25267", "01004", 1004, "2A004"]),
                       pd.Series([None, "12", "000", 0, None]),
                       pd.Series(["A", "ab", "0A", "ZC", "B"]),
                       pd.Series(["22", "1", "0022", 22.0, 7]))
    assert parts["idu"].tolist() == ["252670000A0022", "25267012AB0001", "010040000A0022",
                                     "01004000ZC0022", "2A0040000B0007"]
    assert parts["section"].tolist() == ["0A", "AB", "0A", "ZC", "0B"]
    assert parts["numero"].tolist() == ["0022", "0001", "0022", "0022", "0007"]
    assert parts["prefixe"].tolist() == ["000", "012", "000", "000", "000"]


def test_idu_invalid_parts_give_no_idu():
    parts = format_idu(pd.Series(["25267", "252", "25267", None]),
                       pd.Series([None, None, None, None]),
                       pd.Series(["ABC", "A", "A", "A"]),
                       pd.Series(["1", "1", "12345", "1"]))
    assert parts["idu"].isna().all()


def test_split_idu():
    parts = split_idu(pd.Series(["25354000ZB0012", "bad", None]))
    assert parts.iloc[0].tolist() == ["25354000ZB0012", "25354", "000", "ZB", "0012"]
    assert parts["idu"].iloc[1:].isna().all()


def test_numbers_stored_as_text():
    report = SourceReport("parcelles", [], "x")
    got = numbers(pd.Series(["1 234,5", "12", "douze", None, "1\u00a0000"]), report=report,
                  field_name="contenance")
    assert got.iloc[0] == 1234.5 and got.iloc[1] == 12.0 and got.iloc[4] == 1000.0
    assert got.iloc[2:4].isna().all()
    assert report.repairs == {"valeurs non numériques du champ « contenance » mises à NULL": 1}


# --- CRS -------------------------------------------------------------------------------------

def _points(xy: list[tuple[float, float]], crs: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"n": range(len(xy))},
                            geometry=[shapely.Point(x, y) for x, y in xy], crs=crs)


def test_wgs84_to_lambert93_origin():
    # Lambert-93's false origin: 3°E, 46.5°N is (700 000, 6 600 000) by definition.
    report = SourceReport("x", [], "x")
    out = to_territory_crs(_points([(3.0, 46.5)], 4326), target="EPSG:2154", declared=None,
                           path=Path("f.geojson"), layer=None, report=report)
    assert out.crs.to_epsg() == 2154
    assert out.geometry.iloc[0].x == pytest.approx(700_000, abs=1e-3)
    assert out.geometry.iloc[0].y == pytest.approx(6_600_000, abs=1e-3)
    assert report.crs_in == "EPSG:4326"


def test_no_crs_and_none_declared_names_the_key():
    with pytest.raises(CRSError, match=r"aucun système de coordonnées.*« sources\.zonage\.crs »"):
        to_territory_crs(_points([(900_000, 6_700_000)], None), target="EPSG:2154",
                         declared=None, path=Path("z.shp"), layer=None,
                         report=SourceReport("x", [], "x"), key="sources.zonage")


def test_no_crs_with_declared_crs(tmp_path):
    frame = gpd.GeoDataFrame({"LIBELLE": ["UY"]},
                             geometry=[shapely.box(900_000, 6_700_000, 900_100, 6_700_100)])
    path = tmp_path / "zonage.shp"
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        frame.to_file(path)  # no CRS: no .prj
    assert not path.with_suffix(".prj").exists()
    src = Source(kind="zonage", paths=(path,), crs="EPSG:2154", key="sources.zonage")
    result = read_zonage(src, crs="EPSG:2154")
    assert result.report.crs_in == "EPSG:2154"
    assert result.frame.geometry.iloc[0].area == pytest.approx(10_000)
    with pytest.raises(CRSError, match=r"sources\.zonage\.crs"):
        read_zonage(Source(kind="zonage", paths=(path,), key="sources.zonage"),
                    crs="EPSG:2154")


def test_declared_crs_overrides_a_wrong_prj(tmp_path):
    # A file that says 4326 but holds Lambert-93 numbers: refused, then fixed by the key.
    frame = gpd.GeoDataFrame({"LIBELLE": ["UY"]},
                             geometry=[shapely.box(900_000, 6_700_000, 900_100, 6_700_100)],
                             crs=4326)
    path = tmp_path / "zonage.geojson"
    frame.to_file(path, driver="GeoJSON")
    with pytest.raises(CRSError, match=r"ressemblent à des mètres.*sources\.zonage\.crs = "
                                       r"\"EPSG:2154\""):
        read_zonage(Source(kind="zonage", paths=(path,), key="sources.zonage"),
                    crs="EPSG:2154")
    src = Source(kind="zonage", paths=(path,), crs="EPSG:2154", key="sources.zonage")
    result = read_zonage(src, crs="EPSG:2154")
    assert result.frame.geometry.iloc[0].area == pytest.approx(10_000)
    assert result.report.repairs == {"CRS du fichier remplacé par celui déclaré (fichiers)": 1}


def test_overseas_territory_crs():
    # Pointe-à-Pitre (Guadeloupe) in lon/lat, brought to RGAF09 / UTM 20N.
    report = SourceReport("x", [], "x")
    out = to_territory_crs(_points([(-61.53, 16.24)], 4326), target="EPSG:5490",
                           declared=None, path=Path("f.geojson"), layer=None, report=report)
    x, y = out.geometry.iloc[0].x, out.geometry.iloc[0].y
    # UTM 20N: central meridian 63°W, so 1.47° east of it, ~157 km at this latitude.
    assert 655_000 < x < 660_000 and 1_790_000 < y < 1_800_000
    # Metropolitan data in an overseas territory: nothing falls in its projection.
    with pytest.raises(CRSError, match="domaine de la projection du territoire"):
        to_territory_crs(_points([(2.35, 48.85)], 4326), target="EPSG:5490", declared=None,
                         path=Path("f.geojson"), layer=None, report=SourceReport("x", [], "x"))
