"""The source registry: one table for the territory file, validate, the build, the analysis."""

from __future__ import annotations

import inspect
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from observatoire.analysis.indicators import compute_indicators
from observatoire.config import load_territory
from observatoire.errors import ConfigError
from observatoire.readers.extra import read_extra_sources
from observatoire.schema import LayerSchema
from observatoire.sources import (
    DISTANCE_INDICATORS,
    INDICATOR_SOURCES,
    SOURCE_KINDS,
    SOURCES,
    kinds_read_at,
)

SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "sample").as_posix()


def test_every_kind_has_a_reader_and_a_schema():
    for spec in SOURCES:
        params = inspect.signature(spec.reader).parameters
        assert {"source", "crs", "base"} <= set(params), spec.name
        if spec.boxed:
            assert "bbox" in params, spec.name
        if spec.schema_ref is None:
            assert spec.name == "mnt"  # the only raster
        else:
            schema = spec.schema
            assert isinstance(schema, (LayerSchema, list)), spec.name
        assert spec.formats[0] == "auto", spec.name
        assert set(spec.indicators) >= ({spec.distance} - {None}), spec.name
    assert [k.name for k in SOURCES if k.required] == ["parcelles"]
    assert [k.name for k in SOURCES if k.is_list] == ["contraintes"]
    assert kinds_read_at("analyse") == ("mnt", "voies_ferrees", "postes_electriques",
                                        "proprietaires", "contraintes")


def test_indicator_sources_are_the_columns_computed():
    """Every column of compute_indicators without routes nor constraints is in the registry."""
    p = gpd.GeoDataFrame({"idu": ["25267000AB0001"], "surface_m2": [100.0]},
                         geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:2154")
    columns = compute_indicators(p, classes_routes={}).frame.columns
    assert set(columns) == set(INDICATOR_SOURCES)
    assert all(kind in SOURCE_KINDS for kind in INDICATOR_SOURCES.values())
    assert set(DISTANCE_INDICATORS.values()) <= set(columns)


def test_territory_file_takes_its_kinds_and_formats_from_the_registry(tmp_path):
    toml = tmp_path / "t.toml"
    head = f"""[territoire]
nom = "Test"
communes = ["25267"]

[sources.parcelles]
chemin = "{(SAMPLE + '/parcel.gpkg')}"
format = "bdparcellaire"
"""
    toml.write_text(head + '[sources.gares]\nchemin = "x.gpkg"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.gares"):
        load_territory(toml)
    toml.write_text(head + '[sources.voies_ferrees]\nchemin = "x.gpkg"\nformat = "sirene"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="formats possibles : auto, couche"):
        load_territory(toml)


def test_read_extra_sources_follows_the_registry(tmp_path):
    """A railway file declared is read by the registry's reader into ``read``."""
    rail = tmp_path / "rail.gpkg"
    gpd.GeoDataFrame({"nature": ["Voie ferrée principale"]},
                     geometry=[shapely.LineString([(927_000, 6_686_000), (929_000, 6_686_000)])],
                     crs="EPSG:2154").to_file(rail)
    toml = tmp_path / "t.toml"
    toml.write_text(f"""[territoire]
nom = "Test"
communes = ["25267"]

[sources.parcelles]
chemin = "{(SAMPLE + '/parcel.gpkg')}"
format = "bdparcellaire"

[sources.voies_ferrees]
chemin = "rail.gpkg"
""", encoding="utf-8")
    extra = read_extra_sources(load_territory(toml))
    assert set(extra.read) == {"voies_ferrees"} == extra.available()
    assert extra.read["voies_ferrees"].frame["nature"].tolist() == ["Voie ferrée principale"]
    assert [r.kind for r in extra.reports()] == ["voies_ferrees"]
