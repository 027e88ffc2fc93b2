"""``observatoire validate``: per source, what would be read, repaired or refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SAMPLE
from shapely import Polygon
from test_bad_inputs import (
    CORPUS,
    TERRITORY_CORPUS,
    X0,
    Y0,
    bdparcellaire,
    square,
    write_territory,
)
from test_cli import SAMPLE_SOURCES

from observatoire.cli import main
from observatoire.validate import check_territory, validate_territory


def run(capsys, config: Path) -> tuple[int, list[str]]:
    code = main(["validate", "--config", str(config)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out.splitlines()


def line_of(lines: list[str], key: str) -> str:
    (line,) = [ln for ln in lines if f" {key} :" in ln]
    return line


def test_validate_the_sample(capsys):
    code, lines = run(capsys, SAMPLE / "territoire.toml")
    assert code == 0
    assert lines[0].startswith("Territoire « Gennes » : 1 commune(s), EPSG:2154")
    parcelles = line_of(lines, "sources.parcelles")
    assert parcelles.startswith("RÉPARÉ")
    assert "828 entités gardées sur 851 lues" in parcelles
    assert "parcelles hors des communes du territoire écartées : 23" in parcelles
    # Read through the parcels' box, as the build reads it: the zone with an empty
    # geometry has no box and is not read (26 features in the file).
    assert "25 entités gardées sur 25 lues" in line_of(lines, "sources.zonage")
    for key, n in (("sources.batiments", 325), ("sources.routes", 182)):
        line = line_of(lines, key)
        assert line.startswith("LU") and f"{n} entités gardées sur {n} lues" in line
    # As the build: the friches beyond 5 km of the parcels are dropped, and counted.
    assert ("8 entités gardées sur 14 lues (cartofriches, CRS EPSG:4326) — friches hors du "
            "territoire (à plus de 5 km) écartées : 6") in line_of(lines, "sources.friches")
    # No DEM and no constraint: what the results lose, with the reliability points.
    warnings = [ln for ln in lines if ln.startswith("ATTENTION")]
    assert warnings == [
        "ATTENTION source mnt absente : la pente n'est pas notée (fiabilité des scores : "
        "−10 points pour industrie, −15 points pour logistique)",
        "ATTENTION source contraintes absente : aucune contrainte réglementaire (zone "
        "inondable, espace protégé…) n'exclut ni ne pénalise de parcelle (fiabilité des "
        "scores : −5 points pour industrie, −5 points pour logistique)"]
    assert lines[-1] == "Toutes les sources sont lisibles."


def test_validate_a_broken_territory(capsys, tmp_path):
    zonage = CORPUS["geojson_tronque"].build(tmp_path)  # a truncated file as zoning
    friches = CORPUS["csv_latin1"].build(tmp_path)
    out = tmp_path / "sorties"
    config = write_territory(tmp_path, {
        "zonage": zonage,
        "friches": friches,
        "batiments": SAMPLE_SOURCES["batiments"],
        "routes": {"chemin": "routes-absentes.gpkg"},
    }, out=out)
    code, lines = run(capsys, config)
    assert code == 2
    assert line_of(lines, "sources.parcelles").startswith("RÉPARÉ")
    assert line_of(lines, "sources.batiments").startswith("LU")
    zon = line_of(lines, "sources.zonage")
    assert zon.startswith("REFUSÉ") and "cadastre-tronque.json" in zon and "complet" in zon
    fr = line_of(lines, "sources.friches")
    assert fr.startswith("REFUSÉ") and "sources.friches.encodage" in fr
    rt = line_of(lines, "sources.routes")
    assert rt.startswith("REFUSÉ") and "routes-absentes.gpkg" in rt and "introuvable" in rt
    assert lines[-1].startswith("Des sources sont refusées")
    assert not out.exists()  # nothing was built


def test_validate_reports_repairs(tmp_path):
    bow_tie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    bdparcellaire([square(0), bow_tie, None]).to_file(tmp_path / "p.gpkg", layer="parcel")
    config = write_territory(tmp_path, {"parcelles": {"chemin": "p.gpkg"}})
    ok, lines = validate_territory(config)
    assert ok
    line = line_of(lines, "sources.parcelles")
    assert line.startswith("RÉPARÉ")
    assert "2 entités gardées sur 3 lues" in line
    assert "géométries réparées (make_valid) : 1" in line and "géométries nulles : 1" in line


def test_validate_refuses_parcels_outside_the_communes(tmp_path):
    config = write_territory(tmp_path, {}, communes=("25056",))
    ok, lines = validate_territory(config)
    assert not ok
    assert "aucune parcelle des communes 25056" in line_of(lines, "sources.parcelles")


@pytest.mark.parametrize("text", ["[territoire]\nnom = 'x'\n", "pas du TOML ["])
def test_validate_a_bad_territory_file(capsys, tmp_path, text):
    config = tmp_path / "territoire.toml"
    config.write_text(text, encoding="utf-8")
    code, lines = run(capsys, config)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("REFUSÉ fichier de territoire")
    assert str(config) in lines[0]


def test_validate_refuses_an_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "sorties").write_text("un fichier", encoding="utf-8")
    config = write_territory(tmp_path, {}, out=tmp_path / "sorties")
    ok, lines = validate_territory(config)
    assert not ok
    assert "n'est pas un dossier" in line_of(lines, "sorties.dossier")
    assert line_of(lines, "sources.parcelles").startswith("RÉPARÉ")


# --- validate refuses what the build refuses ---------------------------------------------------


def _refused_as(config: Path, error: type, match: str, names: str) -> str:
    """Validate ``config``: refused, by an error of class ``error`` naming ``names``."""
    result = check_territory(config)
    assert not result.ok
    same = [c for c in result.refused if isinstance(c.error, error)
            and re.search(match, str(c.error)) and names in str(c.error)]
    assert same, [c.line for c in result.refused]
    (line,) = [ln for ln in result.lines() if ln == same[0].line]
    assert line.startswith("REFUSÉ")
    return line


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_validate_refuses_every_bad_input(case, tmp_path):
    """Each bad source the build refuses (test_cli.py), validate refuses the same way."""
    bad = CORPUS[case]
    table = bad.build(tmp_path)
    config = write_territory(tmp_path, SAMPLE_SOURCES | {bad.kind: table})
    line = _refused_as(config, bad.error, bad.match, bad.file)
    key = "sources.parcelles" if bad.kind == "parcelles" else f"sources.{bad.kind}"
    assert line.startswith(f"REFUSÉ  {key} : ")


@pytest.mark.parametrize("case", sorted(TERRITORY_CORPUS))
def test_validate_refuses_every_bad_territory(case, tmp_path):
    """Settings and a DEM the build refuses (test_bad_inputs.py): validate refuses them."""
    bad = TERRITORY_CORPUS[case]
    out = tmp_path / "sorties"
    _refused_as(bad.write(tmp_path, out), bad.error, bad.match, bad.names)
    assert not out.exists()


def test_validate_lists_every_refused_setting(tmp_path):
    """The build stops on the first problem; validate names them all, and reads the sources."""
    config = write_territory(tmp_path, {}, options={"partition": "departement",
                                                    "export_cnig": True},
                             profiles={"industrie": {"fiabilite_min": 2}})
    result = check_territory(config)
    assert [c.key for c in result.refused] == ["profils", "options", "options.export_cnig"]
    assert [c.key for c in result.checks if c.status.strip() == "RÉPARÉ"] == [
        "sources.parcelles"]
