"""The territory file: every unknown key, missing key or bad value names the key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
from conftest import SAMPLE

from observatoire.config import LEGAL_CRS, load_territory, read_territory
from observatoire.errors import ConfigError

BASE = """\
[territoire]
nom = "Gennes"
communes = ["25267"]

[sources.parcelles]
chemin = "parcel.gpkg"
"""


def write(folder: Path, text: str, name: str = "territoire.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_territory_loads():
    territory = load_territory(SAMPLE / "territoire.toml")
    assert territory.name == "Gennes" and territory.slug == "gennes"
    assert territory.communes == ("25267",)
    assert territory.crs == "EPSG:2154"
    parcelles = territory.source("parcelles")
    assert parcelles.paths == (SAMPLE.resolve() / "parcel.gpkg",)
    assert parcelles.format == "bdparcellaire" and parcelles.layer == "parcel"
    assert parcelles.key == "sources.parcelles"
    assert territory.output_dir.resolve() == (SAMPLE.parent / "out" / "gennes").resolve()
    assert territory.epci_siren == "242500361"


def test_paths_are_relative_to_the_territory_file_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "donnees").mkdir()
    config = write(tmp_path / "donnees", BASE)
    monkeypatch.chdir(SAMPLE)  # a folder that holds a parcel.gpkg of its own
    territory = load_territory(config)
    assert territory.source("parcelles").path == tmp_path.resolve() / "donnees" / "parcel.gpkg"


def test_file_lists_and_globs_are_sorted(tmp_path):
    for name in ("b.json", "a.json", "c.json"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    one = write(tmp_path, BASE.replace('"parcel.gpkg"', '["c.json", "a.json", "b.json"]'), "1.toml")
    two = write(tmp_path, BASE.replace('"parcel.gpkg"', '["b.json", "c.json", "a.json"]'), "2.toml")
    three = write(tmp_path, BASE.replace('"parcel.gpkg"', '"*.json"'), "3.toml")
    paths = [load_territory(p).source("parcelles").paths for p in (one, two, three)]
    assert paths[0] == paths[1] == paths[2]
    assert [p.name for p in paths[0]] == ["a.json", "b.json", "c.json"]


def test_escaping_path_is_resolved_against_the_folder(tmp_path):
    depth = len(tmp_path.resolve().parts) - 1
    config = write(tmp_path, BASE.replace('"parcel.gpkg"', f'"{"../" * depth}etc/passwd"'))
    path = load_territory(config).source("parcelles").path
    assert path.resolve() == Path("/etc/passwd")


def test_values_are_data_never_code(tmp_path):
    marker = tmp_path / "pwned"
    text = BASE.replace('"Gennes"', f'"__import__(\'os\').system(\'touch {marker}\')"')
    territory = load_territory(write(tmp_path, text))
    assert territory.name.startswith("__import__")
    assert not marker.exists()
    # Python is not TOML.
    with pytest.raises(ConfigError, match="TOML invalide"):
        load_territory(write(tmp_path, f"import os\nos.system('touch {marker}')\n", "x.toml"))
    assert not marker.exists()


def test_config_module_uses_tomllib_only():
    source = Path(__file__).resolve().parents[1] / "observatoire" / "config.py"
    code = source.read_text(encoding="utf-8")
    assert "import tomllib" in code
    assert not re.search(r"(?<![\w.])(eval|exec|compile|__import__)\s*\(", code)
    assert not re.search(r"import (pickle|yaml|marshal)|importlib", code)


@pytest.mark.parametrize("crs", sorted(LEGAL_CRS))
def test_legal_crs_accepted(tmp_path, crs):
    text = BASE.replace('communes = ["25267"]', f'communes = ["97101"]\ncrs = "{crs}"')
    assert load_territory(write(tmp_path, text)).crs == crs


def test_crs_defaults_to_lambert93(tmp_path):
    assert load_territory(write(tmp_path, BASE)).crs == "EPSG:2154"


def test_corsica_codes(tmp_path):
    text = BASE.replace('["25267"]', '["2A004", "2B033"]')
    assert load_territory(write(tmp_path, text)).communes == ("2A004", "2B033")


def test_source_options(tmp_path):
    text = BASE + ('format = "bdparcellaire"\ncouche = "parcel"\ncrs = "IGNF:LAMB93"\n'
                   'encodage = "latin-1"\n[sources.parcelles.champs]\nsection = "SEC"\n'
                   '[[sources.contraintes]]\nchemin = "ppri.gpkg"\nnom = "PPRI"\n'
                   'type = "inondation"\nstricte = true\n')
    territory = load_territory(write(tmp_path, text))
    src = territory.source("parcelles")
    assert src.crs == "EPSG:2154"  # IGNF:LAMB93 is Lambert-93
    assert src.encoding == "latin-1" and dict(src.fields) == {"section": "SEC"}
    (ppri,) = territory.constraints
    assert (ppri.name, ppri.constraint_type, ppri.strict, ppri.key) == (
        "PPRI", "inondation", True, "sources.contraintes[0]")


def test_producer_and_date_of_a_source(tmp_path):
    text = BASE + ('producteur = " DGFiP / Etalab "\ndate = 2024-01-01\n'
                   '[sources.zonage]\nchemin = "zoning.gpkg"\ndate = "2022-03-25"\n'
                   '[[sources.contraintes]]\nchemin = "ppri.gpkg"\nnom = "PPRI"\n'
                   'type = "inondation"\nproducteur = "DDT du Doubs"\n')
    territory = load_territory(write(tmp_path, text))
    parcelles, zonage = territory.source("parcelles"), territory.source("zonage")
    assert (parcelles.producer, parcelles.date) == ("DGFiP / Etalab", "2024-01-01")
    assert (zonage.producer, zonage.date) == (None, "2022-03-25")
    assert (territory.constraints[0].producer, territory.constraints[0].date) == (
        "DDT du Doubs", None)


def test_unknown_source_key_lists_producteur_and_date(tmp_path):
    message = _check(tmp_path, BASE + "producer = 'IGN'\n", "sources.parcelles.producer")
    assert "producteur" in message and "date" in message


# (text added to or replacing parts of BASE, key that must be named)
UNKNOWN = [
    ("foo = 1\n" + BASE, "foo"),
    (BASE.replace("[territoire]", "[territoire]\nsurface = 3"), "territoire.surface"),
    (BASE + "[sources.cadastre]\nchemin = 'x'\n", "sources.cadastre"),
    (BASE + "chemins = 'x'\n", "sources.parcelles.chemins"),
    (BASE + "[options]\ncouleur = 'bleu'\n", "options.couleur"),
    (BASE + "[sorties]\nfichier = 'x'\n", "sorties.fichier"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\nnom = 'a'\ntype = 'nature'\n"
            "strict = true\n", "sources.contraintes[0].strict"),
    (BASE + "producer = 'IGN'\n", "sources.parcelles.producer"),
]

MISSING = [
    ("[sources.parcelles]\nchemin = 'p.gpkg'\n", "territoire"),
    (BASE.replace('nom = "Gennes"\n', ""), "territoire.nom"),
    (BASE.replace('communes = ["25267"]\n', ""), "territoire.communes"),
    (BASE.split("[sources.parcelles]")[0], "sources"),
    (BASE.replace("[sources.parcelles]", "[sources.zonage]"), "sources.parcelles"),
    (BASE.replace('chemin = "parcel.gpkg"', 'format = "etalab"'), "sources.parcelles.chemin"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\ntype = 'nature'\n",
     "sources.contraintes[0].nom"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\nnom = 'ZNIEFF'\n",
     "sources.contraintes[0].type"),
]

BAD_VALUES = [
    (BASE.replace('["25267"]', '["25267", "2526"]'), "territoire.communes[1]"),
    (BASE.replace('["25267"]', '[25267]'), "territoire.communes[0]"),
    (BASE.replace('["25267"]', '[]'), "territoire.communes"),
    (BASE.replace('["25267"]', '"25267"'), "territoire.communes"),
    (BASE.replace('nom = "Gennes"', 'nom = "  "'), "territoire.nom"),
    (BASE.replace('nom = "Gennes"', "nom = 3"), "territoire.nom"),
    (BASE.replace("[territoire]", '[territoire]\ncrs = "EPSG:3857"'), "territoire.crs"),
    (BASE.replace("[territoire]", '[territoire]\ncrs = "EPSG:4326"'), "territoire.crs"),
    (BASE.replace("[territoire]", '[territoire]\ncrs = "Lambert"'), "territoire.crs"),
    (BASE.replace("[territoire]", '[territoire]\nepci_siren = "12345"'),
     "territoire.epci_siren"),
    (BASE + 'format = "shapefile"\n', "sources.parcelles.format"),
    (BASE + "couche = 3\n", "sources.parcelles.couche"),
    (BASE + 'crs = "EPSG:999999"\n', "sources.parcelles.crs"),
    (BASE + 'encodage = "klingon"\n', "sources.parcelles.encodage"),
    (BASE + 'champs = "IDU"\n', "sources.parcelles.champs"),
    (BASE + "[sources.parcelles.champs]\nidu = 3\n", "sources.parcelles.champs.idu"),
    (BASE.replace('"parcel.gpkg"', "[]"), "sources.parcelles.chemin"),
    (BASE.replace('"parcel.gpkg"', "3"), "sources.parcelles.chemin"),
    (BASE.replace('"parcel.gpkg"', '"absent-*.json"'), "sources.parcelles.chemin"),
    (BASE.replace('"parcel.gpkg"', '""'), "sources.parcelles.chemin"),
    (BASE + "[sources.zonage]\nchemin = 'z.gpkg'\nformat = 'etalab'\n", "sources.zonage.format"),
    (BASE + "[sources.friches]\n", "sources.friches.chemin"),
    (BASE.split("[sources.parcelles]")[0] + "[sources]\nparcelles = 3\n", "sources.parcelles"),
    (BASE + "[sources.contraintes]\nchemin = 'c.gpkg'\n", "sources.contraintes"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\nnom = 'a'\ntype = 'bruit'\n",
     "sources.contraintes[0].type"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\nnom = 'a'\ntype = 'nature'\n"
            "stricte = 'oui'\n", "sources.contraintes[0].stricte"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\nnom = 'a'\ntype = 'nature'\n"
            "[[sources.contraintes]]\nchemin = 'd.gpkg'\nnom = 'a'\ntype = 'nature'\n",
     "sources.contraintes"),
    (BASE + "producteur = ''\n", "sources.parcelles.producteur"),
    (BASE + "producteur = 3\n", "sources.parcelles.producteur"),
    (BASE + "date = '31/12/2024'\n", "sources.parcelles.date"),
    (BASE + "date = 2024\n", "sources.parcelles.date"),
    (BASE + "date = 2024-03-01T10:00:00\n", "sources.parcelles.date"),
    (BASE + "[[sources.contraintes]]\nchemin = 'c.gpkg'\nnom = 'a'\ntype = 'nature'\n"
            "date = '2024-13-01'\n", "sources.contraintes[0].date"),
    (BASE + "[options]\ncarte = 'oui'\n", "options.carte"),
    (BASE + "[options]\nseuil_bati_gisement = true\n", "options.seuil_bati_gisement"),
    (BASE + "[options]\ndate_observation = '31/12/2024'\n", "options.date_observation"),
    (BASE + "[sorties]\ndossier = 3\n", "sorties.dossier"),
    (BASE + "[profils]\nindustrie = 3\n", "profils.industrie"),
    ("sorties = 3\n" + BASE, "sorties"),
]


def _check(tmp_path: Path, text: str, key: str) -> str:
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_territory(config)
    message = str(info.value)
    assert f"« {key} »" in message, message
    assert str(config) in message
    return message


@pytest.mark.parametrize(("text", "key"), UNKNOWN, ids=[k for _, k in UNKNOWN])
def test_unknown_key(tmp_path, text, key):
    assert "clé inconnue" in _check(tmp_path, text, key)


@pytest.mark.parametrize(("text", "key"), MISSING, ids=[k for _, k in MISSING])
def test_missing_key(tmp_path, text, key):
    assert "absente" in _check(tmp_path, text, key)


@pytest.mark.parametrize(("text", "key"), BAD_VALUES, ids=[k for _, k in BAD_VALUES])
def test_bad_value(tmp_path, text, key):
    _check(tmp_path, text, key)


def test_non_legal_crs_lists_the_legal_ones(tmp_path):
    message = _check(tmp_path, BASE.replace("[territoire]", '[territoire]\ncrs = "EPSG:3857"'),
                     "territoire.crs")
    assert all(code in message for code in LEGAL_CRS)


def test_unreadable_territory_files(tmp_path):
    with pytest.raises(ConfigError, match="introuvable"):
        load_territory(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="introuvable"):
        load_territory(tmp_path)  # a folder
    latin = tmp_path / "latin.toml"
    latin.write_bytes(BASE.replace("Gennes", "Besançon").encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_territory(latin)
    binary = tmp_path / "binaire.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError):
        load_territory(binary)


# --- every setting parsed at load, into typed objects ------------------------------------------

def test_options_and_profiles_are_parsed_at_load(tmp_path):
    territory = load_territory(write(tmp_path, BASE + """
