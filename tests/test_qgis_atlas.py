"""The atlas of the ZAE in the QGIS project: its XML, and QGIS 3.22 printing its sheets."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import textwrap
import unicodedata
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from publication_fixtures import (
    HOSTILE,
    PERSON,
    SAMPLE,
    analysed,
    sample_gpkg,
    sample_layers,
    without_analysis,
    write_gpkg,
)
from test_qgis import system_python_with

from observatoire.config import load_territory
from observatoire.publish.qgis import finalize_gpkg, read_project
from observatoire.publish.qgis_atlas import ATLAS_NAME, ATLAS_STYLE

# Every test builds a GeoPackage or runs the real QGIS.
pytestmark = pytest.mark.slow

#: Identifiers of the zones added by :func:`several_zones`.
ZONE_2, ZONE_3 = "25267_SITE-ECO_00002", "25267_SITE-ECO_00003"
#: Name given to the commune of the zones of :func:`several_zones`.
COMMUNE = "L'Isle-d'Abeau <b>\"[% 1 + 1 %]\"</b>"
#: Name given to the territory of :func:`several_zones`.
TERRITOIRE = "Gennes [% @atlas_pagename %] 50 %]"


def project_of(gpkg: Path) -> ET.Element:
    with sqlite3.connect(gpkg) as con:
        return ET.fromstring(read_project(con).split("\n", 1)[1])


def layout_of(project: ET.Element) -> ET.Element:
    layouts = project.findall("Layouts/Layout")
    assert [layout.get("name") for layout in layouts] == [ATLAS_NAME]
    return layouts[0]


def items(layout: ET.Element) -> dict[str, ET.Element]:
    return {item.get("id"): item for item in layout.findall("LayoutItem")}


def several_zones(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """The hand-made analysis (:func:`analysed`) and two more zones, away from the first.

    Zone 2 holds 45 land units (one parcel each: 30 vacant, 15 occupied), enough for its
    table to run over two pages; zone 3 holds 2 vacant units.
    """
    out = analysed(layers)
    p, zae, units = out["parcelles"], out["zae"], out["zae_unites"]
    outside = p[~p.geometry.intersects(zae.geometry.iloc[0])].sort_values("idu")
    zones = []
    rows = [units]
    for zae_id, name, parcels in ((ZONE_2, "Zone test deux", outside.iloc[:45]),
                                  (ZONE_3, "Zone test trois", outside.iloc[45:47])):
        n = len(parcels)
        vacant = [k < 30 for k in range(n)]
        zone = zae.iloc[[0]].copy()
        zone["zae_id"], zone["zae_nom"] = zae_id, name
        zone["nb_unites"], zone["nb_unites_vacantes"] = n, sum(vacant)
        zone["taux_vacance"] = sum(vacant) / n
        zone["geometry"] = [shapely.multipolygons(shapely.get_parts(
            shapely.union_all(parcels.geometry.values)))]
        zones.append(zone)
        rows.append(gpd.GeoDataFrame({
            "zae_id": zae_id,
            "uf_id": [f"UF-{zae_id[-1]}-{k:02d}" for k in range(n)],
            "idus": parcels["idu"].to_numpy(),
            "surface_m2": parcels["surface_m2"].to_numpy(),
            "part_dans_zae": 1.0,
            "coupee_par_limite": False,
            "proprietaire_type": "personne morale",
            "proprietaire_nom": "SCI DES ZONES",
            "proprietaire_siren": None,
            "occupants": None,
            "nb_occupants": [0 if v else 1 for v in vacant],
            "occupation": ["vacante" if v else "occupée" for v in vacant],
            "statut_vacance": ["vacante" if v else "non vacante" for v in vacant],
            "raison_vacance": "aucun établissement actif",
        }, geometry=parcels.geometry.to_numpy(), crs=p.crs))
    out["zae"] = gpd.GeoDataFrame(pd.concat([zae, *zones], ignore_index=True),
                                  geometry="geometry", crs=zae.crs)
    out["zae_unites"] = gpd.GeoDataFrame(pd.concat(rows, ignore_index=True),
                                         geometry="geometry", crs=units.crs)
    return out


def no_zone(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """The hand-made analysis with neither zone nor land unit of a zone."""
    out = analysed(layers)
    out["zae"] = out["zae"].iloc[0:0]
    out["zae_unites"] = out["zae_unites"].iloc[0:0]
    return out


def build(tmp_path_factory, name: str, make, territoire: str | None = None,
          **options) -> Path:
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp(f"{name}_source"))
    territory = replace(territory, output_dir=tmp_path_factory.mktemp(name),
                        name=territoire or territory.name,
                        options=replace(territory.options, **options))
    return write_gpkg(make(layers), territory, reports)


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    return build(tmp_path_factory, "atlas_main", analysed)


@pytest.fixture(scope="module")
def three_zones(tmp_path_factory):
    # Names with quotes, markup and QGIS's expression marks (``[options.noms_communes]``).
    return build(tmp_path_factory, "atlas_trois", several_zones, territoire=TERRITOIRE,
                 noms_communes={"25267": COMMUNE})


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    return build(tmp_path_factory, "atlas_vide", no_zone)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return build(tmp_path_factory, "atlas_brut", without_analysis)


# --------------------------------------------------------------------------- the XML


def test_layout_atlas_over_the_zones(hand_made):
    project = project_of(hand_made)
    layout = layout_of(project)
    atlas = layout.find("Atlas")
    assert atlas.get("enabled") == "1"
    assert atlas.get("coverageLayer") == "observatoire_zae"
    assert atlas.get("coverageLayerSource") == "./observatoire.gpkg|layername=zae"
    assert atlas.get("sortKey") == '"zae_id"'
    ids = {m.findtext("id") for m in project.iter("maplayer")}
    assert "observatoire_zae" in ids and "observatoire_zae_unites" in ids
    found = items(layout)
    assert {"atlas", "titre", "sous-titre", "carte", "nord", "echelle", "legende", "chiffres",
            "sources", "titre-unites", "unites-cadre"} <= set(found)
    carte = found["carte"]
    assert carte.find("AtlasMap").attrib == {"atlasDriven": "1", "scalingMode": "2",
                                             "margin": "0.12"}
    assert (carte.get("followPreset"), carte.get("followPresetName")) == ("true", ATLAS_NAME)
    # QGIS widens a map item to the ratio of the extent it reads: both are the same.
    ext = carte.find("Extent").attrib
    width, height = (float(v) for v in carte.get("size").split(",")[:2])
    ratio = (float(ext["xmax"]) - float(ext["xmin"])) / (float(ext["ymax"]) - float(ext["ymin"]))
    assert ratio == pytest.approx(width / height)
    for linked in ("nord", "echelle"):
        assert found[linked].get("mapUuid") == carte.get("uuid")
    assert found["legende"].get("map_uuid") == carte.get("uuid")
    assert found["nord"].get("file") == ":/images/north_arrows/layout_default_north_arrow.svg"
    table = layout.find("LayoutMultiFrame")
    assert table.get("vectorLayer") == "observatoire_zae_unites"
    assert table.get("filterFeatures") == "true"
    assert table.get("featureFilter") == "\"zae_id\" = attribute(@atlas_feature, 'zae_id')"
    assert found["unites-cadre"].get("multiFrame") == table.get("uuid")
    assert [c.get("uuid") for c in table.findall("childFrame")] == [
        found["unites-cadre"].get("uuid")]
    # The frame is on page 2, within the margins (the pages are 10 mm apart).
    assert found["unites-cadre"].get("position") == "11,326,mm"
    assert found["unites-cadre"].get("positionOnPage") == "11,19,mm"
    uuids = [i.get("uuid") for i in layout.iter() if i.tag in ("LayoutItem", "LayoutMultiFrame")]
    assert len(uuids) == len(set(uuids))


def test_layout_texts(hand_made):
    found = items(layout_of(project_of(hand_made)))
    assert found["titre"].get("labelText") == '[% coalesce("zae_nom", "zae_id") %]'
    subtitle = found["sous-titre"].get("labelText")
    assert "map('25267', 'Gennes')" in subtitle and '"comm_insee"' in subtitle
    figures = found["chiffres"].get("labelText")
    assert "Taux de vacance (unités au statut connu) : [% coalesce(format_number(" \
           "\"taux_vacance\" * 100, 1, 'fr') || ' %', '—') %]" in figures
    assert "aggregate('observatoire_gisements', 'count'" in figures
    sources = found["sources"].get("labelText")
    assert "friches : Cerema (Cartofriches), données du 10 octobre 2022" in sources
    assert "parcelles : IGN, DGFiP (BD PARCELLAIRE), données du 23 novembre 2021" in sources
    assert "Les personnes physiques ne sont jamais nommées" in sources


def test_proprietaires_are_named_only_when_legal_entities(hand_made):
    table = layout_of(project_of(hand_made)).find("LayoutMultiFrame")
    columns = {c.get("heading"): c.get("attribute") for c in table.find("displayColumns")}
    assert list(columns) == ["Unité foncière", "Parcelles", "Surface", "Propriétaire",
                             "Établissements", "Statut de vacance", "Motif"]
    owner = columns["Propriétaire"]
    assert owner.startswith("CASE WHEN \"proprietaire_type\" = 'personne morale' THEN")
    assert owner.count('"proprietaire_nom"') == 1
    # Occupants are counted, never listed.
    assert not any("occupants\"" in a and "nb_occupants" not in a for a in columns.values())
    widths = [float(c.get("width")) for c in table.find("displayColumns")]
    assert sum(widths) + len(widths) * 2 * 0.8 + (len(widths) + 1) * 0.15 == \
        pytest.approx(188, abs=0.1)


def test_atlas_styles_and_theme(hand_made):
    project = project_of(hand_made)
    layers = {m.findtext("id"): m for m in project.iter("maplayer")}
    zae = layers["observatoire_zae"].find("map-layer-style-manager")
    assert zae.get("current") == "default"
    assert [s.get("name") for s in zae] == [ATLAS_STYLE, "default"]
    rules = [(r.get("filter"), r.get("label")) for r in zae.iter("rule")]
    assert rules == [("$id = @atlas_featureid", "Limite de la zone"),
                     ("ELSE", "Autre zone d'activités")]
    units = layers["observatoire_zae_unites"].find("map-layer-style-manager")
    renderer = units.find("map-layer-style/qgis/renderer-v2")
    assert renderer.get("attr") == "statut_vacance"
    assert [c.get("value") for c in renderer.iter("category")] == [
        "vacante", "présumée vacante", "présumée non vacante", "non vacante", ""]
    # The atlas style keeps the layer's aliases.
    aliases = {a.get("field"): a.get("name")
               for a in units.find("map-layer-style/qgis/aliases")}
    assert aliases["statut_vacance"] == "Statut de vacance"
    theme = project.find("visibility-presets/visibility-preset")
    assert theme.get("name") == ATLAS_NAME
    assert {(t.get("id"), t.get("style")) for t in theme} == {
        ("observatoire_friches", "default"), ("observatoire_friches_surfaces", "default"),
        ("observatoire_gisements", "default"), ("observatoire_zae", ATLAS_STYLE),
        ("observatoire_zae_unites", ATLAS_STYLE), ("observatoire_routes", "default")}


def test_layout_without_analysis(raw):
    """Without the inventory: no units (no table, no page 2), figures from the fields there."""
    layout = layout_of(project_of(raw))
    assert layout.find("LayoutMultiFrame") is None
    assert len(layout.findall("PageCollection/LayoutItem")) == 1
    found = items(layout)
    assert "titre-unites" not in found
    figures = found["chiffres"].get("labelText")
    assert figures.startswith("Surface de la zone : [% ")
    assert "taux_vacance" not in figures and "nb_occupants" not in figures
    theme = project_of(raw).find("visibility-presets/visibility-preset")
    assert "observatoire_zae_unites" not in {t.get("id") for t in theme}


def test_project_xml_is_stable(hand_made, tmp_path):
    """Same GeoPackage, same project (stable identifiers of the layout's items)."""
    copy = tmp_path / "observatoire.gpkg"
    shutil.copy(hand_made, copy)
    territory = load_territory(SAMPLE, output_dir=tmp_path)
    with sqlite3.connect(copy) as con:
        before = read_project(con)
        finalize_gpkg(con, {}, territory)
        after = read_project(con)
    assert before == after


# --------------------------------------------------------------------------- QGIS 3.22

ATLAS_CHECK = textwrap.dedent("""
    import json, os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from qgis.core import (QgsApplication, QgsLayoutExporter, QgsLayoutItemAttributeTable,
                           QgsLayoutItemLegend, QgsLayoutItemMap, QgsProject,
                           QgsRenderContext)
    app = QgsApplication([], False)
    app.initQgis()
    gpkg, out_dir = sys.argv[1], sys.argv[2]
    project = QgsProject.instance()
    out = {"read": project.read(f"geopackage:{gpkg}?projectName=observatoire")}
    layouts = project.layoutManager()
    out["layouts"] = [layout.name() for layout in layouts.layouts()]
    layout = layouts.layoutByName("Atlas des ZAE")
    atlas = layout.atlas()
    coverage = atlas.coverageLayer()
    out["atlas"] = [atlas.enabled(), coverage.source().split("layername=")[-1],
                    coverage.isValid(), atlas.updateFeatures()]
    out["items"] = sorted(item.id() for item in layout.items()
                          if hasattr(item, "id") and item.id())
    out["maps"] = [[m.atlasDriven(), m.atlasMargin(), m.followVisibilityPresetName()]
                   for m in layout.items() if isinstance(m, QgsLayoutItemMap)]
    out["tables"] = [[t.vectorLayer().source().split("layername=")[-1], t.filterFeatures(),
                      t.featureFilter(), [c.heading() for c in t.columns()]]
                     for t in layout.multiFrames() if isinstance(t, QgsLayoutItemAttributeTable)]
    out["legends"] = [[legend.legendFilterByMapEnabled(), legend.linkedMap().id()]
                      for legend in layout.items() if isinstance(legend, QgsLayoutItemLegend)]
    out["themes"] = project.mapThemeCollection().mapThemes()
    out["styles"] = {layer.source().split("layername=")[-1]: layer.styleManager().styles()
                     for layer in project.mapLayers().values()}
    exporter = QgsLayoutExporter(layout)
    settings = QgsLayoutExporter.PdfExportSettings()
    # As QGIS desktop does: the layout's own choice of text format.
    out["pdfTextFormat"] = int(layout.customProperty("pdfTextFormat", -1))
    settings.textRenderFormat = QgsRenderContext.TextRenderFormat(out["pdfTextFormat"])
    out["sheets"] = []
    atlas.beginRender()
    for i in range(atlas.count()):
        atlas.seekTo(i)
        path = os.path.join(out_dir, atlas.currentFilename() + ".pdf")
        result = exporter.exportToPdf(path, settings)
        out["sheets"].append([atlas.nameForPage(i), path, result,
                              layout.pageCollection().pageCount()])
    atlas.endRender()
    if not atlas.count():
        path = os.path.join(out_dir, "sans_zone.pdf")
        out["sheets"].append([None, path, exporter.exportToPdf(path, settings),
                              layout.pageCollection().pageCount()])
    print(json.dumps(out), flush=True)
    os._exit(0)  # QGIS 3.22 may crash while tearing down; the result is printed
""")


def print_atlas(gpkg: Path, tmp_path: Path) -> dict:
    """Open the project stored in ``gpkg`` in QGIS 3.22 and print every sheet of the atlas."""
    python = system_python_with("qgis.core")
    for tool in ("pdfinfo", "pdftotext"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            pytest.skip(f"{tool} absent (paquet Debian poppler-utils)")
    script = tmp_path / "atlas.py"
    script.write_text(ATLAS_CHECK, encoding="utf-8")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    out_dir = tmp_path / "atlas"
    out_dir.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    run = subprocess.run([python, str(script), str(gpkg), str(out_dir)], capture_output=True,
                         text=True, check=False, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def pdf_info(path: str) -> dict[str, str]:
    run = subprocess.run(["pdfinfo", path], capture_output=True, text=True, check=True)
    return {k.strip(): v.strip() for k, v in
            (line.split(":", 1) for line in run.stdout.splitlines() if ":" in line)}


def pdf_pages(path: str) -> list[str]:
    """Text of each page, ligatures and narrow spaces made plain (NFKC)."""
    run = subprocess.run(["pdftotext", "-layout", path, "-"], capture_output=True, text=True,
                         check=True)
    return [unicodedata.normalize("NFKC", page) for page in run.stdout.split("\f")[:-1]]


def zone_units(gpkg: Path, zae_id: str) -> list[str]:
    with sqlite3.connect(gpkg) as con:
        return [r[0] for r in con.execute(
            "SELECT uf_id FROM zae_unites WHERE zae_id = ? ORDER BY uf_id", (zae_id,))]


def french(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}".replace(",", " ").replace(".", ",")


def test_qgis_prints_the_sample_zone(tmp_path):
    """The real sample build: QGIS 3.22 opens the layout and prints the zone's sheet."""
    gpkg = sample_gpkg()
    with sqlite3.connect(gpkg) as con:
        zae_id, name, rate, units, vacant = con.execute(
            "SELECT zae_id, zae_nom, taux_vacance, nb_unites, nb_unites_vacantes "
            "FROM zae").fetchone()
    out = print_atlas(gpkg, tmp_path)
    assert out["read"] is True and out["layouts"] == [ATLAS_NAME]
    assert out["atlas"] == [True, "zae", True, 1]
    assert out["pdfTextFormat"] == 1  # text as text: the PDF can be searched
    assert {"titre", "carte", "legende", "echelle", "nord", "chiffres", "sources",
            "unites-cadre"} <= set(out["items"])
    assert out["maps"] == [[True, 0.12, ATLAS_NAME]]
    assert out["tables"] == [["zae_unites", True,
                              "\"zae_id\" = attribute(@atlas_feature, 'zae_id')",
                              ["Unité foncière", "Parcelles", "Surface", "Propriétaire",
                               "Établissements", "Statut de vacance", "Motif"]]]
    assert out["legends"] == [[True, "carte"]]
    assert ATLAS_NAME in out["themes"]
    assert ATLAS_STYLE in out["styles"]["zae"] and ATLAS_STYLE in out["styles"]["zae_unites"]
    [(page_name, pdf, result, pages)] = out["sheets"]
    assert page_name == name and result == 0 and pages == 2
    assert Path(pdf).name == f"atlas_zae_{zae_id}.pdf"
    info = pdf_info(pdf)
    assert info["Pages"] == "2" and info["Page size"].endswith("(A4)")
    first, second = pdf_pages(pdf)
    assert name in first and zae_id in first and "Commune : Gennes (25267)" in first
    assert f"Unités foncières : {units}" in first
    assert f"Unités vacantes ou présumées vacantes : {vacant}" in first
    assert f"Taux de vacance (unités au statut connu) : {french(rate * 100, 1)} %" in first
    # The legend lists what the map shows: the zone's boundary, its units' statuses.
    assert "Limite de la zone" in first and "Présumée vacante" in first
    assert "friches : Cerema (Cartofriches), données du 10 octobre 2022" in " ".join(
        first.split())
    expected = zone_units(gpkg, zae_id)
    assert len(expected) == units
    assert [u for u in expected if u in second] == expected
    assert f"Unités foncières de la zone — {name}" in second


def test_qgis_never_names_a_natural_person(hand_made, tmp_path):
    out = print_atlas(hand_made, tmp_path)
    [(page_name, pdf, result, _)] = out["sheets"]
    assert page_name == HOSTILE[2] and result == 0
    text = "\n".join(pdf_pages(pdf))
    assert HOSTILE[2] in text  # a hostile name is printed as text
    assert PERSON not in text
    # Cells wrap: the words of the legal entity's name are on their own line.
    assert "personne morale :" in text and "SCI DU PARC" in text
    assert "personne physique" in text


def test_qgis_prints_one_sheet_per_zone(three_zones, tmp_path):
    out = print_atlas(three_zones, tmp_path)
    assert out["atlas"][3] == 3
    sheets = {Path(pdf).stem: (name, result, pages) for name, pdf, result, pages in out["sheets"]}
    first = "25267_SITE-ECO_00001"
    assert list(sheets) == [f"atlas_zae_{z}" for z in (first, ZONE_2, ZONE_3)]
    assert [r for _, r, _ in sheets.values()] == [0, 0, 0]
    # Zone 2's 45 units run over two pages; zone 3 is back to two pages.
    assert [p for _, _, p in sheets.values()] == [2, 3, 2]
    for zae_id, count, vacant in ((first, 4, 2), (ZONE_2, 45, 30), (ZONE_3, 2, 2)):
        pdf = str(tmp_path / "atlas" / f"atlas_zae_{zae_id}.pdf")
        pages = pdf_pages(pdf)
        assert pdf_info(pdf)["Page size"].endswith("(A4)")
        flat = " ".join(pages[0].split())  # lines of the subtitle joined
        assert zae_id in flat and f"Commune : {COMMUNE} (25267)" in flat
        assert f"Atlas des zones d'activités — {TERRITOIRE}" in flat
        assert f"Unités foncières : {count}" in pages[0]
        assert f"Unités vacantes ou présumées vacantes : {vacant}" in pages[0]
        tables = "\n".join(pages[1:])
        mine = zone_units(three_zones, zae_id)
        assert len(mine) == count and all(u in tables for u in mine)
        others = [u for z in (first, ZONE_2, ZONE_3) if z != zae_id
                  for u in zone_units(three_zones, z)]
        assert not [u for u in others if u in tables]
    # Zone 1 is on zone 2's map, dashed: the legend (filtered by the map) says so.
    zone_2 = pdf_pages(str(tmp_path / "atlas" / f"atlas_zae_{ZONE_2}.pdf"))[0]
    assert "Limite de la zone" in zone_2 and "Autre zone d'activités" in zone_2
    assert "Non vacante" in zone_2 and "Vacante" in zone_2
    assert "1 000 m" in zone_2  # the scale bar, in French


def test_qgis_loads_the_layout_without_zones(empty, tmp_path):
    out = print_atlas(empty, tmp_path)
    assert out["read"] is True and out["layouts"] == [ATLAS_NAME]
    assert out["atlas"] == [True, "zae", True, 0]
    assert out["tables"][0][:3] == ["zae_unites", True,
                                    "\"zae_id\" = attribute(@atlas_feature, 'zae_id')"]
    [(_, pdf, result, _)] = out["sheets"]
    assert result == 0 and pdf_info(pdf)["Page size"].endswith("(A4)")
