"""The table of French communes and EPCI (observatoire.communes) and the script deriving it."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

from observatoire import communes
from observatoire.communes import (
    commune,
    commune_name,
    commune_names,
    data_source,
    epci,
    epci_of,
    find_commune,
    legal_crs,
    suggest_communes,
    suggest_epci,
)
from observatoire.config import LEGAL_CRS
from observatoire.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_communes_of_the_real_test_data():
    gennes = commune("25267")
    assert (gennes.nom, gennes.departement, gennes.type, gennes.epci) == (
        "Gennes", "25", "commune-actuelle", "242500361")
    assert commune("91216").nom == "Épinay-sur-Orge"
    assert commune_name("25354") == "Luxiol"
    assert commune_name(" 25267 ") == "Gennes"
    assert find_commune("25999") is None and commune_name("25999") is None
    assert gennes.label() == "Gennes (25267)"


def test_epci_by_siren_and_of_a_commune():
    gbm = epci("242500361")
    # The DGCL's official name, with its type.
    assert (gbm.nom, gbm.type) == ("CU Grand Besançon Métropole", "CU")
    assert len(gbm.membres) == 67 and "25267" in gbm.membres and "25354" not in gbm.membres
    assert list(gbm.membres) == sorted(gbm.membres)
    assert all(epci_of(code) == gbm for code in gbm.membres)
    assert epci_of("25354").nom == "CC du Doubs Baumois"
    assert epci_of("25999") is None
    assert gbm.label() == "CU Grand Besançon Métropole (SIREN 242500361)"


def test_old_codes_delegated_communes_and_arrondissements():
    # A current commune wins over the commune déléguée of the same code.
    assert commune("01015").nom == "Arboys en Bugey"
    deleguee = commune("49149")
    assert (deleguee.nom, deleguee.type, deleguee.commune) == ("Gennes", "commune-deleguee",
                                                               "49261")
    assert commune("49261").nom == "Gennes-Val-de-Loire"
    assert deleguee.epci == commune("49261").epci
    assert deleguee.label() == "Gennes (49149, commune déléguée)"
    arr = commune("75101")
    assert (arr.type, arr.commune, arr.epci) == ("arrondissement-municipal", "75056",
                                                 "200054781")
    assert epci_of("75101").nom == "Métropole du Grand Paris"
    # Épinay-sur-Orge was 78216 in Seine-et-Oise: the old code names today's commune.
    old = commune("78216")
    assert (old.type, old.nom, old.commune, old.departement) == (
        "ancien-code", "Épinay-sur-Orge", "91216", "91")
    assert old.label() == "78216, ancien code de Épinay-sur-Orge (91216)"


def test_unknown_codes_get_the_closest_ones():
    with pytest.raises(ConfigError, match=r"code INSEE inconnu : '25999' ; les plus proches : "
                                          r".*\(25\d{3}\)"):
        commune("25999")
    # Codes are looked for in their département first.
    assert {c.departement for c in suggest_communes("25999")} == {"25"}
    assert suggest_communes("25276")[0].code == "25276"
    close = suggest_communes("25672")
    assert len(close) == 5 and {c.departement for c in close} == {"25"}
    with pytest.raises(ConfigError, match="aucun code proche"):
        commune("99999")
    # Names: accents, case and hyphens ignored; current communes first.
    assert suggest_communes("epinay sur orge")[0].code == "91216"
    assert [c.code for c in suggest_communes("Gennes")[:2]] == ["25267", "49149"]
    with pytest.raises(ConfigError, match=r"SIREN d'EPCI inconnu : '242500360' ; les plus "
                                          r"proches : CU Grand Besançon Métropole \(SIREN "
                                          r"242500361\)"):
        epci("242500360")
    assert suggest_epci("grand besancon metropole")[0].siren == "242500361"


def test_legal_crs_by_departement():
    assert legal_crs("25") == legal_crs("2A") == legal_crs("91") == "EPSG:2154"
    assert legal_crs("971") == legal_crs("972") == "EPSG:5490"
    assert legal_crs("973") == "EPSG:2972"
    assert legal_crs("974") == "EPSG:2975"
    assert legal_crs("976") == "EPSG:4471"
    assert set(communes.OVERSEAS_CRS.values()) | {communes.METROPOLE_CRS} <= set(LEGAL_CRS)
    with pytest.raises(ConfigError, match=r"Saint-Pierre-et-Miquelon \(975\) : pas de "
                                          r"projection légale prise en charge"):
        legal_crs("975")
    with pytest.raises(ConfigError, match="code de département inconnu : '99'"):
        legal_crs("99")
    # Overseas communes: their département's CRS.
    assert legal_crs(commune("97411").departement) == "EPSG:2975"


def test_commune_names_with_overrides():
    names = commune_names(["25267", None, "25999", "25267", "91216"],  # type: ignore[list-item]
                          overrides={"25354": "Luxiol (Doubs)", "91216": "Épinay"})
    assert names == {"25267": "Gennes", "91216": "Épinay", "25354": "Luxiol (Doubs)"}


def test_the_shipped_table_says_its_source_and_matches_it():
    source = data_source()
    assert source["paquet"] == "@etalab/decoupage-administratif"
    assert source["version"] == "6.0.0"
    assert "Licence Ouverte" in source["licence_donnees"]
    rows = gzip.decompress((ROOT / "observatoire/data/decoupage/communes.csv.gz")
                           .read_bytes()).decode("utf-8").splitlines()[1:]
    kinds = [line.split(";")[1] for line in rows]
    assert {k: kinds.count(k) for k in communes.TYPES} == source["lignes"]
    assert source["lignes"]["commune-actuelle"] > 34_000
    assert len(communes._table().epci) == source["epci"] == 1255
    # Small enough to ship.
    size = sum(p.stat().st_size for p in (ROOT / "observatoire/data/decoupage").iterdir())
    assert size < 600_000
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "@etalab/decoupage-administratif" in readme and "6.0.0" in readme


def _script():
    spec = importlib.util.spec_from_file_location(
        "decoupage_administratif", ROOT / "scripts" / "decoupage_administratif.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(path: Path) -> Path:
    """A tarball laid out as the npm package, holding a few real rows (values of 6.0.0)."""
    files = {
        "package/package.json": {"name": "@etalab/decoupage-administratif", "version": "9.9.9",
                                 "repository": "https://github.com/etalab/decoupage-administratif"},
        "package/data/communes.json": [
            {"code": "91216", "nom": "Épinay-sur-Orge", "type": "commune-actuelle",
             "departement": "91", "anciensCodes": ["78216"]},
            {"code": "01015", "nom": "Arboys en Bugey", "type": "commune-actuelle",
             "departement": "01", "anciensCodes": ["01340"]},
            {"code": "01015", "nom": "Arbignieu", "type": "commune-deleguee",
             "departement": "01", "chefLieu": "01015"},
            {"code": "01340", "nom": "Saint-Bois", "type": "commune-deleguee",
             "departement": "01", "chefLieu": "01015"},
            {"code": "75101", "nom": "Paris 1er Arrondissement", "type": "arrondissement-municipal",
             "departement": "75", "commune": "75056"},
        ],
        "package/data/epci.json": [
            {"code": "200056232", "nom": "CA Cœur d'Essonne Agglomération", "type": "CA",
             "membres": [{"code": "91216"}]}],
        "package/data/departements.json": [
            {"code": "91", "nom": "Essonne", "region": "11", "zone": "metro"},
            {"code": "01", "nom": "Ain", "region": "84", "zone": "metro"}],
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = json.dumps(content).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_script_derives_the_table_from_the_package(tmp_path):
    script = _script()
    tgz = _package(tmp_path / "paquet.tgz")
    assert script.main(["--tgz", str(tgz), "--out", str(tmp_path / "a")]) == 0
    rows = gzip.decompress((tmp_path / "a" / "communes.csv.gz").read_bytes()).decode("utf-8")
    assert rows.splitlines() == [
        "code;type;nom;departement;commune;epci",
        "01015;commune-actuelle;Arboys en Bugey;01;;",
        "01015;commune-deleguee;Arbignieu;01;01015;",
        # 01340 is held by its commune déléguée: no old-code row for it.
        "01340;commune-deleguee;Saint-Bois;01;01015;",
        "75101;arrondissement-municipal;Paris 1er Arrondissement;75;75056;",
        "78216;ancien-code;Épinay-sur-Orge;91;91216;",
        "91216;commune-actuelle;Épinay-sur-Orge;91;;200056232",
    ]
    assert (tmp_path / "a" / "epci.csv").read_text(encoding="utf-8").splitlines() == [
        "siren;nom;type", "200056232;CA Cœur d'Essonne Agglomération;CA"]
    source = json.loads((tmp_path / "a" / "source.json").read_text(encoding="utf-8"))
    assert source["version"] == "9.9.9"
    assert source["lignes"]["ancien-code"] == 1
    # Repeatable: the same package gives the same bytes.
    script.main(["--tgz", str(tgz), "--out", str(tmp_path / "b")])
    for name in ("communes.csv.gz", "epci.csv", "departements.csv", "source.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
