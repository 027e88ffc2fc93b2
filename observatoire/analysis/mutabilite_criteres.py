"""Mutafriches criteria from the observatory's own layers, for friches and candidate sites.

Mutafriches fetches each criterion of a site from a national API; the observatory
already holds most of these data for the whole territory. Each function here is
pure — sites (a GeoDataFrame: the site's polygon, or a point when nothing better is
known; ``code_insee``; the CNIG Friches fields of a friche) and a layer in, a
:class:`Derived` out — and vectorised over every site. The rules follow the
reference's enrichment code (file names in ``docs/mutabilite.md``).

Three answers are kept apart, as Mutafriches keeps them:

- the source is absent (layer not configured, or the value cannot be derived):
  ``None``, *non renseigné* — it lowers the reliability and is never scored;
- the source was searched and holds nothing for the site: the reference's value for
  that case (``hors-zone``, ``non``, ``plus-1km``, ``False``…), or
  :data:`~observatoire.analysis.mutabilite.AUCUN_RESULTAT` where the reference
  stores ``null``;
- the user's "don't know" from a friche source (``inconnu``):
  :data:`~observatoire.analysis.mutabilite.NE_SAIT_PAS`.

Criteria the observatory cannot know (public transport, electricity connection,
vacant housing, clay and cavities, ZAER, ABC zoning, landscape, road quality,
protected species) are *non renseigné* for every site.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import geoms
from observatoire.analysis.indicators import Constraint
from observatoire.analysis.mutabilite import NE_SAIT_PAS, round_half_up
from observatoire.analysis.nearest import nearest_distance
from observatoire.analysis.overlay import overlap_pairs
from observatoire.schema import NULL

#: Town centre: town hall nearer than this (m), excluded (``SEUIL_CENTRE_VILLE_M``).
SEUIL_CENTRE_VILLE_M = 1000.0
#: Roads of "grande circulation" are searched this far (``RAYON_RECHERCHE_AUTOROUTE_M``).
RAYON_AUTOROUTE_M = 15000.0
#: Natures and importances of a "voie de grande circulation" (IgnWfsService).
NATURES_GRANDE_CIRCULATION = ("type autoroutier", "route a 2 chaussees", "bretelle")
IMPORTANCES_GRANDE_CIRCULATION = (1, 2)
#: A rail siding nearer than this (m, excluded) is "à moins d'1 km" (``SEUIL_PROXIMITE_ITE_M``).
SEUIL_ITE_M = 1000.0
#: Built area above which the site is taken as connected to water (m², excluded).
SEUIL_BATI_RACCORDEMENT_EAU_M2 = 20.0
#: Shops and services are searched within this distance (m, included).
RAYON_COMMERCES_M = 500.0
#: NAF codes (without dot) standing for the BPE facilities Mutafriches searches: food
#: shops (hyper/supermarkets, convenience and grocery stores, bakeries, butchers, fish
#: shops), banks, post offices, pharmacies.
NAF_COMMERCES_SERVICES = frozenset({
    "4711B", "4711C", "4711D", "4711E", "4711F", "4722Z", "4723Z", "4724Z", "1071C",
    "1013B", "6419Z", "5310Z", "4773Z"})
#: DGFiP « groupe de personne » of public owners (État, région, département, commune,
#: office HLM, établissement public).
GROUPES_PUBLICS = frozenset({"État", "région", "département", "commune", "office HLM",
                             "établissement public"})


@dataclass
class Derived:
    """A criterion for every site: its value and where it came from.

    Attributes
    ----------
    values
        The value in the reference's convention (``None``: non renseigné).
    sources
        French text: the layer and the fact read, for the ``mutabilite_criteres`` table.
    """

    values: pd.Series
    sources: pd.Series


def _derived(values: np.ndarray | pd.Series, sources: np.ndarray | pd.Series | str,
             index: pd.Index) -> Derived:
    vals = pd.Series(np.asarray(values, dtype=object), index=index, dtype=object)
    src = (pd.Series(sources, index=index, dtype=object) if isinstance(sources, str)
           else pd.Series(np.asarray(sources, dtype=object), index=index, dtype=object))
    return Derived(vals.where(vals.notna(), None), src)


def unknown(sites: pd.DataFrame, reason: str) -> Derived:
    """Return a criterion the observatory cannot fill: *non renseigné* for every site."""
    return _derived(np.full(len(sites), None, dtype=object), reason, sites.index)


def normalise(text: pd.Series) -> pd.Series:
    """Lower-case text without accents, for keyword matching (NULL → empty)."""
    def one(v: object) -> str:
        s = unicodedata.normalize("NFKD", str(v)).encode("ascii", "ignore").decode().lower()
        return re.sub(r"\s+", " ", s).strip()
    values = text.astype(object).where(text.notna(), "")
    uniques = pd.unique(values.to_numpy(dtype=object))
    table = {u: one(u) for u in uniques}
    return values.map(table).astype(object)


def _areal(g: np.ndarray) -> np.ndarray:
    return shapely.get_dimensions(g) == 2


def representative_points(sites: gpd.GeoDataFrame) -> np.ndarray:
    """Return the point distances are measured from: the centroid, as Mutafriches."""
    return shapely.centroid(geoms(sites))


# --------------------------------------------------------------------------- surfaces


def surface_site(sites: gpd.GeoDataFrame) -> Derived:
    """``surfaceSite``: area of the site's polygon (m², rounded as the reference rounds).

    A friche known only by its point takes its source's ``unite_fonciere_surface``;
    without one, *non renseigné*.
    """
    g = geoms(sites)
    areal = _areal(g)
    area = np.where(areal, round_half_up(shapely.area(g)), np.nan)
    src = np.where(areal, "aire de la géométrie : " + _origin(sites), NULL).astype(object)
    if "unite_fonciere_surface" in sites:
        given = pd.to_numeric(sites["unite_fonciere_surface"], errors="coerce").to_numpy(float)
        use = ~areal & np.isfinite(given)
        area[use] = round_half_up(given[use])
        src[use] = "unite_fonciere_surface de la source des friches"
    src[np.isnan(area)] = "ni périmètre ni parcelle connus, ni unite_fonciere_surface"
    values = np.where(np.isnan(area), NULL, area).astype(object)
    return _derived(values, src, sites.index)


def _origin(sites: pd.DataFrame) -> np.ndarray:
    if "geometrie_origine" in sites:
        return sites["geometrie_origine"].fillna("site").astype(str).to_numpy(dtype=object)
    return np.full(len(sites), "site", dtype=object)


def surface_bati(sites: gpd.GeoDataFrame, batiments: gpd.GeoDataFrame | None) -> Derived:
    """``surfaceBati``: footprint of the buildings inside the site (m², rounded).

    The sum of the areas of the buildings' parts inside the site's polygon (BD TOPO
    buildings do not overlap); 0 when none. Mutafriches sums the footprints of the
    BDNB buildings linked to the parcel. Without a buildings layer, or for a site
    known only by its point, *non renseigné*.
    """
    if batiments is None:
        return unknown(sites, "couche des bâtiments absente")
    g = geoms(sites)
    areal = _areal(g)
    ia, _, area = overlap_pairs(g, geoms(batiments))
    order = np.lexsort((area, ia))
    built = np.bincount(ia[order], weights=area[order], minlength=len(g))
    count = np.bincount(ia, minlength=len(g))
    values = np.where(areal, round_half_up(built), np.nan)
    src = np.where(areal, "bâtiments : " + count.astype(str).astype(object) + " dans le site",
                   "site connu par son seul point").astype(object)
    return _derived(np.where(np.isnan(values), NULL, values).astype(object), src, sites.index)


def nombre_batiments(sites: gpd.GeoDataFrame, batiments: gpd.GeoDataFrame | None) -> pd.Series:
    """Count the buildings meeting each site's polygon (NULL without buildings or polygon)."""
    g = geoms(sites)
    if batiments is None:
        return pd.Series(pd.array([pd.NA] * len(g), dtype="Int64"), index=sites.index)
    ia, _, _ = overlap_pairs(g, geoms(batiments))
    count = pd.array(np.bincount(ia, minlength=len(g)), dtype="Int64")
    count[~_areal(g)] = pd.NA
    return pd.Series(count, index=sites.index)


