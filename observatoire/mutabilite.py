"""Mutabilité (Mutafriches) of every friche and candidate site, in the build.

Called once by both builds, when ``friches`` and ``gisements`` are whole layers
(:func:`mutabilite_layers`). It gathers what the criteria read — from memory in a
build in one pass, from the GeoPackage being written in a build by partition
(parcels, buildings and roads are not held there) — reads the town halls, derives
the criteria (:mod:`observatoire.analysis.mutabilite_criteres`), computes the
indices (:mod:`observatoire.analysis.mutabilite`) and returns the two layers with
their ``mutabilite_*`` columns and the ``mutabilite_criteres`` table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import geoms
from observatoire.analysis.mutabilite import Algorithme, criteria_details, evaluate
from observatoire.analysis.mutabilite_criteres import (
    CriteriaLayers,
    Derived,
    avis_industrie,
    derive_criteria,
    ecart_industrie,
    friche_sites,
    gisement_sites,
    nombre_batiments,
    proprio_personne,
    surface_bati,
    zone_dominante,
)
from observatoire.config import Territory
from observatoire.geopackage import reading_unpublished
from observatoire.ingest import Layers
from observatoire.readers.extra import ExtraSources
from observatoire.readers.lineage import SourceReport
from observatoire.readers.tiles import as_bbox
from observatoire.schema import NULL
from observatoire.sources import kinds_read_at, source_kind

log = logging.getLogger(__name__)

#: Size of the cells grouping points for reading the parcels under them (m).
READ_CELL = 2_000.0
#: Size of the cells grouping sites for reading the buildings around them (m).
BUILDING_CELL = 5_000.0




def _read(path: Path, layer: str, **kwargs: Any) -> gpd.GeoDataFrame:
    import pyogrio

    with reading_unpublished():
        return pyogrio.read_dataframe(path, layer=layer, use_arrow=True, **kwargs)


def _fields(path: Path, layer: str) -> list[str]:
    import pyogrio

    with reading_unpublished():
        return [str(f) for f in pyogrio.read_info(path, layer=layer)["fields"]]


def _has_layer(path: Path, layer: str) -> bool:
    import pyogrio

    with reading_unpublished():
        return layer in {str(name) for name, _ in pyogrio.list_layers(path)}


class ParcelLookup:
    """The parcels the mutabilité needs, read from the GeoPackage being written.

    Parameters
    ----------
    gpkg
        The GeoPackage holding the ``parcelles`` layer (``None``: no parcel).
    """

    def __init__(self, gpkg: Path | None) -> None:
        self.gpkg = gpkg

    def of_friches(self, score: str) -> gpd.GeoDataFrame:
        """Return the parcels linked to a friche (``friche_id``): idu, commune, score."""
        want = ["idu", "code_insee", "friche_id", score]
        if self.gpkg is None or not _has_layer(self.gpkg, "parcelles"):
            return gpd.GeoDataFrame({"idu": [], "code_insee": []}, geometry=[])
        have = _fields(self.gpkg, "parcelles")
        if "friche_id" not in have:
            return _read(self.gpkg, "parcelles", columns=["idu", "code_insee"], max_features=0)
        return _read(self.gpkg, "parcelles", columns=[c for c in want if c in have],
                     where="friche_id IS NOT NULL")

    def extent(self) -> tuple[float, float, float, float] | None:
        """Return the box of the parcels (``None`` without parcels)."""
        if self.gpkg is None or not _has_layer(self.gpkg, "parcelles"):
            return None
        import pyogrio

        with reading_unpublished():
            info = pyogrio.read_info(self.gpkg, layer="parcelles", force_total_bounds=True)
        bounds = info.get("total_bounds")
        return as_bbox(bounds) if bounds is not None and info["features"] else None

    def communes_at(self, points: np.ndarray) -> np.ndarray:
        """Return the ``code_insee`` of the parcel under each point (``None`` off the parcels)."""
        out = np.full(len(points), None, dtype=object)
        box = self.extent()
        if len(points) == 0 or box is None:
            return out
        # Only the points within the parcels' box can lie on one (a national file of town
        # halls is not read parcel by parcel).
        inside = np.flatnonzero(shapely.intersects(shapely.box(*box), points))
        if len(inside) < len(points):
            out[inside] = self.communes_at_all(points[inside])
            return out
        return self.communes_at_all(points)

    def communes_at_all(self, points: np.ndarray) -> np.ndarray:
        """Return the ``code_insee`` of the parcel under each point, every point looked up."""
        out = np.full(len(points), None, dtype=object)
        if len(points) == 0:
            return out
        if self.gpkg is None or not _has_layer(self.gpkg, "parcelles"):
            return out
        parts = [(rows, _read(self.gpkg, "parcelles", columns=["idu", "code_insee"], bbox=box))
                 for rows, box in _cells(points)]
        for rows, frame in parts:
            if len(frame) == 0:
                continue
            qi, pi = shapely.STRtree(geoms(frame)).query(points[rows], predicate="intersects")
            if len(qi):
                t = pd.DataFrame({"q": rows[qi], "c": frame["code_insee"].to_numpy(
                    dtype=object)[pi], "idu": frame["idu"].to_numpy(dtype=object)[pi]})
                t = t.sort_values(["q", "idu"]).drop_duplicates("q")
                out[t["q"].to_numpy()] = t["c"].to_numpy(dtype=object)
        return out


def _cells(g: np.ndarray, size: float = READ_CELL
           ) -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """Group geometries by grid cell: each group's rows and the box of its geometries."""
    b = shapely.bounds(g)
    ok = np.isfinite(b).all(axis=1)
    rows = np.flatnonzero(ok)
    if len(rows) == 0:
        return []
    cx = np.floor(b[rows, 0] / size).astype(np.int64)
    cy = np.floor(b[rows, 1] / size).astype(np.int64)
    frame = pd.DataFrame({"r": rows, "x": cx, "y": cy})
    out = []
    for _, grp in frame.groupby(["x", "y"], sort=True):
        r = grp["r"].to_numpy()
        box = b[r]
        out.append((r, (float(box[:, 0].min()), float(box[:, 1].min()),
                        float(box[:, 2].max()), float(box[:, 3].max()))))
    return out