[options]
date_observation = "2025-01-01"
carte = false
score_min_gisement = 40
parcelles_par_partition = 5000
noms_communes = { "25267" = "Gennes (Doubs)" }
classes_routes = { rapide = ["autoroute", "principale"] }

[options.vacance]
part_min_zae = 0.6

[options.mutabilite]
actif = false

[profils.industrie]
fiabilite_min = 0.5
"""))
    options = territory.options
    assert options.date_observation == dt.date(2025, 1, 1)
    assert (options.carte, options.rapport, options.atlas) == (False, True, True)
    assert options.export_cnig is None  # not written: exported when the EPCI is known
    assert options.parcelles_par_partition == 5000 and options.mutabilite is None
    assert dict(options.noms_communes) == {"25267": "Gennes (Doubs)"}
    assert options.analysis.score_min_gisement == 40.0
    assert options.analysis.seuil_bati_gisement == 0.1  # the default
    assert dict(options.analysis.classes_routes) == {"rapide": ("autoroute", "principale")}
    assert options.vacance.part_min_zae == 0.6 and options.vacance.surface_batie_min_m2 == 50.0
    # The shipped profiles, the territory's override merged key by key.
    names = [p.name for p in territory.profiles]
    assert names == ["industrie", "logistique"]
    assert territory.profiles[0].fiabilite_min == 0.5
    assert territory.profiles[1].fiabilite_min == 0.75
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.carte = True  # type: ignore[misc]


def test_defaults_without_options(tmp_path):
    options = load_territory(write(tmp_path, BASE)).options
    assert options.date_observation is None and options.parcelles_par_partition == 40_000
    assert options.mutabilite is not None and options.mutabilite.version == "v1.11"
    assert options.analysis.classes_routes is None and options.vacance.part_min_zae == 0.5


def test_settings_problems_are_collected_and_the_first_raised(tmp_path):
    """``read_territory`` lists each section at fault; ``load_territory`` raises the first."""
    config = write(tmp_path, BASE + """
[options]
partition = "departement"

[profils.industrie]
fiabilite_min = 2
""")
    territory, problems = read_territory(config)
    assert [key for key, _ in problems] == ["profils", "options"]
    assert "profils.industrie.fiabilite_min" in str(problems[0][1])
    assert "options.partition" in str(problems[1][1])
    # The sections at fault get their defaults, so validate can read the sources.
    assert territory.options.parcelles_par_partition == 40_000
    assert territory.profiles[0].fiabilite_min == 0.75
    with pytest.raises(ConfigError, match=r"profils\.industrie\.fiabilite_min"):
        load_territory(config)


def test_only_config_parses_the_territory_file():
    """The rest of the package reads ``Territory``'s typed objects, never a TOML table."""
    root = Path(__file__).resolve().parents[1] / "observatoire"
    parsers = {root / "config.py", root / "profiles.py"}
    found = [f"{path.relative_to(root)}:{n}" for path in sorted(root.rglob("*.py"))
             if path not in parsers
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"tomllib|options\.get\(|options\[\"|load_profiles\(|vacancy_rule\(",
                          line)]
    assert found == []
