"""Layers of the sample territory, without analysis or with a hand-made one.

The sample build runs the real analysis. The publication tests need two
inputs that it cannot give: layers *without* any analysis (as the readers
make them, :func:`without_analysis`), and layers whose analysis values follow
simple, documented rules (:func:`analysed`), so that every expected number can
be computed by hand and hostile strings are planted in the fields a user could
fill. The profiles and criteria of those rules are the real ones
(``observatoire/data/profils.toml``, through
:func:`observatoire.profiles.load_profiles`).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.scoring import Profile
from observatoire.config import load_territory
from observatoire.geopackage import read_layer
from observatoire.pipeline import build
from observatoire.schema import LAYERS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "territoire.toml"

#: Values that must show as text and run nothing.
HOSTILE = (
    "<img src=x onerror=\"window.__pwned=1\">",
    "</script><script>window.__pwned=2</script>",
    "`${window.__pwned=3}` \\x3cb\\x3e \\u003c",
    "\u2028<svg onload=window.__pwned=4>\u2029 & <!-- -->",
    "{{ 7 * 7 }} {% if true %}jinja{% endif %} {# #}",
)
#: Natural person who owns a land unit: must never appear in an output.
PERSON = "DUPONT Jean-Hostile"

#: Layers made by the analysis (absent from a build without analysis).
ANALYSIS_LAYERS = ("unites_foncieres", "gisements", "zae_unites")

#: Rules of :func:`analysed`: profile → (excluded when ``i % modulo == 0``, score multiplier).
RULES = {"industrie": (7, 37), "logistique": (5, 53)}


@functools.cache
def _sample_build() -> tuple[dict[str, gpd.GeoDataFrame], list]:
    # One build per test process: the layers are read back, copies handed out.
    out = Path(_BUILD_DIR.name)
    territory = load_territory(SAMPLE, output_dir=out)
    result = build(territory)
    layers = {name: read_layer(result.gpkg, name) for name in result.layer_counts}
    return layers, result.reports


_BUILD_DIR = tempfile.TemporaryDirectory(prefix="observatoire-publication-")


def sample_outputs() -> Path:
    """Return the output folder of the sample territory's build (built once per process)."""
    _sample_build()
    return Path(_BUILD_DIR.name)


def sample_gpkg() -> Path:
    """The GeoPackage of the sample build itself (built once; copy it before changing it)."""
    return sample_outputs() / "observatoire.gpkg"


def sample_layers(out: Path) -> tuple[dict[str, gpd.GeoDataFrame], object, list]:
    """Return the sample territory's layers (built once), its territory (outputs in ``out``)
    and the reports of its sources."""
    layers, reports = _sample_build()
    territory = load_territory(SAMPLE, output_dir=out)
    return {k: v.copy() for k, v in layers.items()}, territory, list(reports)


@functools.cache
def sample_profiles() -> dict[str, Profile]:
    """The scoring profiles of the sample territory (shipped ones and its own), by name."""
    return {p.name: p for p in load_territory(SAMPLE).profiles}


def score_class(score: pd.Series, profile: Profile) -> pd.Series:
    """Class of each score by the profile's thresholds (E below the last); NULL stays NULL."""
    out = pd.Series(np.where(score.notna(), "E", None), index=score.index, dtype=object)
    for name, threshold in reversed(profile.classes):
        out[score >= threshold] = name
    return out