def raccordement_eau(surface_bati: Derived) -> Derived:
    """``raccordementEau`` derived from the built area, as Mutafriches derives it.

    ``> 20 m²`` → ``oui``; otherwise (0 included) → ``non``; built area unknown →
    ``ne-sait-pas`` (``deriverRaccordementEau``).
    """
    built = pd.to_numeric(surface_bati.values, errors="coerce").to_numpy(float)
    known = np.isfinite(built)
    with np.errstate(invalid="ignore"):
        values = np.where(~known, NE_SAIT_PAS,
                          np.where(built > SEUIL_BATI_RACCORDEMENT_EAU_M2, "oui", "non"))
    src = np.where(known, "déduit de la surface bâtie (plus de 20 m² : raccordé)",
                   "surface bâtie inconnue").astype(object)
    return _derived(values.astype(object), src, surface_bati.values.index)


# --------------------------------------------------------------------------- distances


def site_en_centre_ville(sites: gpd.GeoDataFrame, mairies: gpd.GeoDataFrame | None) -> Derived:
    """``siteEnCentreVille``: the town hall of the site's commune is less than 1 km away.

    Parameters
    ----------
    sites
        With ``code_insee`` (the site's commune).
    mairies
        Points with ``code_insee`` and ``mairie_type`` (``mairie`` from BD TOPO, else
        ``chef-lieu``), or ``None``. Per commune the town hall is used when present,
        else the chef-lieu.

    Returns
    -------
    Derived
        ``True``/``False``; *non renseigné* without the layer or when the commune has
        no point (Mutafriches stores ``False`` when its lookup fails: not repeated).
    """
    if mairies is None:
        return unknown(sites, "ni mairies ni chefs-lieux fournis")
    m = mairies[mairies["code_insee"].notna()]
    rank = np.where(m["mairie_type"].to_numpy(dtype=object) == "mairie", 0, 1)
    m = m.assign(_rank=rank).sort_values(["code_insee", "_rank"], kind="stable")
    first = m.drop_duplicates("code_insee")
    where = pd.Index(first["code_insee"].astype(str).to_numpy(dtype=object))
    commune = sites["code_insee"].astype(object).where(sites["code_insee"].notna(), "")
    pos = where.get_indexer(commune.astype(str).to_numpy(dtype=object))
    pts = representative_points(sites)
    found = pos >= 0
    dist = np.full(len(sites), np.nan)
    if found.any():
        town = geoms(first)[pos[found]]
        dist[found] = shapely.distance(pts[found], town)
    with np.errstate(invalid="ignore"):
        values = np.where(found, dist < SEUIL_CENTRE_VILLE_M, NULL).astype(object)
    kind = np.where(first["mairie_type"].to_numpy(dtype=object) == "mairie", "mairie",
                    "chef-lieu").astype(object)
    src = np.full(len(sites), "aucune mairie ni chef-lieu pour la commune du site", dtype=object)
    src[found] = kind[pos[found]] + " à " + metres(dist[found])
    return _derived(values, src, sites.index)


def metres(d: np.ndarray) -> np.ndarray:
    """Format distances in whole metres (``1234 m``); ``—`` for NaN."""
    d = np.asarray(d, dtype=float)
    ok = np.isfinite(d)
    out = np.full(len(d), "—", dtype=object)
    out[ok] = pd.Series(round_half_up(d[ok])).astype(np.int64).astype(str).to_numpy(
        dtype=object) + " m"
    return out


def grande_circulation(routes: gpd.GeoDataFrame) -> np.ndarray:
    """Mask of the "voies de grande circulation" of the reference among the roads.

    BD TOPO nature « Type autoroutier », « Route à 2 chaussées » or « Bretelle », or
    importance 1 or 2 (the reference's WFS filter); for another source, the
    observatory's classes ``autoroute`` and ``principale``.
    """
    nature = (normalise(routes["nature"]) if "nature" in routes
              else pd.Series("", index=routes.index))
    imp = pd.to_numeric(routes["importance"], errors="coerce") if "importance" in routes \
        else pd.Series(np.nan, index=routes.index)
    cls = routes["classe"].astype(object) if "classe" in routes else pd.Series(
        None, index=routes.index, dtype=object)
    return (nature.isin(NATURES_GRANDE_CIRCULATION) | imp.isin(IMPORTANCES_GRANDE_CIRCULATION)
            | cls.isin(["autoroute", "principale"])).to_numpy(dtype=bool)


def distance_autoroute(sites: gpd.GeoDataFrame, routes: gpd.GeoDataFrame | None) -> Derived:
    """``distanceAutoroute``: metres from the site's centroid to the nearest main road.

    Rounded to the metre as the reference does. Beyond 15 km, or with no such road
    in the layer, *non renseigné* (the reference's search fails then); without a
    roads layer, *non renseigné*.
    """
    if routes is None:
        return unknown(sites, "couche des routes absente")
    target = geoms(routes)[grande_circulation(routes)]
    dist = nearest_distance(representative_points(sites), target)
    d = round_half_up(dist)
    ok = np.isfinite(d) & (dist <= RAYON_AUTOROUTE_M)
    values = np.where(ok, d, NULL).astype(object)
    src = np.where(ok, "voie de grande circulation à " + metres(d),
                   "aucune voie de grande circulation à moins de 15 km dans la couche des "
                   "routes").astype(object)
    return _derived(values, src, sites.index)


def distance_ite(sites: gpd.GeoDataFrame, voies_ferrees: gpd.GeoDataFrame | None) -> Derived:
    """``distanceIte``: a rail siding less than 1 km from the site's centroid.

    Sidings are the railway sections whose nature says « voie de service »,
    « embranchement » or « ITE » (BD TOPO: « Voie de service »). Their state is not
    known: the reference classes an ITE of unknown state as ``moins-1km-mauvais-etat``.
    None within 1 km: ``plus-1km``. No layer, or a layer without natures: *non
    renseigné*.
    """
    if voies_ferrees is None:
        return unknown(sites, "couche des voies ferrées absente")
    nature = normalise(voies_ferrees["nature"]) if "nature" in voies_ferrees else pd.Series(
        "", index=voies_ferrees.index)
    if not nature.ne("").any():
        return unknown(sites, "voies ferrées sans nature : embranchements non reconnaissables")
    siding = nature.str.contains(r"voie de service|embranch|\bite\b", regex=True).to_numpy()
    dist = nearest_distance(representative_points(sites), geoms(voies_ferrees)[siding])
    with np.errstate(invalid="ignore"):
        near = np.isfinite(dist) & (dist < SEUIL_ITE_M)
    values = np.where(near, "moins-1km-mauvais-etat", "plus-1km").astype(object)
    src = np.where(near, "voie de service à " + metres(dist) + " (état inconnu)",
                   "aucune voie de service à moins de 1 km").astype(object)
    return _derived(values, src, sites.index)


def proximite_commerces_services(sites: gpd.GeoDataFrame,
                                 etablissements: gpd.GeoDataFrame | None) -> Derived:
    """``proximiteCommercesServices``: a shop or service within 500 m of the centroid.

    Active SIRENE establishments whose NAF code stands for a BPE facility the reference
    searches (:data:`NAF_COMMERCES_SERVICES`). No establishments layer: *non renseigné*.
    """
    if etablissements is None:
        return unknown(sites, "établissements (SIRENE) absents")
    naf = etablissements["naf"].astype(object).where(etablissements["naf"].notna(), "")
    naf = naf.astype(str).str.replace(".", "", regex=False).str.upper()
    active = (etablissements["etat"].astype(object).where(etablissements["etat"].notna(), "A")
              .astype(str).str.upper().ne("F")) if "etat" in etablissements else True
    keep = (naf.isin(NAF_COMMERCES_SERVICES) & active).to_numpy(dtype=bool)
    dist = nearest_distance(representative_points(sites), geoms(etablissements)[keep])
    with np.errstate(invalid="ignore"):
        near = np.isfinite(dist) & (dist <= RAYON_COMMERCES_M)
    src = np.where(near, "commerce ou service à " + metres(dist),
                   "aucun commerce ni service (SIRENE) à moins de 500 m").astype(object)
    return _derived(near.astype(object), src, sites.index)


