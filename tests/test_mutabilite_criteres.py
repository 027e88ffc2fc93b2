"""Mutafriches criteria from the observatory's layers, on the sample's real parcels.

Expected values were computed by hand for the named parcels of Gennes (areas and
overlaps measured with an independent overlay, distances to the named roads).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import SAMPLE, shared_file

from observatoire.analysis.indicators import Constraint
from observatoire.analysis.mutabilite import NE_SAIT_PAS, evaluate, load_algorithm
from observatoire.analysis.mutabilite_criteres import (
    CriteriaLayers,
    avis_industrie,
    categorie_proprietaires,
    classify_zones,
    derive_criteria,
    distance_autoroute,
    distance_ite,
    etat_bati,
    friche_sites,
    grande_circulation,
    pollution,
    proprietaire_cnig,
    proprio_personne,
    proximite_commerces_services,
    raccordement_eau,
    risque_inondation,
    risques_technologiques,
    site_en_centre_ville,
    surface_bati,
    surface_site,
    type_proprietaire,
    valeur_architecturale,
    zonage_cnig,
    zonage_reglementaire,
    zonages_proteges,
    zone_to_mutafriches,
)
from observatoire.config import Source, load_territory
from observatoire.ingest import ingest
from observatoire.readers.friches import read_friches

CRS = "EPSG:2154"
#: Sample parcels: zone, area (m²), built area inside (m²), distance from the centroid to
#: the nearest road of importance 1 or 2 (m).
PARCELS = {
    "252670000B0627": ("UY", 8622.265, 616.34, 102.646),
    "25267000ZB0175": ("A", 10970.237, 1560.175, 35.607),
    "25267000AB0184": ("UB", 3732.616, 753.484, 254.523),
    "25267000ZA0071": ("AU2", 56729.384, 0.0, 262.707),
    "25267000AA0072": ("Ne", 4717.507, 0.0, 466.66),
}


@pytest.fixture(scope="module")
def layers():
    return ingest(load_territory(SAMPLE / "territoire.toml"))


@pytest.fixture(scope="module")
def sites(layers):
    p = layers.parcelles.set_index("idu").loc[list(PARCELS)]
    return gpd.GeoDataFrame({"site_id": list(PARCELS), "code_insee": "25267",
                             "idus": list(PARCELS)},
                            geometry=p.geometry.to_numpy(), crs=CRS)


def _values(d) -> list:
    return d.values.tolist()


def test_surface_site_is_the_area_rounded(sites):
    assert _values(surface_site(sites)) == [8622, 10970, 3733, 56729, 4718]


def test_surface_site_of_a_point_reads_the_friche_surface():
    pts = gpd.GeoDataFrame({"unite_fonciere_surface": [25999.01, None]},
                           geometry=[shapely.Point(0, 0), shapely.Point(1, 1)], crs=CRS)
    d = surface_site(pts)
    assert _values(d) == [25999, None]
    assert d.sources.iloc[0] == "unite_fonciere_surface de la source des friches"


def test_surface_bati_sums_the_buildings_inside(sites, layers):
    built = surface_bati(sites, layers.batiments)
    # 616.34, 1560.175, 753.484, none, a 6e-6 m² sliver.
    assert _values(built) == [616, 1560, 753, 0, 0]
    assert _values(surface_bati(sites, None)) == [None] * 5
    water = raccordement_eau(built)
    assert _values(water) == ["oui", "oui", "oui", "non", "non"]
    assert _values(raccordement_eau(surface_bati(sites, None))) == [NE_SAIT_PAS] * 5


def test_water_connection_threshold_is_strictly_above_20():
    d = surface_bati(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10)] * 3, crs=CRS),
                     gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 4, 5)], crs=CRS))
    assert _values(d) == [20, 20, 20]
    assert _values(raccordement_eau(d)) == ["non"] * 3


def test_zonage_reglementaire_of_the_sample_zones(sites, layers):
    d = zonage_reglementaire(sites, layers.zonage)
    assert _values(d) == ["zone-urbaine-u-activite", "zone-agricole-a", "zone-urbaine-u-habitat",
                          "zone-a-urbaniser-au", "zone-naturelle-n"]
    assert d.sources.iloc[0] == "zone UY (typezone U)"
    assert _values(zonage_reglementaire(sites, None)) == [None] * 5
    far = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10)], crs=CRS)
    assert _values(zonage_reglementaire(far, layers.zonage)) == [NE_SAIT_PAS]


@pytest.mark.parametrize(("typezone", "destdomi", "libelle", "libelong", "expected"), [
    ("U", "02", "UA", "Zone d'habitat", "zone-vocation-activites"),
    ("N", "Activité", "Nx", None, "zone-vocation-activites"),
    ("U", None, "UE", "Zone mixte d'équipements", "zone-urbaine-u-habitat"),
    ("U", None, "UA", "Zone d'équipements publics", "zone-urbaine-u-equipement"),
    ("U", None, "UA", "Zone à vocation économique", "zone-urbaine-u-activite"),
    ("U", None, "UC", "Secteur de la gare", "zone-urbaine-u-habitat"),
    ("U", "01", "UE", None, "zone-urbaine-u-equipement"),
    ("U", None, "UX", None, "zone-urbaine-u-activite"),
    ("U", None, "UI2", None, "zone-urbaine-u-activite"),
    ("U", None, "UP", None, "zone-urbaine-u"),
    ("AUc", None, "1AU", None, "zone-a-urbaniser-au"),
    ("AUs", None, "2AU", None, "zone-a-urbaniser-au"),
    ("Ah", None, "Ah", None, "zone-agricole-a"),
    ("Nh", None, "Nh", None, "zone-naturelle-n"),
    ("Zc", None, "Zc", None, "secteur-ouvert-a-la-construction"),
    ("ZnC", None, "ZnC", None, "secteur-non-ouvert-a-la-construction"),
    ("RNU", None, None, None, NE_SAIT_PAS),
    (None, None, None, None, NE_SAIT_PAS),
])
def test_zone_mapping_follows_the_reference(typezone, destdomi, libelle, libelong, expected):
    assert zone_to_mutafriches(typezone, destdomi, libelle, libelong) == expected


def test_distance_autoroute_from_the_centroid(sites, layers):
    mask = grande_circulation(layers.routes)
    # Importance 1 and 2 roads of the sample (D464, the gravel roads of importance 2).
    assert mask.sum() == 56
    d = distance_autoroute(sites, layers.routes)
    assert _values(d) == [103, 36, 255, 263, 467]
    assert d.sources.iloc[0] == "voie de grande circulation à 103 m"
    assert _values(distance_autoroute(sites, None)) == [None] * 5


def test_distance_autoroute_beyond_15_km_is_not_known():
    road = gpd.GeoDataFrame({"nature": ["Type autoroutier"], "importance": [1],
                             "classe": ["autoroute"]},
                            geometry=[shapely.LineString([(0, 0), (0, 100)])], crs=CRS)
    pts = gpd.GeoDataFrame(geometry=[shapely.Point(15000, 50), shapely.Point(15000.6, 50),
                                     shapely.Point(999.5, 0)], crs=CRS)
    assert _values(distance_autoroute(pts, road)) == [15000, None, 1000]
    # A secondary road is not "de grande circulation".
    minor = road.assign(nature="Route à 1 chaussée", importance=3, classe="secondaire")
    assert _values(distance_autoroute(pts, minor)) == [None] * 3


def _points(*xy: tuple[float, float], insee: str = "25267") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code_insee": [insee] * len(xy)},
                            geometry=[shapely.Point(p) for p in xy], crs=CRS)


def test_town_centre_is_the_town_hall_of_the_commune_within_1_km():
    halls = gpd.GeoDataFrame({"code_insee": ["25267", "25267", "25395"],
                              "mairie_type": ["chef-lieu", "mairie", "mairie"]},
                             geometry=[shapely.Point(5000, 0), shapely.Point(0, 0),
                                       shapely.Point(600, 0)], crs=CRS)
    sites = _points((999.9, 0), (1000, 0), (0, 0))
    d = site_en_centre_ville(sites, halls)
    # The town hall wins over the chef-lieu; the other commune's hall is not read.
    assert _values(d) == [True, False, True]
    assert d.sources.iloc[0] == "mairie à 1000 m"
    only_chef_lieu = halls.iloc[[0]]
    assert _values(site_en_centre_ville(_points((4500, 0)), only_chef_lieu)) == [True]
    other = _points((0, 0), insee="25001")
    assert _values(site_en_centre_ville(other, halls)) == [None]
    assert _values(site_en_centre_ville(sites, None)) == [None] * 3


def _constraint(name: str, kind: str, *boxes, libelle: str | None = None) -> Constraint:
    frame = gpd.GeoDataFrame({"libelle": [libelle] * len(boxes)},
                             geometry=[shapely.box(*b) for b in boxes], crs=CRS)
    return Constraint(name=name, kind=kind, strict=False, frame=frame)


def test_flood_and_technological_risks(sites, layers):
    p = layers.parcelles.set_index("idu").loc["252670000B0627", "geometry"]
    x0, y0, x1, y1 = p.bounds
    flood = _constraint("PPRI", "inondation", (x0, y0, (x0 + x1) / 2, y1))
    touching = _constraint("SIS", "risque_technologique", (x1, y0, x1 + 10, y1))
    d = risque_inondation(sites, [flood])
    assert _values(d) == ["oui", "non", "non", "non", "non"]
    assert d.sources.iloc[0] == "dans : PPRI"
    # A zone that only touches the site's edge does not concern it.
    assert _values(risques_technologiques(sites, [touching])) == [False] * 5
    assert _values(risque_inondation(sites, [touching])) == [None] * 5
    assert _values(risques_technologiques(sites, [])) == [None] * 5


def test_protected_areas_are_classified_by_name_and_label():
    zones = pd.DataFrame({
        "contrainte_nom": ["Natura 2000", "ZNIEFF", "Parcs", "Sites", "Sites", "Espaces",
                           "TVB", "TVB", "Zones humides", "Patrimoine"],
        "libelle": [None, "ZNIEFF de type 2", "Parc naturel régional du Doubs",
                    "Site classé de la Loue", "Périmètre des abords du monument historique",
                    "Espace boisé", "Corridor écologique à restaurer",
                    "Réservoir de biodiversité", None, "ZPPAUP de Besançon"]})
    cls = classify_zones(zones).astype(object)
    cls = cls.where(cls.notna(), None)
    assert cls["valeur"].tolist() == ["natura-2000", "znieff-type-1-2", "parc-naturel-regional",
                                      "site-inscrit-classe", "perimetre-abf", None,
                                      "corridor-a-restaurer", "reservoir-biodiversite", "oui",
                                      "zppaup"]
    assert cls["critere"].tolist()[5] is None


def test_protected_area_criteria_priority_and_outside(sites, layers):
    p = layers.parcelles.set_index("idu")
    a = p.loc["252670000B0627", "geometry"].bounds
    b = p.loc["25267000ZB0175", "geometry"].bounds
    c = p.loc["25267000AB0184", "geometry"].bounds
    contraintes = [
        _constraint("ZNIEFF type 1", "nature", a, b),
        _constraint("Natura 2000 ZSC", "nature", a),
        _constraint("Espaces naturels sensibles", "nature", c),
        _constraint("Zones humides", "nature", b),
        _constraint("Monuments historiques", "patrimoine", a, libelle="monument"),
        _constraint("Abords des monuments historiques", "patrimoine", a, b),
    ]
    out = zonages_proteges(sites, contraintes)
    assert _values(out["zonageEnvironnemental"]) == [
        "natura-2000", "znieff-type-1-2", None, "hors-zone", "hors-zone"]
    assert out["zonageEnvironnemental"].sources.iloc[2].startswith(
        "dans une zone de sous-type inconnu")
    assert _values(out["presenceZoneHumide"]) == ["non", "oui", "non", "non", "non"]
    assert _values(out["trameVerteEtBleue"]) == [None] * 5
    assert _values(out["zonagePatrimonial"]) == [
        "monument-historique", "perimetre-abf", "non-concerne", "non-concerne", "non-concerne"]
    nothing = zonages_proteges(sites, [])
    assert all(_values(d) == [None] * 5 for d in nothing.values())


def test_rail_siding_within_1_km():
    rails = gpd.GeoDataFrame({"nature": ["Voie de service", "Voie ferrée principale"]},
                             geometry=[shapely.LineString([(0, 0), (0, 10)]),
                                       shapely.LineString([(100, 0), (100, 10)])], crs=CRS)
    sites = _points((999.99, 5), (-1000, 5), (50, 5))
    d = distance_ite(sites, rails)
    assert _values(d) == ["moins-1km-mauvais-etat", "plus-1km", "moins-1km-mauvais-etat"]
    no_nature = rails.assign(nature=None)
    assert _values(distance_ite(sites, no_nature)) == [None] * 3
    assert _values(distance_ite(sites, None)) == [None] * 3


def test_shops_and_services_within_500_m():
    shops = gpd.GeoDataFrame({"naf": ["47.24Z", "47.73Z", "68.20A"], "etat": ["A", "F", "A"]},
                             geometry=[shapely.Point(0, 0), shapely.Point(2000, 0),
                                       shapely.Point(4000, 0)], crs=CRS)
    sites = _points((500, 0), (500.5, 0), (2000, 0), (4000, 0))
    # A bakery at 500 m; a closed pharmacy; an estate agency is no shop.
    assert _values(proximite_commerces_services(sites, shops)) == [True, False, False, False]
    assert _values(proximite_commerces_services(sites, None)) == [None] * 4


def _proprietaires(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["idu", "proprietaire_cle", "proprietaire_type",
                                       "proprietaire_groupe"])


def test_proprietaire_type_from_the_dgfip_groups():
    proprietaires = _proprietaires([
        ("A1", "siren:1", "personne morale", "commune"),
        ("A2", "siren:2", "personne morale", "personne morale non remarquable"),
        ("A3", "siren:3", "personne morale", "copropriété"),
        ("A4", "siren:1", "personne morale", "commune"),
        ("A4", "siren:5", "personne morale", "département"),
        ("A5", "siren:2", "personne morale", "personne morale non remarquable"),
        ("A5", "siren:6", "personne morale", "personne morale non remarquable"),
        ("A6", "nom:X", "personne morale", None),
    ])
    idu = pd.Series(["A1", "A2", "A3", "A4", "A5", "A6", "A7"])
    cats = categorie_proprietaires(proprietaires, idu, absents="personne physique")
    assert cats.tolist() == ["public", "prive", "copro", "public", "copro", None, "prive"]
    assert categorie_proprietaires(proprietaires, pd.Series(["A7"])).tolist() == [None]
    sites = gpd.GeoDataFrame({"idus": ["A1", "A1|A4", "A1|A2", "A2|A7", "A2|A3", "A3|A1",
                                       "A6|A1", None]},
                             geometry=[shapely.Point(0, 0)] * 8, crs=CRS)
    d = type_proprietaire(sites, proprietaires, absents="personne physique")
    assert _values(d) == ["public", "public", "mixte", "prive", "copro-indivision", "mixte",
                          None, None]
    assert _values(type_proprietaire(sites, None)) == [None] * 8
    # The CNIG field proprio_personne, as Cartofriches writes it.
    assert proprio_personne(sites, proprietaires, absents="personne physique").tolist() == [
        "personne morale", "personne morale", "personne morale",
        "personne physique, personne morale", "personne morale", "personne morale",
        "personne morale", None]
    assert proprio_personne(sites, proprietaires).tolist()[3] is None


@pytest.fixture(scope="module")
def cnig():
    path = shared_file("cartofriches/friches_standard_test.csv")
    frame = read_friches(Source(kind="friches", paths=(Path(path),), format="cnig_csv"),
                         crs=CRS).frame
    return frame.set_index("site_id")


def test_cnig_friche_fields_map_to_mutafriches(cnig):
    # Real friches: 01004_27423 (dégradation moyenne, pollution avérée, owner P5a),
    # 01004_27504 (pollution supposée, X1a), 01004_21070 (inconnu, F1a|X1a).
    f = cnig.loc[["01004_27423", "01004_27504", "01004_21070"]].reset_index()
    assert f["bati_etat"].tolist() == ["dégradation moyenne", "dégradation moyenne", "inconnu"]
    no_built = surface_bati(f, None)
    assert _values(etat_bati(f, no_built)) == ["degradation-moyenne", "degradation-moyenne",
                                               NE_SAIT_PAS]
    assert _values(pollution(f)) == ["oui-autres-composes", NE_SAIT_PAS, NE_SAIT_PAS]
    assert _values(proprietaire_cnig(f)) == ["public", "prive", None]
    assert _values(valeur_architecturale(f, no_built)) == [NE_SAIT_PAS] * 3


def test_zone_of_a_friche_from_its_cnig_fields(cnig, layers):
    # Real friches outside the sample's PLU: their own urba_zone_type and urba_zone_lib.
    ids = ["01004_27423", "10387_21150", "01303_17890", "01032_27571"]
    f = cnig.loc[ids].reset_index()
    assert f["urba_zone_lib"].tolist()[:2] == [
        "UBa - Secteur urbain d'intensification de la ville le long des axes stratégiques",
        "1AUAA - Future zone UAA"]
    sites = gpd.GeoDataFrame(f, geometry=f.geometry, crs=CRS)
    d = zonage_cnig(sites, zonage_reglementaire(sites, layers.zonage))
    assert _values(d) == ["zone-urbaine-u-habitat", "zone-a-urbaniser-au", "zone-naturelle-n",
                          "zone-agricole-a"]
    assert d.sources.iloc[1] == ("source des friches : urba_zone_type AUc, urba_zone_lib "
                                 "1AUAA - Future zone UAA")
    cc = pd.DataFrame({"urba_zone_type": ["Zc", "ZnC", "RNU", None]})
    assert _values(zonage_cnig(cc, zonage_reglementaire(
        gpd.GeoDataFrame(cc, geometry=[shapely.Point(0, 0)] * 4, crs=CRS), None))) == [
        "secteur-ouvert-a-la-construction", "secteur-non-ouvert-a-la-construction",
        NE_SAIT_PAS, None]


def test_cnig_values_and_no_building():
    f = pd.DataFrame({
        "bati_etat": ["dégradation inexistante ou faible", "sans objet", "inconnu", None],
        "bati_patrimoine": ["aucun", "présence d'un bâtiment classé", "inconnu", None],
        "bati_pollution": ["amiante", None, None, None],
        "sol_pollution_existe": ["pollution traitée", "pollution inexistante",
                                 "pollution peu probable", None],
        "bati_nombre": ["3", "0", "2", None],
    })
    built = surface_bati(gpd.GeoDataFrame(f, geometry=[shapely.box(0, 0, 1, 1)] * 4, crs=CRS),
                         gpd.GeoDataFrame(geometry=[shapely.box(10, 10, 11, 11)], crs=CRS))
    assert _values(etat_bati(f, built)) == ["degradation-faible", "pas-de-bati", "pas-de-bati",
                                            "pas-de-bati"]
    assert _values(valeur_architecturale(f, built)) == ["sans-interet", "interet-remarquable",
                                                        "pas-de-bati", "pas-de-bati"]
    assert _values(pollution(f)) == ["oui-amiante", "non", NE_SAIT_PAS, None]


def test_friche_sites_perimeter_parcels_point(layers):
    p = layers.parcelles
    by = p.set_index("idu")
    inside = by.loc["25267000ZA0071", "geometry"].representative_point()
    friches = gpd.GeoDataFrame({
        "site_id": ["F1", "F2", "F3", "F4"],
        "comm_insee": ["25267", None, "25267", None],
        "unite_fonciere_refcad": [None, "252670000B0627|25267000AB0184|25267000XX9999", None,
                                  None],
    }, geometry=[shapely.Point(0, 0), shapely.Point(0, 0), inside, shapely.Point(0, 0)],
        crs=CRS)
    perim = by.loc["25267000ZB0175", "geometry"].buffer(-1)
    surfaces = gpd.GeoDataFrame({"site_id": ["F1"]}, geometry=[perim], crs=CRS)
    sites = friche_sites(friches, surfaces, p.assign(score_industrie=50.0),
                         score="score_industrie")
    assert sites["geometrie_origine"].tolist() == [
        "périmètre de la friche", "parcelles de la friche (unite_fonciere_refcad)",
        "parcelle du point de la friche", "point de la friche"]
    assert sites["idus"].tolist()[:3] == ["25267000ZB0175", "252670000B0627|25267000AB0184",
                                          "25267000ZA0071"]
    assert sites["code_insee"].tolist()[:3] == ["25267", "25267", "25267"]
    assert sites[["idus", "code_insee"]].iloc[3].isna().all()
    assert _values(surface_site(sites)) == [round(perim.area), 8622 + 3733, 56729, None]
    assert sites["score_observatoire"].tolist()[:3] == [50.0] * 3
    assert np.isnan(sites["score_observatoire"].iloc[3])


def test_every_criterion_on_a_real_candidate_site(sites, layers):
    algo = load_algorithm(json.loads(
        (Path(__file__).resolve().parents[1] / "observatoire" / "data" / "mutafriches" / "v1.11"
         / "algorithme.json").read_text(encoding="utf-8")))
    values, sources = derive_criteria(sites.iloc[[0]], CriteriaLayers(
        batiments=layers.batiments, routes=layers.routes, zonage=layers.zonage))
    assert set(values.columns) == set(algo.keys)
    row = values.iloc[0]
    assert row["surfaceSite"] == 8622 and row["surfaceBati"] == 616
    assert row["distanceAutoroute"] == 103 and row["raccordementEau"] == "oui"
    assert row["zonageReglementaire"] == "zone-urbaine-u-activite"
    assert sources.iloc[0]["tauxLogementsVacants"].startswith("taux de vacance")
    ev = evaluate(values, algo)
    j = algo.usages.index("industrie")
    # surfaceSite < 10 000: −2×2 → C 4; surfaceBati < 5 000: −2×2 → C 4; autoroute < 1 km:
    # +2×0.5 → A 1; zone U activité: +2×2 → A 4; eau oui: +2×1 → A 2. A 7, C 8 → 46.7.
    assert ev.avantages[0, j] == 7 and ev.contraintes[0, j] == 8
    assert ev.indices[0, j] == 46.7
    assert ev.poids_renseignes[0] == 7.5 and ev.fiabilite[0] == 2.5


def test_agreement_with_the_observatory_score():
    classes = {"A": 75, "B": 60, "C": 45, "D": 30}
    score = np.array([80, 80, 20, np.nan, 50, 20])
    pot = np.array(["Moyen", "Très bon", "Excellent", "Excellent", "Faible", "Faible"],
                   dtype=object)
    known = np.array([True, True, True, True, True, False])
    assert avis_industrie(score, classes, pot, known).tolist() == [
        "divergent", "concordant", "divergent", "divergent", "concordant", None]


def test_town_halls_read_from_bd_topo_and_admin_express(tmp_path):
    import pyogrio

    from observatoire.errors import SourceError
    from observatoire.readers.mairies import read_mairies

    zai = gpd.GeoDataFrame({"nature": ["Mairie", "Enseignement primaire"],
                            "toponyme": ["Mairie de Gennes", "École"]},
                           geometry=[shapely.box(936000, 6687000, 936020, 6687020),
                                     shapely.box(936050, 6687050, 936060, 6687060)], crs=CRS)
    pyogrio.write_dataframe(zai, tmp_path / "bdtopo.gpkg", layer="zone_d_activite_ou_d_interet")
    chefs = gpd.GeoDataFrame({"INSEE_COM": ["1053", "25267"]},
                             geometry=[shapely.Point(870000, 6560000),
                                       shapely.Point(936005, 6687005)], crs=CRS)
    pyogrio.write_dataframe(chefs, tmp_path / "admin.gpkg", layer="chef_lieu")
    m = read_mairies(Source(kind="mairies", paths=(tmp_path / "bdtopo.gpkg",)), crs=CRS).frame
    assert m["mairie_type"].tolist() == ["mairie"] and m["code_insee"].isna().all()
    assert m.geometry.iloc[0].within(shapely.box(936000, 6687000, 936020, 6687020))
    c = read_mairies(Source(kind="chefs_lieux", paths=(tmp_path / "admin.gpkg",)), crs=CRS).frame
    assert c["code_insee"].tolist() == ["01053", "25267"]
    assert c["mairie_type"].tolist() == ["chef-lieu"] * 2
    pyogrio.write_dataframe(zai.iloc[[1]], tmp_path / "ecoles.gpkg", layer="zai")
    with pytest.raises(SourceError, match="aucune entité de nature « Mairie »"):
        read_mairies(Source(kind="mairies", paths=(tmp_path / "ecoles.gpkg",)), crs=CRS)