def without_analysis(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """Return copies of ``layers`` as the readers make them, before any analysis.

    Layers of :data:`observatoire.schema.LAYERS` keep their canonical columns
    only; the layers made by the analysis (:data:`ANALYSIS_LAYERS`) are dropped.
    """
    out = {}
    for name, frame in layers.items():
        if name in ANALYSIS_LAYERS:
            continue
        schema = LAYERS.get(name)
        if not isinstance(frame, gpd.GeoDataFrame):  # an attribute table: kept as it is
            out[name] = frame.copy()
            continue
        cols = [*schema.columns, frame.geometry.name] if schema else list(frame.columns)
        out[name] = frame[cols].copy()
    return out


def analysed(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """Return copies of ``layers`` with the contract's analysis columns, set by rules.

    The analysis of the build is removed first (:func:`without_analysis`). Rules,
    for parcel row ``i`` (in file order), with the real profiles
    (:func:`sample_profiles`):

    - ``industrie``: excluded when ``i % 7 == 0``; score ``(i * 37) % 100``;
      each criterion contributes its share of the profile's weight
      (``score * poids / somme des poids``, rounded to 0.01);
      reliability ``0.5 + (i % 6) / 10``; class by the profile's thresholds.
    - ``logistique``: the same with exclusion when ``i % 5 == 0`` and score
      ``(i * 53) % 100``.
    - candidate sites: three sites of parcels 10–12, 20–21 and 30.
    - the ZAE: 4 land units (the parcels it contains most of), 1 vacant and 1
      presumed vacant; one legal entity and one natural person as owners.
    """
    out = without_analysis(layers)
    p = out["parcelles"].reset_index(drop=True)
    i = pd.Series(np.arange(len(p)), index=p.index)
    for name, (excl_mod, mult) in RULES.items():
        profile = sample_profiles()[name]
        excluded = i % excl_mod == 0
        score = ((i * mult) % 100).astype(float).where(~excluded)
        p[f"exclu_{name}"] = excluded
        p[f"exclusions_{name}"] = pd.Series(
            np.where(excluded, "zone naturelle N; pente > 15 %", None), index=p.index, dtype=object)
        p[f"score_{name}"] = score
        p[f"classe_{name}"] = score_class(score, profile)
        for crit in profile.criteria:
            p[f"contrib_{name}_{crit.name}"] = (score * crit.weight / profile.total_weight).round(2)
        p[f"raisons_{name}"] = pd.Series(
            np.where(excluded, None, "+ grande surface ; − loin d'un échangeur"),
            index=p.index, dtype=object)
        p[f"fiabilite_{name}"] = 0.5 + (i % 6) / 10
    p["zone_libelle"] = "UY"
    p["zae_id"] = None
    p.loc[3, "raisons_industrie"] = HOSTILE[1]
    out["parcelles"] = p

    groups = {"G1": [10, 11, 12], "G2": [20, 21], "G3": [30]}
    rows = []
    for gid, idx in groups.items():
        sel = p.loc[idx]
        rows.append({
            "gisement_id": gid,
            "surface_m2": float(sel["surface_m2"].sum()),
            "nb_parcelles": len(idx),
            "idus": "|".join(sel["idu"]),
            "nb_proprietaires": 1,
            "score_moyen": float(sel["score_industrie"].mean()),
            "score_min": float(sel["score_industrie"].min()),
            "zae_id": None,
            "friche_id": None,
            "geometry": shapely.multipolygons(shapely.get_parts(
                shapely.union_all(sel.geometry.values))),
        })
    out["gisements"] = gpd.GeoDataFrame(rows, geometry="geometry", crs=p.crs)

    zae = out["zae"].copy()
    zone = zae.geometry.iloc[0]
    share = p.geometry.intersection(zone).area / p.geometry.area
    inside = p[share > 0.5].sort_values("idu").head(4)
    occupations = ["occupée", "vacante", "présumée vacante", "présumée occupée"]
    proprietaires = [("personne morale", HOSTILE[0]), ("personne physique", PERSON),
              ("inconnu", None), ("personne morale", "SCI DU PARC")]
    units = gpd.GeoDataFrame({
        "zae_id": zae["zae_id"].iloc[0],
        "uf_id": [f"UF{k}" for k in range(len(inside))],
        "idus": inside["idu"].to_numpy(),
        "surface_m2": inside["surface_m2"].to_numpy(),
        "part_dans_zae": 1.0,
        "coupee_par_limite": False,
        "proprietaire_type": [o[0] for o in proprietaires[:len(inside)]],
        "proprietaire_nom": [o[1] for o in proprietaires[:len(inside)]],
        "proprietaire_siren": None,
        "occupants": [f"12345678900011 – {PERSON}"] * len(inside),
        "nb_occupants": 1,
        "occupation": occupations[:len(inside)],
        "statut_vacance": "calculé",
        "raison_vacance": "aucun établissement",
    }, geometry=inside.geometry.to_numpy(), crs=p.crs)
    out["zae_unites"] = units
    vacant = units["occupation"].isin(["vacante", "présumée vacante"])
    zae["zae_nom"] = HOSTILE[2]
    zae["nb_unites"] = len(units)
    zae["nb_unites_vacantes"] = int(vacant.sum())
    zae["taux_vacance"] = vacant.sum() / len(units)
    zae["taux_vacance_surface"] = units.loc[vacant, "surface_m2"].sum() / units["surface_m2"].sum()
    zae["surface_disponible_m2"] = float(units.loc[vacant, "surface_m2"].sum())
    zae["plus_grande_surface_dispo_m2"] = float(units.loc[vacant, "surface_m2"].max())
    zae["regle_vacance"] = "sans établissement SIRENE actif"
    out["zae"] = zae

    friches = out["friches"].copy()
    friches.loc[friches.index[0], "site_nom"] = HOSTILE[0]
    friches.loc[friches.index[1], "site_nom"] = HOSTILE[1]
    friches.loc[friches.index[2], "site_nom"] = HOSTILE[2]
    friches.loc[friches.index[3], "site_type"] = HOSTILE[3]
    friches.loc[friches.index[4], "site_nom"] = HOSTILE[4]
    out["friches"] = friches

    out["unites_foncieres"] = gpd.GeoDataFrame({
        "uf_id": units["uf_id"], "idus": units["idus"], "nb_parcelles": 1,
        "surface_m2": units["surface_m2"], "proprietaire_type": units["proprietaire_type"],
        "proprietaire_nom": units["proprietaire_nom"], "proprietaire_siren": None,
        "methode": "proprietaire"}, geometry=units.geometry.values, crs=p.crs)
    return out


#: Geometry type of each layer written by :func:`write_gpkg`.
GEOMETRY_TYPES = {"friches": "Point", "routes": "MultiLineString"}


def write_gpkg(layers: dict[str, gpd.GeoDataFrame], territory, reports=(), *,
               finalize: bool = True) -> Path:
    """Write ``layers`` (and the ``sources`` table) into the territory's GeoPackage.

    With ``finalize``, styles, the QGIS project and the lineage are added as the
    build does, through :meth:`GeoPackageWriter.commit`.
    """
    from observatoire.geopackage import GeoPackageWriter
    from observatoire.pipeline.build import sources_table
    from observatoire.publish.qgis import finalize_gpkg

    with GeoPackageWriter(territory.gpkg_path) as writer:
        for name, frame in layers.items():
            schema = LAYERS.get(name)
            writer.write(name, frame, description=schema.description if schema else "",
                         geometry_type=GEOMETRY_TYPES.get(name, "MultiPolygon"))
        writer.write("sources", sources_table(list(reports), territory.path.parent),
                     description="Sources lues")
        hook = (lambda con: finalize_gpkg(con, layers, territory)) if finalize else None
        return writer.commit(finalize=hook)