# --------------------------------------------------------------------------- zonings


def _hits(sites: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (site, zone) where the site's polygon overlaps the zone (or its point lies in)."""
    g, z = geoms(sites), geoms(zones)
    if len(g) == 0 or len(z) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    areal = _areal(g)
    ia, ib, _ = overlap_pairs(np.where(areal, g, NULL), z)
    pa, pb = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if (~areal).any():
        pts = np.flatnonzero(~areal)
        zi, si = shapely.STRtree(z).query(g[pts], predicate="intersects")
        pa, pb = pts[zi], si
    return np.concatenate([ia, pa]).astype(np.int64), np.concatenate([ib, pb]).astype(np.int64)


def _constraint_frame(contraintes: Sequence[Constraint], kinds: Sequence[str]
                      ) -> gpd.GeoDataFrame | None:
    frames = []
    for c in contraintes:
        if c.kind not in kinds or c.frame is None:
            continue
        f = c.frame
        lib = f["libelle"] if "libelle" in f else pd.Series(None, index=f.index, dtype=object)
        frames.append(gpd.GeoDataFrame({"contrainte_nom": c.name, "libelle": lib.to_numpy()},
                                       geometry=geoms(f), crs=f.crs))
    if not frames:
        return None
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry")


def _presence(sites: gpd.GeoDataFrame, contraintes: Sequence[Constraint], kind: str,
              yes: str | bool, no: str | bool, what: str) -> Derived:
    zones = _constraint_frame(contraintes, [kind])
    if zones is None:
        return unknown(sites, f"aucune contrainte de type « {kind} » déclarée")
    si, zi = _hits(sites, zones)
    hit = np.zeros(len(sites), dtype=bool)
    hit[si] = True
    names = _names_per_site(len(sites), si, zones["contrainte_nom"].to_numpy(dtype=object)[zi])
    values = np.where(hit, yes, no).astype(object) if not isinstance(yes, bool) else hit.astype(
        object)
    src = np.where(hit, "dans : " + names, f"hors de toute zone de {what} déclarée"
                   ).astype(object)
    return _derived(values, src, sites.index)


def _names_per_site(n: int, si: np.ndarray, names: np.ndarray) -> np.ndarray:
    out = np.full(n, "", dtype=object)
    if len(si):
        table = (pd.DataFrame({"s": si, "n": names.astype(str)}).drop_duplicates()
                 .sort_values(["s", "n"]).groupby("s")["n"].agg(", ".join))
        out[table.index.to_numpy()] = table.to_numpy(dtype=object)
    return out


def risque_inondation(sites: gpd.GeoDataFrame, contraintes: Sequence[Constraint]) -> Derived:
    """``risqueInondation``: ``oui`` when the site meets a declared flood zone, else ``non``.

    The reference says ``oui`` when a TRI, AZI, PAPI or PPR concerns the site; here the
    constraint layers of type ``inondation`` (PPRI, AZI…) stand for them. No such layer:
    *non renseigné*.
    """
    return _presence(sites, contraintes, "inondation", "oui", "non", "risque d'inondation")


def risques_technologiques(sites: gpd.GeoDataFrame, contraintes: Sequence[Constraint]
                           ) -> Derived:
    """``presenceRisquesTechnologiques``: the site meets a declared technological-risk zone.

    Constraint layers of type ``risque_technologique`` (SIS, PPRT, ICPE perimeters,
    polluted sites) stand for the reference's SIS and ICPE searches. No such layer:
    *non renseigné*.
    """
    return _presence(sites, contraintes, "risque_technologique", True, False,
                     "risque technologique")


#: Keyword rules classifying a protected area by its layer name and label (normalised):
#: (criterion, value, pattern), in the reference's order of priority per criterion.
ZONE_RULES: tuple[tuple[str, str | None, str], ...] = (
    ("zonageEnvironnemental", "natura-2000",
     r"natura|\bzps\b|\bzsc\b|\bp?sic\b|directive (?:oiseaux|habitats)"),
    ("zonageEnvironnemental", "znieff-type-1-2", r"znieff"),
    ("zonageEnvironnemental", "parc-naturel-national", r"parc (?:naturel )?national"),
    ("zonageEnvironnemental", "parc-naturel-regional", r"parc naturel regional|\bpnr\b"),
    ("zonageEnvironnemental", "reserve-naturelle", r"reserve naturelle|\brn[nr]\b"),
    ("presenceZoneHumide", "oui", r"zones? humides?"),
    ("trameVerteEtBleue", "reservoir-biodiversite", r"reservoir"),
    ("trameVerteEtBleue", "corridor-a-restaurer", r"corridor.*(?:restaur|remise en bon etat)"),
    ("trameVerteEtBleue", "corridor-a-preserver", r"corridor"),
    ("trameVerteEtBleue", None, r"\btvb\b|trame (?:verte|bleue)"),
    ("zonagePatrimonial", "perimetre-abf",
     r"monument.*(?:perimetre|abords|protection|500)|(?:perimetre|abords).*monument"),
    ("zonagePatrimonial", "monument-historique", r"monument|\bmh\b|emprise"),
    ("zonagePatrimonial", "perimetre-abf",
     r"\babf\b|abords|perimetre (?:de protection|delimite)|\bpda\b|\bac1\b"),
    ("zonagePatrimonial", "site-inscrit-classe", r"site (?:inscrit|classe)|\bac2\b"),
    ("zonagePatrimonial", "zppaup", r"zppaup"),
    ("zonagePatrimonial", "avap", r"\bavap\b"),
    ("zonagePatrimonial", "spr", r"\bspr\b|site patrimonial remarquable|secteur sauvegarde|"
                                 r"\bac4\b"),
)
#: The reference's order of priority of the values of each zoning criterion.
PRIORITY = {
    "zonageEnvironnemental": ("natura-2000", "znieff-type-1-2", "parc-naturel-national",
                              "parc-naturel-regional", "reserve-naturelle"),
    "zonagePatrimonial": ("monument-historique", "perimetre-abf", "site-inscrit-classe",
                          "zppaup", "avap", "spr"),
    "trameVerteEtBleue": ("reservoir-biodiversite", "corridor-a-restaurer",
                          "corridor-a-preserver"),
    "presenceZoneHumide": ("oui",),
}
#: Value of a zoning criterion when its layers were searched and nothing was found.
OUTSIDE = {"zonageEnvironnemental": "hors-zone", "zonagePatrimonial": "non-concerne",
           "trameVerteEtBleue": "hors-trame", "presenceZoneHumide": "non"}
#: Constraint types whose zones each zoning criterion reads.
ZONE_KINDS = {"zonageEnvironnemental": ("nature",), "presenceZoneHumide": ("nature",),
              "trameVerteEtBleue": ("nature",), "zonagePatrimonial": ("patrimoine",)}


def classify_zones(zones: pd.DataFrame) -> pd.DataFrame:
    """Classify protected areas by the keywords of their layer name and label.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``zones``: ``critere`` (the criterion it informs, NULL when no
        rule matches) and ``valeur`` (NULL: recognised family, unknown subtype).
    """
    text = normalise(zones["contrainte_nom"].astype(str) + " " +
                     zones["libelle"].astype(object).where(zones["libelle"].notna(), "")
                     .astype(str))
    crit = pd.Series(None, index=zones.index, dtype=object)
    value = pd.Series(None, index=zones.index, dtype=object)
    for criterion, val, pattern in ZONE_RULES:
        todo = crit.isna() & text.str.contains(pattern, regex=True)
        crit[todo] = criterion
        value[todo] = val
    return pd.DataFrame({"critere": crit, "valeur": value})


def zonages_proteges(sites: gpd.GeoDataFrame, contraintes: Sequence[Constraint]
                     ) -> dict[str, Derived]:
    """Protected-area criteria: environmental and heritage zonings, green belt, wetland.

    ``zonageEnvironnemental``, ``zonagePatrimonial``, ``trameVerteEtBleue`` and
    ``presenceZoneHumide``.

    The constraint layers of type ``nature`` and ``patrimoine`` are classified by the
    keywords of their name and label (:data:`ZONE_RULES`: Natura 2000, ZNIEFF,
    parks, reserves, wetlands, green and blue belt, historic monuments and their
    surroundings, listed sites, ZPPAUP, AVAP, SPR). A site meeting zones of several
    values takes the first in the reference's priority; a site meeting only zones
    of the family whose subtype is unknown, or only unclassified zones of the
    criterion's type, is *non renseigné*; a site meeting none takes the reference's
    "outside" value, provided a zone of that family was declared.
    """
    out: dict[str, Derived] = {}
    kinds = sorted({k for v in ZONE_KINDS.values() for k in v})
    zones = _constraint_frame(contraintes, kinds)
    for criterion, ks in ZONE_KINDS.items():
        if zones is None:
            out[criterion] = unknown(sites, f"aucune contrainte de type « {ks[0]} » déclarée")
            continue
        sel = zones[np.isin(zones["contrainte_nom"].map(
            {c.name: c.kind for c in contraintes}).to_numpy(dtype=object), ks)]
        cls = classify_zones(sel)
        family = (cls["critere"] == criterion).to_numpy()
        # Unclassified zones of the environmental type count for the environmental zoning
        # (nature) and heritage zoning (patrimoine) only.
        generic = criterion in ("zonageEnvironnemental", "zonagePatrimonial")
        loose = cls["critere"].isna().to_numpy() & generic
        relevant = family | loose
        if not relevant.any():
            out[criterion] = unknown(sites, "aucune zone de cette famille parmi les contraintes "
                                            "déclarées")
            continue
        z = sel[relevant].reset_index(drop=True)
        vals = cls["valeur"][relevant].to_numpy(dtype=object)
        si, zi = _hits(sites, z)
        order = PRIORITY[criterion]
        rank = np.array([order.index(v) if v in order else len(order) for v in vals[zi]],
                        dtype=np.int64)
        best = np.full(len(sites), len(order) + 1, dtype=np.int64)
        np.minimum.at(best, si, rank)
        hit = np.zeros(len(sites), dtype=bool)
        hit[si] = True
        values = np.full(len(sites), None, dtype=object)
        known = best < len(order)
        values[known] = np.array(order, dtype=object)[best[known]]
        values[~hit] = OUTSIDE[criterion]
        names = _names_per_site(len(sites), si, z["contrainte_nom"].to_numpy(dtype=object)[zi])
        src = np.where(hit, "dans : " + names,
                       "hors de toute zone de cette famille déclarée").astype(object)
        src[hit & ~known] = "dans une zone de sous-type inconnu : " + names[hit & ~known]
        out[criterion] = _derived(values, src, sites.index)
    return out


# Mutafriches' keywords of the long label of a U zone (ZonageReglementaireCalculator).
_HABITAT = ("habitat", "mixte", "pavillonnaire", "centre")
_EQUIPEMENT = ("équipement", "equipement")
_ACTIVITE = ("activité", "activite", "économique", "economique", "industri", "artisanale",
             "artisanat")


def zone_to_mutafriches(typezone: object, destdomi: object, libelle: object,
                        libelong: object) -> str:
    """Map a PLU zone (CNIG zone_urba) to Mutafriches' ``zonageReglementaire``.

    The reference's rules, in order: ``destdomi`` « 02 » or containing « activit » →
    ``zone-vocation-activites``; a U zone by keywords of its long label (habitat,
    mixte, pavillonnaire, centre → habitat; équipement → équipement; activité,
    économique, industri, artisanat → activité), else by its short label (UA–UD →
    habitat, UE → équipement, UI/UX/UY/UZ → activité), else ``zone-urbaine-u``; AU →
    ``zone-a-urbaniser-au``; A → ``zone-agricole-a``; N → ``zone-naturelle-n``;
    anything else ``ne-sait-pas``.
    """
    def s(v: object) -> str:
        return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)

    kind = s(typezone).upper()
    dest = s(destdomi).strip().lower()
    if dest and (dest == "02" or "activit" in dest):
        return "zone-vocation-activites"
    if kind.startswith("U"):
        long = s(libelong).lower()
        if long:
            if any(w in long for w in _HABITAT):
                return "zone-urbaine-u-habitat"
            if any(w in long for w in _EQUIPEMENT):
                return "zone-urbaine-u-equipement"
            if any(w in long for w in _ACTIVITE):
                return "zone-urbaine-u-activite"
        code = s(libelle).upper() if kind == "U" and s(libelle) else kind
        if re.match(r"^U[ABCD]", code):
            return "zone-urbaine-u-habitat"
        if re.match(r"^UE", code):
            return "zone-urbaine-u-equipement"
        if re.match(r"^U[XYZI]", code):
            return "zone-urbaine-u-activite"
        return "zone-urbaine-u"
    # Carte communale sectors (CNIG typezone Zc, ZCa, ZnC), as the reference maps them.
    if kind in ("ZC", "ZCA"):
        return "secteur-ouvert-a-la-construction"
    if kind == "ZNC":
        return "secteur-non-ouvert-a-la-construction"
    if kind.startswith("AU"):
        return "zone-a-urbaniser-au"
    if kind.startswith("A"):
        return "zone-agricole-a"
    if kind.startswith("N"):
        return "zone-naturelle-n"
    return NE_SAIT_PAS


