"""QGIS styles, project and lineage stored in the GeoPackage; GDAL's validator; QGIS itself."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from publication_fixtures import (
    analysed,
    sample_gpkg,
    sample_layers,
    without_analysis,
    write_gpkg,
)

from observatoire.errors import BuildError
from observatoire.publish.fields import field_alias, value_map
from observatoire.publish.qgis import (
    PROJECT_NAME,
    STYLE_NAME,
    finalize_gpkg,
    project_xml,
    qgz_bytes,
    read_project,
    spatial_tables,
)
from observatoire.readers.etablissements import ETABLISSEMENTS
from observatoire.schema import GISEMENTS, LAYERS

SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("qgis_source"))
    out = tmp_path_factory.mktemp("qgis")
    territory = replace(territory, output_dir=out)
    gpkg = write_gpkg(analysed(layers), territory, reports)
    return gpkg, territory


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The sample without analysis columns: styles must still be written."""
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("qgis_brut_source"))
    out = tmp_path_factory.mktemp("qgis_brut")
    territory = replace(territory, output_dir=out)
    return write_gpkg(without_analysis(layers), territory, reports)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The sample with the analysis of the build itself."""
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("qgis_reel_source"))
    territory = replace(territory, output_dir=tmp_path_factory.mktemp("qgis_reel"))
    return write_gpkg(layers, territory, reports), layers


def styles(gpkg: Path) -> dict[str, ET.Element]:
    with sqlite3.connect(gpkg) as con:
        rows = con.execute("SELECT f_table_name, styleQML FROM layer_styles "
                           "WHERE useAsDefault = 1").fetchall()
    return {name: ET.fromstring(qml.split("\n", 1)[1]) for name, qml in rows}


def test_every_spatial_layer_has_one_default_style(built):
    gpkg, _ = built
    with sqlite3.connect(gpkg) as con:
        geometry = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        rows = con.execute("SELECT f_table_catalog, f_table_schema, f_table_name, "
                           "f_geometry_column, styleName, useAsDefault FROM layer_styles"
                           ).fetchall()
        kind = con.execute("SELECT data_type FROM gpkg_contents "
                           "WHERE table_name = 'layer_styles'").fetchone()
        count = con.execute("SELECT feature_count FROM gpkg_ogr_contents "
                            "WHERE table_name = 'layer_styles'").fetchone()
    assert sorted(r[2] for r in rows) == sorted(geometry)
    for catalog, schema, table, column, name, default in rows:
        # NULL catalog or schema: QGIS would ignore the row.
        assert (catalog, schema, name, default) == ("", "", STYLE_NAME, 1)
        assert geometry[table] == column
    assert kind == ("attributes",)
    assert count == (len(rows),)


def test_styles_follow_the_columns(built):
    qml = styles(built[0])
    parcelles = qml["parcelles"].find("renderer-v2")
    assert parcelles.get("type") == "categorizedSymbol"
    assert parcelles.get("attr") == "classe_industrie"  # first profile of the sample
    cats = [(c.get("value"), c.get("label")) for c in parcelles.iter("category")]
    # "" = excluded (NULL); "non déterminée": scored on too few criteria for a class.
    assert [v for v, _ in cats] == ["A", "B", "C", "D", "E", "non déterminée", ""]
    assert cats[-2][1] == "Non déterminée — données insuffisantes"
    assert cats[-1][1] == "Exclue"
    zae = qml["zae"].find("renderer-v2")
    assert zae.get("type") == "RuleRenderer"
    filters = [r.get("filter") for r in zae.iter("rule")]
    assert filters[0] == '"taux_vacance" >= 0 AND "taux_vacance" < 0.05'
    assert filters[-1] == "ELSE"
    assert qml["zae"].get("labelsEnabled") == "1"
    label = qml["zae"].find("labeling/settings/text-style").get("fieldName")
    assert "format_number(\"taux_vacance\" * 100, 0)" in label
    friches = qml["friches"].find("renderer-v2")
    assert friches.get("attr") == "site_statut"
    assert {c.get("value") for c in friches.iter("category")} >= {
        "friche sans projet", "friche avec projet", "friche potentielle", "friche reconvertie"}
    assert friches.find("symbols/symbol").get("type") == "marker"
    assert qml["zae_unites"].find("renderer-v2").get("attr") == "occupation"
    assert qml["routes"].find("renderer-v2").get("attr") == "classe"
    assert qml["routes"].find("renderer-v2/symbols/symbol").get("type") == "line"
    assert qml["gisements"].find("renderer-v2").get("type") == "singleSymbol"
    # Both forms of symbol-layer properties, as QGIS 3.22 writes them.
    layer = qml["parcelles"].find("renderer-v2/symbols/symbol/layer")
    assert layer.find("Option") is not None and layer.find("prop") is not None


def test_styles_without_analysis_columns(raw):
    qml = styles(raw)
    assert qml["parcelles"].find("renderer-v2").get("type") == "singleSymbol"
    assert qml["zae"].find("renderer-v2").get("type") == "singleSymbol"
    assert qml["zonage"].find("renderer-v2").get("attr") == "typezone"
    assert not {"gisements", "zae_unites", "unites_foncieres"} & set(qml)


def test_styles_of_the_real_analysis(real):
    gpkg, layers = real
    qml = styles(gpkg)
    assert set(qml) >= {"parcelles", "gisements", "zae_unites", "unites_foncieres", "zae"}
    parcelles = qml["parcelles"].find("renderer-v2")
    assert parcelles.get("attr") == "classe_industrie"
    assert {c.get("value") for c in parcelles.iter("category")} >= set(
        layers["parcelles"]["classe_industrie"].dropna())
    assert qml["zae"].find("renderer-v2").get("type") == "RuleRenderer"  # taux_vacance
    assert qml["zae_unites"].find("renderer-v2").get("attr") == "occupation"


def test_project_is_stored_as_qgis_stores_it(built):
    gpkg, _ = built
    with sqlite3.connect(gpkg) as con:
        name, metadata, content = con.execute(
            "SELECT name, metadata, content FROM qgis_projects").fetchone()
        project = ET.fromstring(read_project(con).split("\n", 1)[1])
        tables = {t.name for t in spatial_tables(con)}
    assert name == PROJECT_NAME
    assert set(json.loads(metadata)) == {"last_modified_time", "last_modified_user"}
    assert bytes.fromhex(content)[:2] == b"PK"  # hex text of a .qgz (zip) archive
    layers = {m.findtext("id"): m for m in project.iter("maplayer")}
    sources = {m.findtext("datasource") for m in layers.values()}
    # friches_surfaces is empty in the sample but typed: it stays in the project.
    assert sources == {f"./observatoire.gpkg|layername={t}" for t in tables}
    # The project's layer tree (the atlas's legend has its own, inside the layout).
    tree = project.find("layer-tree-group")
    tree_ids = [n.get("id") for n in tree.iter("layer-tree-layer")]
    order = [n.get("id") for n in project.find("layerorder")]
    assert sorted(tree_ids) == sorted(layers) and order == tree_ids
    groups = [g.get("name") for g in project.find("layer-tree-group").findall("layer-tree-group")]
    assert groups == ["Friches", "Analyse", "Zones d'activités", "Référentiels"]
    names = [n.get("name") for n in tree.iter("layer-tree-layer")]
    assert names[:3] == ["Friches", "Friches (périmètres)", "Gisements fonciers"]
    visible = {n.get("name"): n.get("checked") for n in tree.iter("layer-tree-layer")}
    assert visible["Zonage du PLU"] == "Qt::Unchecked"
    assert visible["Friches (périmètres)"] == "Qt::Unchecked"  # empty
    assert visible["Parcelles — score « Industrie »"] == "Qt::Checked"
    assert project.findtext("projectCrs/spatialrefsys/authid") == "EPSG:2154"
    assert project.find("properties/Paths/Absolute").text == "false"
    parcelles = next(m for m in layers.values()
                     if m.findtext("datasource").endswith("=parcelles"))
    assert parcelles.find("renderer-v2").get("attr") == "classe_industrie"


def test_project_xml_escapes_every_value(built):
    gpkg, _ = built
    hostile = "Gennes <b>&amp; \"'</b> ${x}"
    with sqlite3.connect(gpkg) as con:
        tables = spatial_tables(con)
    from observatoire.publish.qgis import layer_style

    xml = project_xml(tables, {t.name: layer_style(t) for t in tables}, title=hostile,
                      gpkg_name="observatoire.gpkg", crs="EPSG:2154")
    root = ET.fromstring(xml.split("\n", 1)[1])
    assert root.findtext("title") == hostile and root.get("projectname") == hostile
    assert qgz_bytes(xml) == qgz_bytes(xml)  # same input, same archive


def test_lineage_in_gpkg_contents(built):
    gpkg, _ = built
    with sqlite3.connect(gpkg) as con:
        desc = dict(con.execute("SELECT table_name, description FROM gpkg_contents"))
    # Each layer's description (observatoire/schema.py), then its lineage.
    assert desc["parcelles"].startswith("Parcelles cadastrales normalisées. Sources : ")
    assert "Sources : parcel.gpkg (bdparcellaire, lu le " in desc["parcelles"]
    assert "cartofriches_subset_gennes_25267_5km.geojson (cartofriches" in desc["friches"]
    # Each source credits its producer and the date of its data (Licence Ouverte 2.0).
    assert " ; producteur : IGN, DGFiP (BD PARCELLAIRE), données du 2021-11-23)" in \
        desc["parcelles"]
    assert "producteur : Cerema (Cartofriches), données du 2022-10-10)" in desc["friches"]
    assert desc["gisements"].startswith(f"{GISEMENTS.description}. Sources : ")
    for name, schema in LAYERS.items():
        assert desc[name].startswith(f"{schema.description}.")
        assert desc[name].count("Produit par l'observatoire") == 1
    assert "Produit par l'observatoire" in desc["zonage"] and "EPSG:2154" in desc["zonage"]


def test_finalize_twice_replaces_rows(built, tmp_path):
    gpkg, territory = built
    copy = tmp_path / "observatoire.gpkg"
    shutil.copy(gpkg, copy)
    with sqlite3.connect(copy) as con:
        before = con.execute("SELECT count(*) FROM layer_styles").fetchone()[0]
        finalize_gpkg(con, {}, territory)
        after = con.execute("SELECT count(*), sum(useAsDefault) FROM layer_styles").fetchone()
        projects = con.execute("SELECT count(*) FROM qgis_projects").fetchone()[0]
        desc = con.execute("SELECT description FROM gpkg_contents "
                           "WHERE table_name = 'routes'").fetchone()[0]
    assert after == (before, before) and projects == 1
    assert desc.count("Produit par l'observatoire") == 1


def test_finalize_refuses_a_file_without_spatial_layer(tmp_path, built):
    _, territory = built
    with sqlite3.connect(tmp_path / "vide.gpkg") as con:
        con.execute("CREATE TABLE gpkg_contents (table_name TEXT, data_type TEXT, "
                    "min_x REAL, min_y REAL, max_x REAL, max_y REAL)")
        con.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT, "
                    "geometry_type_name TEXT, srs_id INTEGER)")
        with pytest.raises(BuildError, match="aucune couche spatiale"):
            finalize_gpkg(con, {}, territory)


def system_python_with(module: str) -> Path:
    if not SYSTEM_PYTHON.exists():
        pytest.skip("/usr/bin/python3 absent")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], capture_output=True,
                           check=False)
    if probe.returncode:
        pytest.skip(f"module {module} absent du Python système (paquet Debian à installer)")
    return SYSTEM_PYTHON


def test_gdal_validator_finds_nothing(built, raw):
    python = system_python_with("osgeo_utils.samples.validate_gpkg")
    for gpkg in (built[0], raw):
        run = subprocess.run([python, "-m", "osgeo_utils.samples.validate_gpkg", "--extra",
                              "--warning-as-error", str(gpkg)], capture_output=True, text=True,
                             check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.strip() == "" and run.stderr.strip() == ""


QGIS_CHECK = textwrap.dedent("""
    import json, os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from qgis.core import (QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings,
                           QgsProject, QgsRectangle, QgsVectorLayer)
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor
    app = QgsApplication([], False)
    app.initQgis()
    gpkg, png = sys.argv[1], sys.argv[2]
    project = QgsProject.instance()
    out = {"read": project.read(f"geopackage:{gpkg}?projectName=observatoire"), "layers": {},
           "fields": {}}
    out["crs"] = [project.crs().authid(), project.crs().isValid()]
    for layer in project.mapLayers().values():
        renderer = layer.renderer()
        name = layer.source().split("layername=")[-1]
        out["layers"][name] = [
            layer.isValid(), layer.featureCount(), renderer.type() if renderer else None,
            layer.labelsEnabled()]
        out["fields"][name] = {
            f.name(): [f.alias(), layer.editorWidgetSetup(i).type(),
                       layer.editorWidgetSetup(i).config().get("map")]
            for i, f in enumerate(layer.fields())}
    defaults = {}
    for name in out["layers"]:
        layer = QgsVectorLayer(f"{gpkg}|layername={name}", name, "ogr")
        message, ok = layer.loadDefaultStyle()
        defaults[name] = [ok, layer.renderer().type() if layer.renderer() else None,
                          [f.name() for f in layer.fields() if not f.alias()]]
    out["defaults"] = defaults
    root = project.layerTreeRoot()
    settings = QgsMapSettings()
    settings.setLayers([l for l in root.layerOrder() if root.findLayer(l.id()).isVisible()])
    settings.setDestinationCrs(project.crs())
    settings.setExtent(QgsRectangle(project.viewSettings().defaultViewExtent()))
    settings.setOutputSize(QSize(600, 450))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(png, "png")
    white = QColor(255, 255, 255).rgb()
    out["painted"] = sum(1 for x in range(0, 600, 5) for y in range(0, 450, 5)
                         if image.pixel(x, y) != white)
    out["errors"] = [e.message for e in job.errors()]
    print(json.dumps(out), flush=True)
    os._exit(0)  # QGIS 3.22 may crash while tearing down; the result is printed