def _built_by_cells(gpkg: Path, sites: gpd.GeoDataFrame) -> tuple[Derived, pd.Series]:
    """Measure the built area and buildings of the sites, reading the buildings cell by cell.

    Each group of sites reads the buildings meeting its box from the GeoPackage being
    written: the same values as with every building in memory, without holding them.
    """
    values = np.full(len(sites), None, dtype=object)
    sources = np.full(len(sites), "site connu par son seul point", dtype=object)
    counts = pd.array([pd.NA] * len(sites), dtype="Int64")
    for rows, box in _cells(geoms(sites), BUILDING_CELL):
        part = sites.iloc[rows]
        found = _read(gpkg, "batiments", columns=[], bbox=box)
        d = surface_bati(part, found)
        values[rows] = d.values.to_numpy(dtype=object)
        sources[rows] = d.sources.to_numpy(dtype=object)
        counts[rows] = nombre_batiments(part, found).array
    return (Derived(pd.Series(values, index=sites.index, dtype=object),
                    pd.Series(sources, index=sites.index, dtype=object)),
            pd.Series(counts, index=sites.index))


def _main_roads(gpkg: Path) -> gpd.GeoDataFrame:
    """Read the roads that may be "de grande circulation" from the GeoPackage (a superset)."""
    have = _fields(gpkg, "routes")
    clauses = []
    if "classe" in have:
        clauses.append("classe IN ('autoroute', 'principale')")
    if "importance" in have:
        clauses.append("importance IN (1, 2)")
    if "nature" in have:
        clauses.append("lower(nature) LIKE '%chauss%' OR lower(nature) LIKE '%bretelle%' "
                       "OR lower(nature) LIKE '%autorout%'")
    cols = [c for c in ("nature", "importance", "classe") if c in have]
    if not clauses:
        return _read(gpkg, "routes", columns=cols)
    return _read(gpkg, "routes", columns=cols, where=" OR ".join(f"({c})" for c in clauses))


def read_town_halls(territory: Territory, lookup: ParcelLookup, reports: list[SourceReport]
                    ) -> gpd.GeoDataFrame | None:
    """Read ``mairies`` and ``chefs_lieux`` (reports appended); their commune completed.

    A point without ``code_insee`` takes the commune of the parcel it lies on.
    """
    frames = []
    for kind in kinds_read_at("mutabilite"):
        source = territory.source(kind)
        if source is None:
            continue
        log.info("lecture de %s (%s)", kind, ", ".join(p.name for p in source.paths))
        result = source_kind(kind).reader(source, crs=territory.crs, base=territory.path.parent)
        reports.append(result.report)
        frames.append(result.frame)
    if not frames:
        return None
    points = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                              crs=territory.crs)
    missing = points["code_insee"].isna().to_numpy()
    if missing.any():
        codes = points["code_insee"].to_numpy(dtype=object).copy()
        codes[missing] = lookup.communes_at(geoms(points)[missing])
        points["code_insee"] = codes
    return points