def zone_dominante(sites: gpd.GeoDataFrame, zonage: gpd.GeoDataFrame) -> np.ndarray:
    """Row of the PLU zone covering the largest part of each site (−1: none).

    Ties go to the first zone in layer order; a site known by its point takes the
    first zone containing it.
    """
    g = geoms(sites)
    areal = _areal(g)
    best = np.full(len(g), -1, dtype=np.int64)
    ia, ib, area = overlap_pairs(np.where(areal, g, NULL), geoms(zonage))
    if len(ia):
        order = np.lexsort((ib, -area, ia))
        first = order[np.r_[True, ia[order][1:] != ia[order][:-1]]]
        best[ia[first]] = ib[first]
    if (~areal).any():
        pts = np.flatnonzero(~areal)
        zi, si = shapely.STRtree(geoms(zonage)).query(g[pts], predicate="intersects")
        if len(zi):
            t = pd.DataFrame({"p": pts[zi], "z": si}).sort_values(["p", "z"])
            t = t.drop_duplicates("p")
            best[t["p"].to_numpy()] = t["z"].to_numpy()
    return best


def zonage_reglementaire(sites: gpd.GeoDataFrame, zonage: gpd.GeoDataFrame | None) -> Derived:
    """``zonageReglementaire``: the dominant PLU zone of the site, mapped as the reference.

    No zonage layer: *non renseigné*; no zone on the site (RNU, carte communale):
    ``ne-sait-pas``, as the reference answers.
    """
    if zonage is None:
        return unknown(sites, "zonage du PLU absent")
    best = zone_dominante(sites, zonage)
    cols = {c: (zonage[c].to_numpy(dtype=object) if c in zonage
                else np.full(len(zonage), None, dtype=object))
            for c in ("typezone", "destdomi", "libelle", "libelong")}
    # Each zone mapped once (a territory has far fewer zones than sites).
    used = np.unique(best[best >= 0])
    mapped = np.full(len(zonage), None, dtype=object)
    label = np.full(len(zonage), None, dtype=object)
    for z in used:
        mapped[z] = zone_to_mutafriches(cols["typezone"][z], cols["destdomi"][z],
                                        cols["libelle"][z], cols["libelong"][z])
        label[z] = f"zone {cols['libelle'][z]} (typezone {cols['typezone'][z]})"
    ok = best >= 0
    values = np.full(len(sites), NE_SAIT_PAS, dtype=object)
    src = np.full(len(sites), "aucune zone du PLU sur le site", dtype=object)
    values[ok] = mapped[best[ok]]
    src[ok] = label[best[ok]]
    return _derived(values, src, sites.index)


