"""Layers of the sample territory with the analysis columns of the column contract.

The publication tests need scored parcels, candidate sites, ZAE vacancy and
ZAE land units. The analysis is not under test here: the values are set by
simple, documented rules on the real sample layers, so that every expected
number can be computed by hand, and hostile strings are planted in the fields
a user could fill.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.build import build
from observatoire.config import load_territory
from observatoire.geopackage import read_layer

ROOT = Path(__file__).resolve().parents[1]

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

CRITERIA = ("surface", "desserte", "pente")
SHARES = {"surface": 0.4, "desserte": 0.35, "pente": 0.25}


@functools.cache
def _sample_build() -> tuple[dict[str, gpd.GeoDataFrame], list]:
    # One build per test process: the layers are read back, copies handed out.
    out = Path(_BUILD_DIR.name)
    territory = load_territory(ROOT / "data" / "sample" / "territoire.toml", output_dir=out)
    result = build(territory)
    layers = {name: read_layer(result.gpkg, name) for name in result.layer_counts}
    return layers, result.reports


_BUILD_DIR = tempfile.TemporaryDirectory(prefix="observatoire-publication-")


def sample_layers(out: Path) -> tuple[dict[str, gpd.GeoDataFrame], object, list]:
    """Return the sample territory's layers (built once), its territory (outputs in ``out``)
    and the reports of its sources."""
    layers, reports = _sample_build()
    territory = load_territory(ROOT / "data" / "sample" / "territoire.toml", output_dir=out)
    return {k: v.copy() for k, v in layers.items()}, territory, list(reports)


def score_class(score: pd.Series) -> pd.Series:
    """A ≥ 80, B ≥ 60, C ≥ 40, D ≥ 20, E below; NULL stays NULL."""
    bins = [-np.inf, 20, 40, 60, 80, np.inf]
    out = pd.cut(score, bins=bins, labels=["E", "D", "C", "B", "A"], right=False)
    return out.astype(object).where(score.notna(), None)


def analysed(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """Return copies of ``layers`` with the contract's analysis columns.

    Rules, for parcel row ``i`` (in file order):

    - ``industrie``: excluded when ``i % 7 == 0``; score ``(i * 37) % 100``;
      contributions 40 / 35 / 25 % of the score (surface, desserte, pente);
      reliability ``0.5 + (i % 6) / 10``.
    - ``logistique``: excluded when ``i % 5 == 0``; score ``(i * 53) % 100``.
    - candidate sites: three sites of parcels 10–12, 20–21 and 30.
    - the ZAE: 4 land units (the parcels it contains most of), 1 vacant and 1
      presumed vacant; one legal entity and one natural person as owners.
    """
    out = {k: v.copy() for k, v in layers.items()}
    p = out["parcelles"].reset_index(drop=True)
    i = pd.Series(np.arange(len(p)), index=p.index)
    for name, excl_mod, mult in (("industrie", 7, 37), ("logistique", 5, 53)):
        excluded = i % excl_mod == 0
        score = ((i * mult) % 100).astype(float).where(~excluded)
        p[f"exclu_{name}"] = excluded
        p[f"exclusions_{name}"] = pd.Series(
            np.where(excluded, "zone naturelle N; pente > 15 %", None), index=p.index, dtype=object)
        p[f"score_{name}"] = score
        p[f"classe_{name}"] = score_class(score)
        for crit in CRITERIA:
            p[f"contrib_{name}_{crit}"] = (score * SHARES[crit]).round(2)
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
    owners = [("personne morale", HOSTILE[0]), ("personne physique", PERSON),
              ("inconnu", None), ("personne morale", "SCI DU PARC")]
    units = gpd.GeoDataFrame({
        "zae_id": zae["zae_id"].iloc[0],
        "uf_id": [f"UF{k}" for k in range(len(inside))],
        "idus": inside["idu"].to_numpy(),
        "surface_m2": inside["surface_m2"].to_numpy(),
        "part_dans_zae": 1.0,
        "coupee_par_limite": False,
        "proprietaire_type": [o[0] for o in owners[:len(inside)]],
        "proprietaire_nom": [o[1] for o in owners[:len(inside)]],
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
    from observatoire.build import sources_table
    from observatoire.geopackage import GeoPackageWriter
    from observatoire.publish.qgis import finalize_gpkg
    from observatoire.schema import LAYERS

    with GeoPackageWriter(territory.gpkg_path) as writer:
        for name, frame in layers.items():
            schema = LAYERS.get(name)
            writer.write(name, frame, description=schema.description if schema else "",
                         geometry_type=GEOMETRY_TYPES.get(name, "MultiPolygon"))
        writer.write("sources", sources_table(list(reports), territory.path.parent),
                     description="Sources lues")
        hook = (lambda con: finalize_gpkg(con, layers, territory)) if finalize else None
        return writer.commit(finalize=hook)
