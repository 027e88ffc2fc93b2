"""``meilleurs_sites.csv``: French headers with units, values rounded from the analysis' table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyogrio
import pytest

from observatoire.config import load_territory
from observatoire.pipeline import build
from observatoire.publish.meilleurs_sites import best_sites_table

HEADERS = ["Rang", "Gisement (identifiant)", "Surface (m²)", "Surface (ha)",
           "Nombre de parcelles", "Parcelles (IDU)", "Nombre de propriétaires",
           "Classe industrie (A à E)", "Score moyen industrie (/100)",
           "Score minimal industrie (/100)", "Zone d'activités (identifiant)",
           "Friche (identifiant)", "Communes (code INSEE)", "X (EPSG:2154, m)",
           "Y (EPSG:2154, m)", "Longitude (WGS 84, °)", "Latitude (WGS 84, °)"]


def read_csv(path) -> pd.DataFrame:
    """The CSV as a spreadsheet set to French reads it."""
    return pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig",
                       dtype={"Communes (code INSEE)": str})


def test_headers_and_rounding_by_hand():
    analysis = pd.DataFrame({
        "rang": [1, 2], "gisement_id": ["G-1", "G-2"], "surface_m2": [306237.6, 21695.94],
        "surface_ha": [30.62, 2.17], "nb_parcelles": [8, 1], "idus": ["a|b", "c"],
        "nb_proprietaires": pd.array([3, pd.NA], dtype="Int64"), "classe": ["A", "B"],
        "score_moyen": [91.1231484639096, 71.28195932536568],
        "score_min": [71.21510621675583, 71.28195932536568], "zae_id": ["Z", None],
        "friche_id": [None, None], "communes": ["25267", "25267"],
        "x": [937726.83, 936684.94], "y": [6687610.61, 6687701.77],
        "lon": [6.14369512, 6.12997903], "lat": [47.2462041, 47.2473968]})
    before = analysis.copy()
    table = best_sites_table(analysis, profile="industrie", crs="EPSG:2154")
    pd.testing.assert_frame_equal(analysis, before)  # the analysis' table is left as it was
    assert list(table.columns) == HEADERS
    assert table["Surface (m²)"].tolist() == [306238, 21696]
    assert str(table["Surface (m²)"].dtype) == "Int64"
    assert table["Score moyen industrie (/100)"].tolist() == [91.1, 71.3]
    assert table["Score minimal industrie (/100)"].tolist() == [71.2, 71.3]
    assert table["X (EPSG:2154, m)"].tolist() == [937726.8, 936684.9]
    assert table["Latitude (WGS 84, °)"].tolist() == [47.246204, 47.247397]
    assert table["Nombre de propriétaires"].isna().tolist() == [False, True]


def test_other_profile_and_crs_in_the_headers():
    table = best_sites_table(pd.DataFrame({"score_moyen": [50.04], "x": [1.0]}),
                             profile="logistique", crs="EPSG:2975")
    assert list(table.columns) == ["Score moyen logistique (/100)", "X (EPSG:2975, m)"]
    assert table.iloc[0, 0] == 50.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("gennes")
    territory = load_territory("data/sample/territoire.toml", output_dir=out)
    build(territory)
    return out


@pytest.mark.slow
def test_published_csv_is_the_layer_rounded(built):
    """Read back: each value is the GeoPackage's ``gisements`` value, rounded."""
    table = read_csv(built / "meilleurs_sites.csv")
    assert list(table.columns) == HEADERS
    assert all("_" not in h for h in table.columns)
    layer = pyogrio.read_dataframe(built / "observatoire.gpkg", layer="gisements")
    assert len(table) == len(layer) > 10
    assert table["Rang"].tolist() == list(range(1, len(layer) + 1))
    assert table["Gisement (identifiant)"].tolist() == layer["gisement_id"].tolist()
    assert table["Surface (m²)"].tolist() == layer["surface_m2"].round(0).astype(int).tolist()
    assert table["Surface (ha)"].tolist() == (layer["surface_m2"] / 10_000).round(2).tolist()
    for column, header in (("score_moyen", "Score moyen industrie (/100)"),
                           ("score_min", "Score minimal industrie (/100)")):
        assert table[header].tolist() == layer[column].round(1).tolist()
        # One decimal at most, as written in the file.
        assert np.allclose(table[header] * 10, (table[header] * 10).round())
    assert table["Nombre de parcelles"].tolist() == layer["nb_parcelles"].tolist()
    assert table["Communes (code INSEE)"].tolist() == layer["communes"].tolist()
    text = (built / "meilleurs_sites.csv").read_text(encoding="utf-8-sig")
    first = text.splitlines()[1].split(";")
    assert first[HEADERS.index("Score moyen industrie (/100)")] == \
        f"{layer['score_moyen'].iloc[0]:.1f}".replace(".", ",")
