"""Shared fixtures: the real files shipped in the repository and those of ../shared."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (``scripts/`` is not a package), once per session."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
SAMPLE = ROOT / "data" / "sample"
TESTDATA = ROOT / "tests" / "data"
SHARED = ROOT.parent / "shared" / "data" / "real"
STANDARDS = ROOT.parent / "shared" / "standards"


def shared_file(relative: str) -> Path:
    """Return a file of ../shared/data/real, or skip the test when it is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"fichier réel absent ({path}) : ../shared/ n'accompagne pas ce clone")
    return path


def standard_file(relative: str) -> Path:
    """Return a file of ../shared/standards, or skip the test when it is absent."""
    path = STANDARDS / relative
    if not path.exists():
        pytest.skip(f"standard absent ({path}) : ../shared/ n'accompagne pas ce clone")
    return path


@pytest.fixture
def sample_config() -> Path:
    return SAMPLE / "territoire.toml"


def sample_context_sources(*, friches: bool = True) -> str:
    """The ``[sources.*]`` tables of the sample's context layers, as TOML (absolute paths).

    For test territories built from the sample's files: zoning, buildings, roads,
    and friches unless ``friches=False``.
    """
    text = f"""
[sources.zonage]
chemin = "{SAMPLE / 'zoning.gpkg'}"
couche = "zoning2"

[sources.batiments]
chemin = "{SAMPLE / 'building.gpkg'}"

[sources.routes]
chemin = "{SAMPLE / 'road.gpkg'}"
"""
    if friches:
        text += f"""
[sources.friches]
chemin = "{SAMPLE / 'cartofriches_subset_gennes_25267_5km.geojson'}"
format = "cartofriches"
"""
    return text


def gennes_parcels_and_friches(folder: Path, sources: str = "") -> Path:
    """Write a territory file of the sample's real parcels and friches alone; return it.

    ``sources`` (TOML) adds other sources: without them, every parcel is scored
    on too few criteria for a class.
    """
    toml = folder / "territoire.toml"
    toml.write_text(f"""
[territoire]
nom = "Gennes"
communes = ["25267"]

[sources.parcelles]
chemin = "{SAMPLE / 'parcel.gpkg'}"
couche = "parcel"

[sources.friches]
chemin = "{SAMPLE / 'cartofriches_subset_gennes_25267_5km.geojson'}"
{sources}""", encoding="utf-8")
    return toml


def zoning_without_u_zones(folder: Path) -> Path:
    """Write the sample's real zoning less its mixed urban zones UA and UB; return the file.

    The parcels of those zones get no zone: their zoning criterion is unknown
    (reliability 0.55 for ``industrie``, under the threshold), while the activity
    zone UY, the AU and the A/N zones stay.
    """
    import pyogrio

    zones = pyogrio.read_dataframe(SAMPLE / "zoning.gpkg", layer="zoning2")
    kept = zones[~zones["LIBELLE"].isin(["UA", "UB"])]
    assert 0 < len(kept) < len(zones)
    path = folder / "zonage-sans-ua-ub.gpkg"
    pyogrio.write_dataframe(kept, path, layer="zonage")
    return path