def zonage_cnig(sites: pd.DataFrame, zonage: Derived) -> Derived:
    """Complete ``zonageReglementaire`` with a friche's CNIG ``urba_zone_type`` / ``urba_zone_lib``.

    Where the PLU layer gives no zone (layer absent, site outside it), the zone the
    friche source gives is mapped by the same rules (its label serves as short and
    long label).
    """
    if "urba_zone_type" not in sites:
        return zonage
    kind = sites["urba_zone_type"].astype(object)
    label = (sites["urba_zone_lib"].astype(object) if "urba_zone_lib" in sites
             else pd.Series(None, index=sites.index, dtype=object))
    values = zonage.values.to_numpy(dtype=object).copy()
    src = zonage.sources.to_numpy(dtype=object).copy()
    todo = (pd.isna(values) | (values == NE_SAIT_PAS)) & kind.notna().to_numpy()
    for i in np.flatnonzero(todo):
        lib = label.iloc[i] if isinstance(label.iloc[i], str) else None
        values[i] = zone_to_mutafriches(kind.iloc[i], None, lib, lib)
        src[i] = (f"source des friches : urba_zone_type {kind.iloc[i]}"
                  + (f", urba_zone_lib {lib}" if lib else ""))
    return _derived(values, src, sites.index)

# --------------------------------------------------------------------------- owners


def categorie_proprietaires(proprietaires: pd.DataFrame, idu: pd.Series, *,
                            absents: str = "inconnu") -> pd.Series:
    """Owner category of each parcel: ``public``, ``prive``, ``copro``, ``mixte`` or NULL.

    From the owner table (one row per parcel and owner): a legal entity of a public
    DGFiP group (:data:`GROUPES_PUBLICS`) is public; a natural person, or a legal
    entity of another known group, is private; the group « copropriété », or two
    owners or more of a private parcel, make a co-ownership; public and private
    owners together make ``mixte``. A legal entity of unknown group leaves the
    parcel unknown. A parcel absent from the table takes ``absents``
    (``personne physique`` → private; ``inconnu`` → unknown).
    """
    rows = proprietaires[proprietaires["idu"].astype(str).isin(set(idu.astype(str)))]
    rows = rows.dropna(subset=["proprietaire_cle"]).drop_duplicates(["idu", "proprietaire_cle"])
    kind = rows["proprietaire_type"].astype(object)
    group = (rows["proprietaire_groupe"].astype(object) if "proprietaire_groupe" in rows
             else pd.Series(None, index=rows.index, dtype=object))
    public = kind.eq("personne morale") & group.isin(GROUPES_PUBLICS)
    copro = group.eq("copropriété")
    private = kind.eq("personne physique") | (kind.eq("personne morale") & group.notna()
                                              & ~public)
    t = pd.DataFrame({"idu": rows["idu"].astype(str), "public": public, "private": private,
                      "copro": copro, "unknown": ~public & ~private, "n": 1})
    agg = t.groupby("idu").agg(public=("public", "sum"), private=("private", "sum"),
                               copro=("copro", "sum"), unknown=("unknown", "sum"),
                               n=("n", "sum"))
    cat = pd.Series(None, index=agg.index, dtype=object)
    cat[(agg["public"] > 0) & (agg["private"] == 0)] = "public"
    cat[(agg["private"] == 1) & (agg["public"] == 0)] = "prive"
    cat[((agg["copro"] > 0) | (agg["private"] > 1)) & (agg["public"] == 0)] = "copro"
    cat[(agg["public"] > 0) & (agg["private"] > 0)] = "mixte"
    cat[agg["unknown"] > 0] = None
    out = cat.reindex(idu.astype(str).to_numpy())
    out.index = idu.index
    missing = ~idu.astype(str).isin(agg.index)
    out[missing] = "prive" if absents == "personne physique" else None
    return out.astype(object)


def combine_proprietaires(categories: pd.Series, site: np.ndarray, n: int) -> np.ndarray:
    """Mutafriches' ``typeProprietaire`` of each site from the categories of its parcels.

    Only public → ``public``; only private → ``prive``; private and co-owned (no
    public) → ``copro-indivision``; public with private or co-owned, or a mixed
    parcel → ``mixte``. A parcel of unknown owner, or no parcel, leaves the site
    *non renseigné* (``None``).
    """
    t = pd.DataFrame({"s": site, "c": categories.to_numpy(dtype=object)})
    out = np.full(n, None, dtype=object)
    if len(t) == 0:
        return out
    flags = pd.get_dummies(t["c"].fillna("?")).groupby(t["s"].to_numpy()).max()
    for c in ("public", "prive", "copro", "mixte", "?"):
        if c not in flags:
            flags[c] = False
    value = pd.Series(None, index=flags.index, dtype=object)
    value[flags["public"]] = "public"
    value[flags["prive"]] = "prive"
    value[flags["copro"]] = "copro-indivision"
    value[flags["mixte"] | (flags["public"] & (flags["prive"] | flags["copro"]))] = "mixte"
    value[flags["?"]] = None
    out[value.index.to_numpy(dtype=np.int64)] = value.to_numpy(dtype=object)
    return out


def type_proprietaire(sites: gpd.GeoDataFrame, proprietaires: pd.DataFrame | None, *,
                      absents: str = "inconnu") -> Derived:
    """``typeProprietaire`` of each site from the owners of the parcels listed in ``idus``.

    Without owner table: the CNIG Friches fields of a friche (:func:`proprietaire_cnig`);
    otherwise *non renseigné*.
    """
    n = len(sites)
    values = np.full(n, None, dtype=object)
    src = np.full(n, "table des propriétaires absente", dtype=object)
    if proprietaires is not None and "idus" in sites:
        lists = sites["idus"].astype(object).where(sites["idus"].notna(), "")
        parcels = lists.astype(str).str.split("|").explode()
        parcels = parcels[parcels.str.len() > 0]
        site = pd.Index(sites.index).get_indexer(parcels.index)
        cats = categorie_proprietaires(proprietaires, parcels.reset_index(drop=True),
                                       absents=absents)
        values = combine_proprietaires(cats, site, n)
        has = np.bincount(site, minlength=n) > 0
        src = np.where(has, "table des propriétaires (parcelles du site)",
                       "aucune parcelle connue pour le site").astype(object)
        src[has & pd.isna(values)] = "propriétaire d'une parcelle inconnu ou de catégorie " \
                                     "inconnue"
    cnig = proprietaire_cnig(sites)
    use = pd.isna(values) & cnig.values.notna().to_numpy()
    values[use] = cnig.values.to_numpy(dtype=object)[use]
    src[use] = cnig.sources.to_numpy(dtype=object)[use]
    return _derived(values, src, sites.index)


# --------------------------------------------------------------------------- friche fields


def _field(sites: pd.DataFrame, name: str) -> pd.Series:
    if name not in sites:
        return pd.Series("", index=sites.index, dtype=object)
    return normalise(sites[name])