def _format_values(values: pd.DataFrame) -> np.ndarray:
    """Display text of criterion values (sites × criteria), ``oui``/``non`` for booleans.

    Column by column: ``True`` and ``1`` (or ``False`` and ``0``) would be one value
    for a factorisation of mixed columns.
    """
    out = np.full(values.shape, None, dtype=object)
    for k, column in enumerate(values.columns):
        codes, uniques = pd.factorize(values[column].astype(object), use_na_sentinel=True)
        text = []
        for u in uniques:
            if isinstance(u, bool | np.bool_):
                text.append("oui" if u else "non")
            elif isinstance(u, float | np.floating) and float(u).is_integer():
                text.append(str(int(u)))
            else:
                text.append(str(u))
        table = np.array(text, dtype=object)
        ok = codes >= 0
        out[ok, k] = table[codes[ok]]
    return out


def criteria_table(sites: pd.DataFrame, values: pd.DataFrame, sources: pd.DataFrame,
                   algorithm: Algorithme, site_type: np.ndarray) -> pd.DataFrame:
    """Return the ``mutabilite_criteres`` table: one row per site × criterion."""
    keys = list(algorithm.keys)
    det = criteria_details(values, algorithm)
    line = det["ligne"].to_numpy()
    frame = pd.DataFrame({
        "site_type": site_type[line],
        "site_id": sites["site_id"].to_numpy(dtype=object)[line],
        "critere": det["critere"].to_numpy(dtype=object),
        "critere_libelle": det["critere"].map({c.key: c.label for c in algorithm.criteres})
        .to_numpy(dtype=object),
        "valeur": _format_values(values.reindex(columns=keys)).ravel(),
        "source": sources.reindex(columns=keys).to_numpy(dtype=object).ravel(),
        "etat": det["etat"].to_numpy(dtype=object),
        "classe": det["classe"].to_numpy(dtype=object),
        "poids": det["poids"].to_numpy(dtype=float),
        "renseigne": det["renseigne"].to_numpy(dtype=bool),
    })
    for u in algorithm.usages:
        frame[f"impact_{u}"] = det[f"impact_{u}"].to_numpy(dtype=float)
    frame["version"] = algorithm.version
    return frame


def _fill(frame: pd.DataFrame, column: str, values: np.ndarray) -> None:
    """Write ``values`` into ``column`` where the source left it empty (CNIG fields)."""
    new = pd.Series(values, index=frame.index, dtype=object)
    if column in frame and pd.api.types.is_numeric_dtype(frame[column]):
        frame[column] = frame[column].fillna(pd.to_numeric(new, errors="coerce"))
    elif column in frame:
        old = frame[column].astype(object)
        frame[column] = old.where(old.notna() & old.astype(str).str.strip().ne(""), new)
    else:
        frame[column] = new