""")


def qgis_check(gpkg: Path, tmp_path: Path) -> dict:
    """Open the project stored in ``gpkg`` with the real QGIS (Debian's), as a user would."""
    python = system_python_with("qgis.core")
    script = tmp_path / "verifier.py"
    script.write_text(QGIS_CHECK, encoding="utf-8")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    run = subprocess.run([python, str(script), str(gpkg), str(tmp_path / "rendu.png")],
                         capture_output=True, text=True, check=False, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_qgis_opens_the_stored_project_styled(built, tmp_path):
    out = qgis_check(built[0], tmp_path)
    assert out["read"] is True and out["errors"] == []
    # The territory's CRS, as QGIS 3.22 reads it (a WGS 84 basemap then lines up).
    assert out["crs"] == ["EPSG:2154", True]
    layers = out["layers"]
    assert layers["parcelles"] == [True, 828, "categorizedSymbol", False]
    assert layers["zae"] == [True, 1, "RuleRenderer", True]
    assert layers["friches"][:3] == [True, 8, "categorizedSymbol"]
    assert layers["gisements"][:3] == [True, 3, "singleSymbol"]
    assert all(valid and renderer for valid, _, renderer, _ in layers.values())
    assert all(ok and renderer and not unnamed
               for ok, renderer, unnamed in out["defaults"].values())
    # The parcels fill most of the default view.
    assert out["painted"] > 0.4 * (600 // 5) * (450 // 5)


@pytest.mark.slow
def test_qgis_reads_the_sample_build_crs_aliases_and_value_maps(tmp_path):
    """The GeoPackage of the real sample build, opened in QGIS 3.22 as a new user would."""
    out = qgis_check(sample_gpkg(), tmp_path)
    assert out["read"] is True and out["errors"] == []
    assert out["crs"] == ["EPSG:2154", True]
    fields = out["fields"]
    assert set(fields) >= {"parcelles", "zae", "zae_unites", "friches", "gisements", "routes"}
    unnamed = {name: [f for f, (alias, _, _) in layer.items() if not alias]
               for name, layer in fields.items()}
    assert all(not missing for missing in unnamed.values()), unnamed
    assert fields["parcelles"]["idu"][0] == "Identifiant de parcelle (IDU)"
    assert fields["parcelles"]["score_industrie"][0] == "Score « Industrie » (0 à 100)"
    assert fields["routes"]["numero"][0] == "Numéro de route"

    def labels(layer: str, field: str) -> dict[str, str]:
        alias, widget, entries = fields[layer][field]
        assert widget == "ValueMap", (layer, field, widget)
        # QGIS keeps a value map as a list of {label: value}.
        return {value: label for entry in entries for label, value in entry.items()}

    assert labels("zae_unites", "statut_vacance")["présumée vacante"] == "Présumée vacante"
    assert labels("zae", "zae_origine")["derivee_plu"] == "Dérivée des zones d'activités du PLU"
    classes = labels("parcelles", "classe_industrie")
    assert classes["A"] == "A — très favorable" and classes["exclue"] == "Exclue"
    assert classes["non déterminée"] == "Non déterminée"
    assert labels("routes", "classe")["principale"] == "Route principale"
    assert fields["parcelles"]["surface_m2"][1] != "ValueMap"
    assert all(not unnamed for _, _, unnamed in out["defaults"].values())


def test_stored_project_enables_the_territory_crs():
    with sqlite3.connect(sample_gpkg()) as con:
        project = ET.fromstring(read_project(con).split("\n", 1)[1])
    assert project.findtext("properties/SpatialRefSys/ProjectionsEnabled") == "1"
    assert project.find("properties/SpatialRefSys/ProjectionsEnabled").get("type") == "int"
    assert project.findtext("properties/SpatialRefSys/ProjectCrs") == "EPSG:2154"
    assert project.findtext("projectCrs/spatialrefsys/authid") == "EPSG:2154"


def test_every_written_field_has_an_alias():
    """Every column of every layer of the sample build, in its QML style and in the project."""
    gpkg = sample_gpkg()
    with sqlite3.connect(gpkg) as con:
        tables = spatial_tables(con)
        project = ET.fromstring(read_project(con).split("\n", 1)[1])
    qml = styles(gpkg)
    layers = {m.findtext("datasource").split("layername=")[-1]: m
              for m in project.iter("maplayer")}
    assert len(tables) >= 9
    for table in tables:
        columns = [c for c in table.columns if c != table.geometry_column]
        for where in (qml[table.name], layers[table.name]):
            aliases = {a.get("field"): a.get("name") for a in where.iter("alias")}
            assert list(aliases) == columns, table.name
            missing = [c for c, alias in aliases.items() if not alias]
            assert not missing, f"{table.name} : champs sans alias {missing}"


def test_every_canonical_field_has_an_alias():
    missing = [(schema.name, f.name) for schema in [*LAYERS.values(), ETABLISSEMENTS]
               for f in schema.fields if field_alias(schema.name, f.name) is None]
    assert missing == []
    # Fields being added to the layers (issue #13), named in advance.
    for layer, name in (("friches", "dans_territoire"), ("friches", "idu_absents"),
                        ("friches", "appariement"), ("friches", "zae_id"),
                        ("zae", "nb_friches"), ("zae", "surface_friches_m2")):
        assert field_alias(layer, name), (layer, name)
    assert field_alias("parcelles", "nouvelle_colonne") is None  # no silent fallback
    assert field_alias("parcelles", "dist_route_autoroute_m") == "Distance à une autoroute (m)"
    assert field_alias("parcelles", "part_contrainte_ppri",
                       constraints={"part_contrainte_ppri": "PPRI du Doubs"}) == (
        "Part sous la contrainte « PPRI du Doubs »")


def test_value_maps_cover_the_coded_values():
    from observatoire.analysis.zae_inventory import OCCUPATIONS, STATUTS
    from observatoire.publish.assets import SCORE_CLASSES

    assert list(value_map("zae_unites", "statut_vacance")) == list(STATUTS)
    assert set(value_map("zae_unites", "occupation")) == set(OCCUPATIONS)
    assert set(value_map("zae", "zae_origine")) == {"cnig", "couche", "derivee_plu"}
    assert set(value_map("parcelles", "classe_logistique")) == {
        *SCORE_CLASSES, "exclue", "non déterminée"}
    assert value_map("parcelles", "surface_m2") is None
    assert value_map("zae", "classe") is None  # a road class only in the roads


def test_a_missing_alias_is_logged(built, caplog):
    from observatoire.publish.qgis import SpatialTable, layer_style

    table = SpatialTable("parcelles", "geom", "MULTIPOLYGON", 2154,
                         ("fid", "geom", "idu", "colonne_inconnue"), None, 0)
    with caplog.at_level("WARNING", logger="observatoire.publish.qgis"):
        style = layer_style(table)
    assert "colonne_inconnue" in caplog.text and "sans alias" in caplog.text
    aliases = {a.get("field"): a.get("name") for a in style.fields[1]}
    assert aliases == {"fid": "Identifiant interne", "idu": "Identifiant de parcelle (IDU)",
                       "colonne_inconnue": ""}