def proprietaire_cnig(sites: pd.DataFrame) -> Derived:
    """``typeProprietaire`` from a friche's CNIG ``proprio_type`` (and ``proprio_personne``).

    ``proprio_type`` holds Cerema's owner codes (fichiers fonciers ``catpro3``): P…
    (État, collectivities) → public; X… (natural person), G1… (sociétés civiles) and
    Z… (companies) → private; G2… (copropriétés) → co-owned; other families (A, E, F,
    M, R, S) mix public and private bodies: unknown. Several codes combine as for the
    parcels. Without codes, ``proprio_personne`` « personne physique » → private.
    """
    codes = _field(sites, "proprio_type").str.strip("{}[] ").str.upper()
    personne = _field(sites, "proprio_personne")
    pairs = pd.DataFrame({"c": codes.to_numpy(dtype=object),
                          "p": personne.to_numpy(dtype=object)})
    # Each distinct answer read once.
    table = {key: _proprietaire_codes(*key)
             for key in set(zip(pairs["c"], pairs["p"], strict=True))}
    found = [table[key] for key in zip(pairs["c"], pairs["p"], strict=True)]
    values = np.array([f[0] for f in found] or [], dtype=object)
    src = np.array([f[1] for f in found] or [], dtype=object)
    return _derived(values, src, sites.index)


def _proprietaire_codes(codes: str, personne: str) -> tuple[str | None, str]:
    items = [c.strip().strip('"') for c in codes.replace("|", ",").split(",") if c.strip()]
    if items:
        cats: list[str | None] = []
        for c in items:
            if c.startswith("P"):
                cats.append("public")
            elif c.startswith("G2"):
                cats.append("copro")
            elif c.startswith(("X", "G1", "Z")):
                cats.append("prive")
            else:
                cats.append(None)
        if None in cats:
            return None, f"source des friches : proprio_type {','.join(items)} (catégorie " \
                         f"publique ou privée inconnue)"
        value = combine_proprietaires(pd.Series(cats, dtype=object),
                                      np.zeros(len(cats), np.int64), 1)
        return value[0], f"source des friches : proprio_type {','.join(items)}"
    if personne == "personne physique":
        return "prive", "source des friches : proprio_personne « personne physique »"
    return None, "source des friches : propriétaire inconnu"


#: CNIG Friches ``bati_etat`` → Mutafriches ``etatBatiInfrastructure``.
ETAT_BATI = {"degradation inexistante ou faible": "degradation-faible",
             "degradation moyenne": "degradation-moyenne",
             "degradation tres importante": "degradation-tres-importante",
             "degradation heterogene": "degradation-heterogene",
             "sans objet": "pas-de-bati"}
#: CNIG Friches ``sol_pollution_existe`` → Mutafriches ``presencePollution``.
POLLUTION_SOL = {"pollution inexistante": "non", "pollution traitee": "deja-geree",
                 "pollution averee": "oui-autres-composes"}
#: CNIG Friches ``bati_patrimoine`` → Mutafriches ``valeurArchitecturaleHistorique``.
PATRIMOINE_BATI = {"aucun": "sans-interet",
                   "presence d'un batiment d'interet": "interet-remarquable",
                   "presence d'un batiment classe": "interet-remarquable",
                   "sans objet": "pas-de-bati"}
#: CNIG values meaning "don't know".
INCONNU = ("inconnu", "autre")


def _cnig(sites: pd.DataFrame, name: str, table: dict[str, str], no_building: np.ndarray
          ) -> Derived:
    raw = _field(sites, name)
    values = raw.map(table).astype(object).to_numpy(dtype=object, copy=True)
    src = np.where(pd.notna(values), "source des friches : " + name + " « " + raw + " »",
                   "").astype(object)
    dunno = pd.isna(values) & raw.isin(INCONNU).to_numpy()
    values[dunno] = NE_SAIT_PAS
    src[dunno] = "source des friches : " + name + " « " + raw[dunno] + " »"
    bare = pd.isna(values) | (values == NE_SAIT_PAS)
    bare &= no_building
    values[bare] = "pas-de-bati"
    src[bare] = "aucun bâtiment sur le site"
    src[pd.isna(values)] = f"{name} absent de la source des friches"
    return _derived(values, src, sites.index)


def _no_building(sites: pd.DataFrame, surface_bati: Derived) -> np.ndarray:
    built = pd.to_numeric(surface_bati.values, errors="coerce").to_numpy(float)
    none = np.isfinite(built) & (built == 0)
    if "bati_nombre" in sites:
        none |= (pd.to_numeric(sites["bati_nombre"], errors="coerce") == 0).to_numpy()
    return none


def etat_bati(sites: pd.DataFrame, surface_bati: Derived) -> Derived:
    """``etatBatiInfrastructure`` from CNIG ``bati_etat`` (:data:`ETAT_BATI`).

    « inconnu » / « autre » → ``ne-sait-pas``; a site without building (no building
    in the layer, or ``bati_nombre`` 0) → ``pas-de-bati``; otherwise *non renseigné*.
    """
    return _cnig(sites, "bati_etat", ETAT_BATI, _no_building(sites, surface_bati))


def valeur_architecturale(sites: pd.DataFrame, surface_bati: Derived) -> Derived:
    """``valeurArchitecturaleHistorique`` from CNIG ``bati_patrimoine`` (:data:`PATRIMOINE_BATI`).

    As :func:`etat_bati` for « inconnu » and sites without building.
    """
    return _cnig(sites, "bati_patrimoine", PATRIMOINE_BATI, _no_building(sites, surface_bati))


def pollution(sites: pd.DataFrame) -> Derived:
    """``presencePollution`` from CNIG ``bati_pollution`` and ``sol_pollution_existe``.

    Asbestos in the buildings → ``oui-amiante``; else the soil (:data:`POLLUTION_SOL`):
    « pollution avérée » → ``oui-autres-composes`` (the compounds are not given);
    « peu probable », « supposée », « inconnu » → ``ne-sait-pas``.
    """
    sol = _field(sites, "sol_pollution_existe")
    bati = _field(sites, "bati_pollution")
    values = sol.map(POLLUTION_SOL).astype(object).to_numpy(dtype=object, copy=True)
    src = np.where(pd.notna(values), "source des friches : sol_pollution_existe « " + sol + " »",
                   "").astype(object)
    amiante = (bati == "amiante").to_numpy()
    values[amiante] = "oui-amiante"
    src[amiante] = "source des friches : bati_pollution « amiante »"
    said = pd.isna(values) & (sol.ne("") | bati.ne("")).to_numpy()
    values[said] = NE_SAIT_PAS
    src[said] = ("source des friches : sol_pollution_existe « " + sol[said] + " », "
                 "bati_pollution « " + bati[said] + " »")
    src[pd.isna(values)] = "pollution non renseignée dans la source des friches"
    return _derived(values, src, sites.index)


#: Criteria the observatory cannot fill, and why (``docs/mutabilite.md``).
NON_DISPONIBLES = {
    "distanceTransportCommun": "arrêts de transport en commun non disponibles",
    "distanceRaccordementElectrique": "réseau de distribution Enedis non disponible",
    "tauxLogementsVacants": "taux de vacance des logements (LOVAC) non disponible",
    "risqueRetraitGonflementArgile": "aléa retrait-gonflement des argiles non disponible",
    "risqueCavitesSouterraines": "cavités souterraines non disponibles",
    "zoneAccelerationEnr": "zones d'accélération des EnR non disponibles",
    "zonageAbcLogement": "zonage ABC du logement non disponible",
    "qualitePaysage": "qualité du paysage : saisie de l'utilisateur",
    "qualiteVoieDesserte": "qualité de la voie de desserte : saisie de l'utilisateur",
    "presenceEspecesProtegees": "espèces protégées : saisie de l'utilisateur",
}