def mutabilite_layers(outputs: dict[str, gpd.GeoDataFrame], layers: Layers, extra: ExtraSources,
                      territory: Territory, *, gpkg: Path | None = None,
                      say: Callable[[str], None] | None = None) -> dict[str, pd.DataFrame]:
    """Compute the mutabilité of every friche and candidate site.

    Parameters
    ----------
    outputs
        The layers of the build: ``friches``, ``friches_surfaces``, ``gisements``.
    layers
        The canonical layers (:class:`observatoire.ingest.Layers`): zonage, buildings,
        roads, establishments, ``available`` and ``reports`` (the town halls' reports
        are appended).
    extra
        The analysis inputs as read (:class:`observatoire.readers.extra.ExtraSources`):
        constraints, railways, owners.
    territory
        The territory (its ``[options.mutabilite]``, its first profile).
    gpkg
        The GeoPackage being written, in a build by partition: the parcels, buildings
        and roads are read from it.
    say
        Progress messages.

    Returns
    -------
    dict
        ``friches`` and ``gisements`` with their ``mutabilite_*`` columns, and the
        ``mutabilite_criteres`` table; empty when the territory turns it off.
    """
    from observatoire.analysis import extra_inputs
    algo = territory.options.mutabilite
    if algo is None:
        return {}
    if say is not None:
        say(f"Mutabilité des friches et des gisements (Mutafriches {algo.version})…")
    friches = outputs.get("friches")
    gisements = outputs.get("gisements")
    if friches is None or gisements is None:
        return {}
    profile = territory.profiles[0]
    score = f"score_{profile.name}"
    inputs = extra_inputs(extra.read, contraintes=extra.contraintes)
    available = set(layers.available)
    lookup = ParcelLookup(gpkg)
    parcels = lookup.of_friches(score) if len(friches) else gpd.GeoDataFrame(
        {"idu": [], "code_insee": []}, geometry=[], crs=territory.crs)
    surfaces = outputs.get("friches_surfaces", layers.friches_surfaces)
    fsites = friche_sites(friches.reset_index(drop=True), surfaces, parcels, score=score)
    gsites = gisement_sites(gisements.reset_index(drop=True))
    sites = gpd.GeoDataFrame(pd.concat([fsites, gsites], ignore_index=True), geometry="geometry",
                             crs=territory.crs)
    nf = len(fsites)

    batiments = built = None
    if "batiments" in available:
        if gpkg is not None and _has_layer(gpkg, "batiments"):
            built, count = _built_by_cells(gpkg, sites)
        else:
            batiments = layers.batiments
            count = nombre_batiments(sites, batiments)
    else:
        count = nombre_batiments(sites, None)
    routes = None
    if "routes" in available:
        routes = _main_roads(gpkg) if gpkg is not None and _has_layer(gpkg, "routes") \
            else layers.routes
    context = CriteriaLayers(
        batiments=batiments,
        surfaces_baties=built,
        routes=routes,
        zonage=layers.zonage if "zonage" in available else None,
        contraintes=inputs.contraintes,
        voies_ferrees=inputs.couches.get("voies_ferrees"),
        mairies=read_town_halls(territory, lookup, layers.reports),
        etablissements=layers.etablissements,
        proprietaires=inputs.proprietaires,
        proprietaires_absents=inputs.proprietaires_absents,
    )
    values, sources = derive_criteria(sites, context)
    ev = evaluate(values, algo)
    cols = ev.columns(sites.index)
    # The observatory's own industrial score beside Mutafriches' industry index: a
    # candidate site has its mean score; a friche, that of its parcels (none when its
    # parcels are unknown, e.g. outside the territory).
    score_obs = sites["score_observatoire"].to_numpy(float)
    if "industrie" in algo.usages:
        j = algo.usages.index("industrie")
        avis = avis_industrie(score_obs, dict(profile.classes), ev.potentiels[:, j],
                              sites["idus"].notna().to_numpy())
        cols["mutabilite_avis_industrie"] = avis
        cols["mutabilite_ecart_industrie"] = ecart_industrie(
            avis, score_obs, dict(profile.classes), ev.indices[:, j], ev.potentiels[:, j],
            ev.rangs[:, j], ev.meilleur_usage, dict(algo.usage_labels))
    cols["mutabilite_score_observatoire"] = score_obs

    out_friches = friches.copy()
    fc = cols.iloc[:nf].set_axis(friches.index)
    for c in fc.columns:
        out_friches[c] = fc[c]
    # CNIG Friches fields the observatory knows, where the source left them empty.
    fs = sites.iloc[:nf]
    areal = shapely.get_dimensions(geoms(fs)) == 2
    _fill(out_friches, "unite_fonciere_surface",
          np.where(areal, values["surfaceSite"].to_numpy(dtype=object)[:nf], NULL))
    _fill(out_friches, "bati_nombre", np.array([None if pd.isna(v) else str(int(v))
                                                for v in count.iloc[:nf]], dtype=object))
    _fill(out_friches, "proprio_personne", proprio_personne(
        fs, context.proprietaires, absents=context.proprietaires_absents))
    if context.zonage is not None and nf:
        best = zone_dominante(fs, context.zonage)
        for column, field in (("urba_zone_type", "typezone"), ("urba_zone_lib", "libelle")):
            vals = context.zonage[field].to_numpy(dtype=object) if field in context.zonage \
                else np.full(len(context.zonage), None, dtype=object)
            _fill(out_friches, column, np.where(best >= 0, vals[np.maximum(best, 0)], NULL))

    out_gisements = gisements.copy()
    gc = cols.iloc[nf:].set_axis(gisements.index)
    for c in gc.columns:
        out_gisements[c] = gc[c]
    site_type = np.r_[np.full(nf, "friche", dtype=object),
                      np.full(len(gsites), "gisement", dtype=object)]
    table = criteria_table(sites, values, sources, algo, site_type)
    log.info("mutabilité (Mutafriches %s) : %d friches, %d gisements, fiabilité médiane %s/10",
             algo.version, nf, len(gsites),
             float(np.median(ev.fiabilite)) if len(ev.fiabilite) else "—")
    return {"friches": out_friches, "gisements": out_gisements, "mutabilite_criteres": table}


__all__ = ["ParcelLookup", "criteria_table", "mutabilite_layers", "read_town_halls"]