@dataclass(frozen=True)
class CriteriaLayers:
    """The layers the criteria read; ``None`` for a source the territory lacks.

    ``surfaces_baties``: the built areas of the sites when already measured (a build
    by partition measures them around each group of sites, not holding every
    building), used instead of ``batiments``. ``mairies``: points with
    ``code_insee`` and ``mairie_type``; ``proprietaires``:
    the owner table (``idu``, ``proprietaire_cle``, ``proprietaire_type``,
    ``proprietaire_groupe``) and ``proprietaires_absents`` the type of the parcels it
    does not list.
    """

    batiments: gpd.GeoDataFrame | None = None
    surfaces_baties: Derived | None = None
    routes: gpd.GeoDataFrame | None = None
    zonage: gpd.GeoDataFrame | None = None
    contraintes: tuple[Constraint, ...] = ()
    voies_ferrees: gpd.GeoDataFrame | None = None
    mairies: gpd.GeoDataFrame | None = None
    etablissements: gpd.GeoDataFrame | None = None
    proprietaires: pd.DataFrame | None = None
    proprietaires_absents: str = "inconnu"


def derive_criteria(sites: gpd.GeoDataFrame, layers: CriteriaLayers
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every Mutafriches criterion of every site, with its source.

    Parameters
    ----------
    sites
        The sites (polygon, or point), with ``code_insee``, optionally ``idus``
        (parcels, for the owners), ``geometrie_origine`` (what the polygon is) and
        the CNIG Friches fields of friches.
    layers
        The observatory's layers.

    Returns
    -------
    tuple of pandas.DataFrame
        The criteria (input of :func:`~observatoire.analysis.mutabilite.evaluate`)
        and their sources (same shape, French text), indexed like ``sites``.
    """
    out: dict[str, Derived] = {}
    out["surfaceSite"] = surface_site(sites)
    out["surfaceBati"] = (layers.surfaces_baties if layers.surfaces_baties is not None
                          else surface_bati(sites, layers.batiments))
    out["siteEnCentreVille"] = site_en_centre_ville(sites, layers.mairies)
    out["distanceAutoroute"] = distance_autoroute(sites, layers.routes)
    out["proximiteCommercesServices"] = proximite_commerces_services(sites,
                                                                     layers.etablissements)
    out["risqueInondation"] = risque_inondation(sites, layers.contraintes)
    out["presenceRisquesTechnologiques"] = risques_technologiques(sites, layers.contraintes)
    out.update(zonages_proteges(sites, layers.contraintes))
    out["zonageReglementaire"] = zonage_cnig(sites, zonage_reglementaire(sites, layers.zonage))
    out["distanceIte"] = distance_ite(sites, layers.voies_ferrees)
    out["typeProprietaire"] = type_proprietaire(sites, layers.proprietaires,
                                                absents=layers.proprietaires_absents)
    out["raccordementEau"] = raccordement_eau(out["surfaceBati"])
    out["etatBatiInfrastructure"] = etat_bati(sites, out["surfaceBati"])
    out["presencePollution"] = pollution(sites)
    out["valeurArchitecturaleHistorique"] = valeur_architecturale(sites, out["surfaceBati"])
    for key, reason in NON_DISPONIBLES.items():
        out[key] = unknown(sites, reason)
    values = pd.DataFrame({k: d.values for k, d in out.items()}, index=sites.index)
    sources = pd.DataFrame({k: d.sources for k, d in out.items()}, index=sites.index)
    return values, sources


__all__ = ["CriteriaLayers", "Derived", "categorie_proprietaires", "classify_zones",
           "combine_proprietaires", "derive_criteria", "distance_autoroute", "distance_ite",
           "etat_bati", "grande_circulation", "pollution", "proprietaire_cnig",
           "proximite_commerces_services", "raccordement_eau", "risque_inondation",
           "risques_technologiques", "site_en_centre_ville", "surface_bati", "surface_site",
           "type_proprietaire", "valeur_architecturale", "zonage_reglementaire",
           "zonages_proteges", "zone_dominante", "zone_to_mutafriches"]


# --------------------------------------------------------------------------- sites


#: Share of a parcel a friche's perimeter must cover for the parcel to be the friche's.
PART_PARCELLE_FRICHE = 0.25


def code_commune(values: pd.Series) -> pd.Series:
    """INSEE codes on 5 characters (a CSV may drop the leading zero: ``1004`` → ``01004``)."""
    c = values.astype(object).where(values.notna(), "").astype(str).str.strip().str.upper()
    c = c.where(~c.str.fullmatch(r"\d{4}"), "0" + c)
    return c.where(c.str.fullmatch(r"(\d{2}|2A|2B)\d{3}"), None).astype(object)


def _join_sorted(keys: np.ndarray, values: np.ndarray, n: int, sep: str = "|") -> np.ndarray:
    out = np.full(n, None, dtype=object)
    if len(keys):
        t = (pd.DataFrame({"k": keys, "v": values}).drop_duplicates().sort_values(["k", "v"])
             .groupby("k")["v"].agg(sep.join))
        out[t.index.to_numpy(dtype=np.int64)] = t.to_numpy(dtype=object)
    return out


def _union_by(keys: np.ndarray, g: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, None, dtype=object)
    if len(keys):
        order = np.argsort(keys, kind="stable")
        k, gg = keys[order], g[order]
        groups, first = np.unique(k, return_inverse=True)
        merged = shapely.buffer(shapely.geometrycollections(gg, indices=first), 0)
        out[groups] = merged
    return out


def _weighted_score(keys: np.ndarray, score: np.ndarray, area: np.ndarray, n: int
                    ) -> np.ndarray:
    """Area-weighted mean score of each key's parcels (NaN: every parcel excluded)."""
    out = np.full(n, np.nan)
    ok = np.isfinite(score)
    if ok.any():
        w = np.bincount(keys[ok], weights=area[ok], minlength=n)
        s = np.bincount(keys[ok], weights=(score * area)[ok], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(w > 0, s / w, np.nan)
    return out


def friche_sites(friches: gpd.GeoDataFrame, surfaces: gpd.GeoDataFrame,
                 parcelles: gpd.GeoDataFrame, *, score: str | None = None
                 ) -> gpd.GeoDataFrame:
    """Return the site of each friche: its perimeter, else its parcels, else its point.

    Parameters
    ----------
    friches
        The ``friches`` layer (points, CNIG fields).
    surfaces
        ``friches_surfaces``: the perimeters known.
    parcelles
        Parcels that may belong to friches (``idu``, ``code_insee``, optionally the
        ``score`` column): those listed in ``unite_fonciere_refcad``, lying under a
        friche's point or covered by a perimeter.
    score
        Column of the parcels holding the observatory's score (first profile).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per friche, in order: ``site_id``, ``geometrie_origine`` (the
        perimeter; the parcels listed in ``unite_fonciere_refcad``; the parcel under
        the point; the point alone), ``idus`` (the parcels of the site),
        ``code_insee``, ``score_observatoire`` (area-weighted mean score of those
        parcels, NaN when all are excluded or none is known), the CNIG fields of the
        friche, and the site's geometry.
    """
    n = len(friches)
    ids = friches["site_id"].astype(str).to_numpy(dtype=object)
    pts = geoms(friches)
    geom = pts.copy()
    origin = np.full(n, "point de la friche", dtype=object)
    idus = np.full(n, None, dtype=object)
    pg = geoms(parcelles)
    p_idu = parcelles["idu"].astype(str).to_numpy(dtype=object)
    p_area = shapely.area(pg)
    p_score = (pd.to_numeric(parcelles[score], errors="coerce").to_numpy(float)
               if score and score in parcelles else np.full(len(pg), np.nan))
    member_site: list[np.ndarray] = []
    member_parcel: list[np.ndarray] = []
    # 1. The perimeter.
    surf = surfaces.drop_duplicates("site_id")
    pos = pd.Index(surf["site_id"].astype(str).to_numpy(dtype=object)).get_indexer(ids)
    has = pos >= 0
    if has.any():
        geom[has] = geoms(surf)[pos[has]]
        origin[has] = "périmètre de la friche"
        rows = np.flatnonzero(has)
        ia, ib, area = overlap_pairs(pg, geom[rows])
        keep = area >= PART_PARCELLE_FRICHE * np.maximum(p_area[ia], 1e-9)
        member_site.append(rows[ib[keep]])
        member_parcel.append(ia[keep])
    # 2. The parcels listed in unite_fonciere_refcad.
    todo = ~has
    if "unite_fonciere_refcad" in friches and todo.any():
        refs = friches["unite_fonciere_refcad"].reset_index(drop=True)[todo]
        listed = refs.dropna().astype(str).str.split("|").explode().str.strip()
        where_idu = pd.Index(p_idu).get_indexer(listed.to_numpy(dtype=object))
        hit = where_idu >= 0
        site_rows = listed.index.to_numpy(dtype=np.int64)[hit]
        parcel_rows = where_idu[hit]
        if len(site_rows):
            u = _union_by(site_rows, pg[parcel_rows], n)
            got = np.unique(site_rows)
            geom[got] = u[got]
            origin[got] = "parcelles de la friche (unite_fonciere_refcad)"
            member_site.append(site_rows)
            member_parcel.append(parcel_rows)
            todo[got] = False
    # 3. The parcel under the point.
    if todo.any() and len(pg):
        rows = np.flatnonzero(todo & ~(shapely.is_missing(pts) | shapely.is_empty(pts)))
        qi, pi = shapely.STRtree(pg).query(pts[rows], predicate="intersects")
        if len(qi):
            t = pd.DataFrame({"s": rows[qi], "p": pi, "idu": p_idu[pi]}).sort_values(
                ["s", "idu"]).drop_duplicates("s")
            s_rows, p_rows = t["s"].to_numpy(), t["p"].to_numpy()
            geom[s_rows] = pg[p_rows]
            origin[s_rows] = "parcelle du point de la friche"
            member_site.append(s_rows)
            member_parcel.append(p_rows)
    ms = np.concatenate(member_site) if member_site else np.zeros(0, np.int64)
    mp = np.concatenate(member_parcel) if member_parcel else np.zeros(0, np.int64)
    idus = _join_sorted(ms, p_idu[mp], n)
    commune = (code_commune(friches["comm_insee"]).to_numpy(dtype=object)
               if "comm_insee" in friches else np.full(n, None, dtype=object))
    first_parcel = np.array([None if v is None else v[:5] for v in idus], dtype=object)
    commune = np.where(pd.isna(commune), first_parcel, commune)
    data = {"site_id": ids, "geometrie_origine": origin, "idus": idus, "code_insee": commune,
            "score_observatoire": _weighted_score(ms, p_score[mp], p_area[mp], n)}
    for c in friches.columns:
        if c not in data and c != friches.geometry.name:
            data[c] = friches[c].to_numpy()
    return gpd.GeoDataFrame(data, geometry=geom, crs=friches.crs)


def gisement_sites(gisements: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the candidate sites as sites: polygon, parcels, commune and mean score."""
    idus = gisements["idus"].astype(object).to_numpy(dtype=object)
    commune = np.array([None if not isinstance(v, str) or len(v) < 5 else v[:5] for v in idus],
                       dtype=object)
    return gpd.GeoDataFrame({
        "site_id": gisements["gisement_id"].astype(str).to_numpy(dtype=object),
        "geometrie_origine": "parcelles du gisement",
        "idus": idus,
        "code_insee": commune,
        "score_observatoire": pd.to_numeric(gisements.get("score_moyen"), errors="coerce")
        .to_numpy(float) if "score_moyen" in gisements else np.full(len(gisements), np.nan),
    }, geometry=geoms(gisements), crs=gisements.crs)


def project_class(score: np.ndarray, classes: dict[str, float]) -> np.ndarray:
    """Class A–E of the observatory's score (``exclue`` for NaN), from the profile's bounds."""
    out = np.full(len(score), "E", dtype=object)
    for name in sorted(classes, key=lambda k: classes[k]):
        with np.errstate(invalid="ignore"):
            out[score >= classes[name]] = name
    out[~np.isfinite(score)] = "exclue"
    return out


#: Mutafriches potentials that say "good for industry" and "poor for industry".
POTENTIELS_FAVORABLES = ("Excellent", "Très bon")
POTENTIELS_DEFAVORABLES = ("Faible", "Moyen")


def avis_industrie(score: np.ndarray, classes: dict[str, float], potentiel: np.ndarray,
                   known: np.ndarray) -> np.ndarray:
    """Whether Mutafriches and the observatory's industrial score agree, per site.

    ``divergent`` when the observatory classes the site A or B and Mutafriches gives
    industry a potential « Faible » or « Moyen », or when the observatory classes it
    D, E or excludes it and Mutafriches gives industry « Excellent » or « Très bon »;
    else ``concordant``; NULL without the observatory's score (``known`` false).
    """
    cls = project_class(score, classes)
    good = np.isin(cls, ["A", "B"])
    bad = np.isin(cls, ["D", "E", "exclue"])
    mf_good = np.isin(potentiel, POTENTIELS_FAVORABLES)
    mf_bad = np.isin(potentiel, POTENTIELS_DEFAVORABLES)
    out = np.where((good & mf_bad) | (bad & mf_good), "divergent", "concordant").astype(object)
    out[~known] = None
    return out


def _fr(x: float) -> str:
    return f"{x:.1f}".replace(".", ",")


def ecart_industrie(avis: np.ndarray, score: np.ndarray, classes: dict[str, float],
                    indice: np.ndarray, potentiel: np.ndarray, rang: np.ndarray,
                    meilleur: np.ndarray, labels: dict[str, str]) -> np.ndarray:
    """Say, per site, how Mutafriches' industry index and the observatory's score compare.

    Returns
    -------
    numpy.ndarray
        French text (NULL where ``avis`` is NULL), e.g. « divergent : l'observatoire
        classe le site A (80,0/100) ; Mutafriches donne à l'industrie 46,4 (Moyen,
        rang 4 sur 7), usage préféré : renaturation ».
    """
    cls = project_class(score, classes)
    out = np.full(len(avis), None, dtype=object)
    for i in np.flatnonzero(pd.notna(avis)):
        obs = ("exclut le site" if cls[i] == "exclue"
               else f"classe le site {cls[i]} ({_fr(score[i])}/100)")
        text = (f"{avis[i]} : l'observatoire {obs} ; Mutafriches donne à l'industrie "
                f"{_fr(indice[i])} ({potentiel[i]}, rang {int(rang[i])} sur 7)")
        if meilleur[i] != "industrie":
            text += f", usage préféré : {labels.get(meilleur[i], meilleur[i]).lower()}"
        out[i] = text
    return out


def proprio_personne(sites: pd.DataFrame, proprietaires: pd.DataFrame | None, *,
                     absents: str = "inconnu") -> np.ndarray:
    """CNIG Friches ``proprio_personne`` of each site from the owners of its parcels.

    « personne physique », « personne morale », or both as Cartofriches writes it
    (« personne physique, personne morale »); NULL without owner table, without
    parcels, or when an owner's type is unknown.
    """
    out = np.full(len(sites), None, dtype=object)
    if proprietaires is None or "idus" not in sites:
        return out
    lists = sites["idus"].astype(object).where(sites["idus"].notna(), "")
    parcels = lists.astype(str).str.split("|").explode()
    parcels = parcels[parcels.str.len() > 0]
    if len(parcels) == 0:
        return out
    site = pd.Index(sites.index).get_indexer(parcels.index)
    rows = proprietaires.drop_duplicates(["idu", "proprietaire_cle"])
    kinds = rows.groupby(rows["idu"].astype(str))["proprietaire_type"].agg(
        lambda v: frozenset(v.dropna()))
    found = kinds.reindex(parcels.to_numpy(dtype=object))
    types = [k if isinstance(k, frozenset) and k else frozenset({absents}) for k in found]
    per_site: dict[int, set[str]] = {}
    for s, t in zip(site, types, strict=True):
        per_site.setdefault(int(s), set()).update(t)
    for s, held in per_site.items():
        if held <= {"personne physique", "personne morale"} and held:
            out[s] = ", ".join(k for k in ("personne physique", "personne morale") if k in held)
    return out
