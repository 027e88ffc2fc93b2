"""The inventory of business zones (ZAE) required by article L318-8-2 of the code de l'urbanisme.

For each zone: its land units (a unit belongs to the zone holding the largest
share of its area, when that share reaches :attr:`VacancyRule.part_min_zae`),
their owner (legal entities by name and SIREN, natural persons only as
« personne physique »), their occupants (establishments located on them) and
their vacancy status with its reason; per zone, the number of units, of vacant
units, the vacancy rate by count and by area and the available area.

Vacancy follows the legal definition when an establishments layer is given: a
unit is vacant when no activity liable to the CFE has used it for at least two
years on 1 January of the observation year and it is unoccupied, i.e. no
establishment is active on it at the observation date and every establishment
that was there closed on or before 1 January of the year minus two. Without an
establishments layer, occupancy is presumed from buildings (a unit bearing a
significant built footprint is « présumée occupée »). With earlier observations of
the establishments in the history (:class:`EstablishmentHistory`), the rule is
evaluated from them (:func:`_observed_status`, ``docs/observation.md``). The rule
applied is written in ``regle_vacance``.

Pure functions: GeoDataFrames in, GeoDataFrames out, inputs never modified, no I/O.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import prepared, same_land
from observatoire.errors import ConfigError, SchemaError

log = logging.getLogger(__name__)

#: Owner categories of the ``unites_foncieres`` contract.
PROPRIETAIRE_TYPES = ("personne morale", "personne physique", "inconnu")
#: Values of ``occupation`` (contract).
OCCUPATIONS = ("occupée", "vacante", "présumée occupée", "présumée vacante")
#: Values of ``statut_vacance``; the first and third count as vacant.
STATUTS = ("vacante", "non vacante", "présumée vacante", "présumée non vacante", "inconnue")
VACANT_STATUTS = ("vacante", "présumée vacante")

#: Columns the ZAE inventory adds to the ``zae`` layer (contract).
ZAE_COLUMNS = ("nb_unites", "nb_unites_vacantes", "taux_vacance", "taux_vacance_surface",
               "surface_disponible_m2", "plus_grande_surface_dispo_m2", "regle_vacance")
#: Columns of the ``zae_unites`` layer: the contract's, then the details.
ZAE_UNITES_COLUMNS = (
    "zae_id", "uf_id", "idus", "surface_m2", "part_dans_zae", "coupee_par_limite",
    "proprietaire_type", "proprietaire_nom", "proprietaire_siren", "occupants", "nb_occupants",
    "occupation", "statut_vacance", "raison_vacance",
    "zae_nom", "nb_parcelles", "surface_dans_zae_m2", "surface_batie_m2",
    "nb_etablissements_fermes", "date_derniere_fermeture",
)

_UNIT_REQUIRED = ("uf_id", "idus", "surface_m2", "proprietaire_type", "proprietaire_nom",
                  "proprietaire_siren")


@dataclass(frozen=True)
class VacancyRule:
    """Thresholds of the inventory, from the territory option ``[options.vacance]``.

    Read by :func:`observatoire.config.vacancy_rule` (``Territory.options.vacance``).

    Attributes
    ----------
    surface_batie_min_m2
        Built footprint (m²) from which a unit is « présumée occupée » when no
        establishments layer is given (a shed or a transformer does not count).
    part_batie_min
        Share of the unit (0–1) the footprint must also cover.
    part_min_zae
        Share of a unit's area (0–1) its zone must hold for the unit to belong to it.
    tolerance_limite
        A unit whose share inside its zone is below ``1 - tolerance_limite`` is
        reported as cut by the boundary (``coupee_par_limite``); the tolerance
        absorbs digitising slivers.
    rayon_rattachement_m
        An establishment located outside every unit (geocoded on the street) is
        attached to the nearest unit within this distance (m).
    naf_exclus
        NAF codes of establishments that do not occupy the land they are located
        on (property companies letting it: 68.20B).
    categories_exclues
        Legal categories excluded likewise (6540: sociétés civiles immobilières).
    """

    surface_batie_min_m2: float = 50.0
    part_batie_min: float = 0.01
    part_min_zae: float = 0.5
    tolerance_limite: float = 0.02
    rayon_rattachement_m: float = 10.0
    naf_exclus: tuple[str, ...] = ("68.20B",)
    categories_exclues: tuple[str, ...] = ("6540",)


#: The default thresholds.
DEFAULT_RULE = VacancyRule()

#: Column of the history's parcel rows: active establishments located on the parcel.
NB_ETABLISSEMENTS_ACTIFS = "nb_etablissements_actifs"


@dataclass(frozen=True)
class ObservedEstablishments:
    """One earlier observation of the history made with an establishments layer.

    Attributes
    ----------
    date
        Date of the observation.
    parcelles
        The parcels on which at least one active establishment was located then
        (``idu``, :data:`NB_ETABLISSEMENTS_ACTIFS`, their shapes at that date).
    """

    date: dt.date
    parcelles: gpd.GeoDataFrame


@dataclass(frozen=True)
class EstablishmentHistory:
    """What the history tells of the establishments before the observation date.

    Read by :func:`observatoire.observation.history.read_establishments`.

    Attributes
    ----------
    observations
        The earlier observations made with an establishments layer, oldest first.
    sans_etablissements
        Dates of the earlier observations made without one.
    """

    observations: Sequence[ObservedEstablishments] = field(default_factory=tuple)
    sans_etablissements: Sequence[dt.date] = field(default_factory=tuple)

def observation_date(value: str | dt.date | None) -> tuple[dt.date, bool]:
    """Parse the option ``date_observation`` (ISO date); default to today.

    Parameters
    ----------
    value
        ``"2025-01-01"``, a date, or ``None``.

    Returns
    -------
    tuple
        The date, and whether it is the default (today).

    Raises
    ------
    ConfigError
        When the text is not an ISO date.
    """
    if value is None:
        return dt.date.today(), True
    if isinstance(value, dt.datetime):
        return value.date(), False
    if isinstance(value, dt.date):
        return value, False
    try:
        return dt.date.fromisoformat(str(value).strip()), False
    except ValueError:
        raise ConfigError(
            f"valeur invalide pour « options.date_observation » : {value!r} (date ISO attendue, "
            f"ex. \"2025-01-01\")"
        ) from None


def vacancy_threshold(date_observation: dt.date) -> dt.date:
    """1 January of the observation year minus two: closures on or before it make a unit vacant."""
    return dt.date(date_observation.year - 2, 1, 1)


def overlap_areas(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i in ``a``, j in ``b``) of intersecting polygons and the area they share.

    Pairs where ``b[j]`` contains ``a[i]`` (or the reverse) take the smaller area
    without computing an intersection.

    Parameters
    ----------
    a, b
        Arrays of polygons.

    Returns
    -------
    tuple of numpy.ndarray
        Indices into ``a``, indices into ``b``, shared areas (> 0 only).
    """
    if len(a) == 0 or len(b) == 0:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype=float)
    tree = shapely.STRtree(b)
    ia, ib = tree.query(a, predicate="intersects")
    ga, gb = a[ia], b[ib]
    area_a, area_b = shapely.area(ga), shapely.area(gb)
    # Prepared for these tests only: the caller's geometries (a département's ZAE units)
    # would otherwise keep their indexes for the rest of the build.
    with prepared(ga, gb):
        inside_b = shapely.contains_properly(gb, ga)
        inside_a = shapely.contains_properly(ga, gb) & ~inside_b
    cross = ~(inside_a | inside_b)
    area = np.where(inside_b, area_a, np.where(inside_a, area_b, 0.0))
    if cross.any():
        area[cross] = shapely.area(shapely.intersection(ga[cross], gb[cross]))
    keep = area > 0
    return ia[keep], ib[keep], area[keep]


def assign_units(zae: gpd.GeoDataFrame, unites: gpd.GeoDataFrame, *,
                 rule: VacancyRule = VacancyRule()) -> pd.DataFrame:
    """Give each land unit the zone holding the largest share of its area.

    Parameters
    ----------
    zae
        The ``zae`` layer (``zae_id``, polygons).
    unites
        The ``unites_foncieres`` layer.
    rule
        ``part_min_zae`` and ``tolerance_limite``.

    Returns
    -------
    pandas.DataFrame
        Indexed like the units kept: ``zae_id``, ``part_dans_zae`` (0–1),
        ``surface_dans_zae_m2`` and ``coupee_par_limite``. Units whose largest
        share is below ``part_min_zae`` are left out.
    """
    u = unites.geometry.values
    z = zae.geometry.values
    iu, iz, area = overlap_areas(np.asarray(u), np.asarray(z))
    unit_area = shapely.area(np.asarray(u))
    pairs = pd.DataFrame({"iu": iu, "iz": iz, "area": area})
    if len(pairs) == 0:
        return pd.DataFrame({"zae_id": pd.Series([], dtype=object),
                             "part_dans_zae": pd.Series([], dtype=float),
                             "surface_dans_zae_m2": pd.Series([], dtype=float),
                             "coupee_par_limite": pd.Series([], dtype=bool)})
    # Largest share first; ties go to the zone listed first.
    best = pairs.sort_values(["iu", "area", "iz"], ascending=[True, False, True],
                             kind="stable").drop_duplicates("iu")
    share = best["area"].to_numpy() / unit_area[best["iu"].to_numpy()]
    share = np.clip(share, 0.0, 1.0)
    out = pd.DataFrame({
        "zae_id": zae["zae_id"].to_numpy()[best["iz"].to_numpy()],
        "part_dans_zae": share,
        "surface_dans_zae_m2": best["area"].to_numpy(),
        "coupee_par_limite": share < 1.0 - rule.tolerance_limite,
    }, index=unites.index[best["iu"].to_numpy()])
    return out[out["part_dans_zae"] >= rule.part_min_zae]


def built_area(unites: gpd.GeoDataFrame, batiments: gpd.GeoDataFrame) -> pd.Series:
    """Built footprint on each unit (m²), capped at the unit's area.

    Parameters
    ----------
    unites
        Land units.
    batiments
        Building footprints.

    Returns
    -------
    pandas.Series
        Indexed like ``unites``; 0 where no building stands.
    """
    u = np.asarray(unites.geometry.values)
    iu, _, area = overlap_areas(u, np.asarray(batiments.geometry.values))
    order = np.lexsort((area, iu))  # a sum that does not depend on the buildings' order
    total = (np.bincount(iu[order], weights=area[order], minlength=len(u)) if len(u)
             else np.zeros(0))
    return pd.Series(np.minimum(total, shapely.area(u)), index=unites.index, dtype=float)


def attach_establishments(etablissements: gpd.GeoDataFrame, unites: gpd.GeoDataFrame, *,
                          rule: VacancyRule = VacancyRule()) -> pd.DataFrame:
    """Find the unit of each establishment: the one containing it, else the nearest one.

    Parameters
    ----------
    etablissements
        Points (``siret``…).
    unites
        Land units (``uf_id``).
    rule
        ``rayon_rattachement_m``: how far a point outside every unit may be attached.

    Returns
    -------
    pandas.DataFrame
        Indexed like the establishments attached: ``uf_id`` and ``distance_m``
        (0 for a point inside its unit).
    """
    p = np.asarray(etablissements.geometry.values)
    u = np.asarray(unites.geometry.values)
    if len(p) == 0 or len(u) == 0:
        return pd.DataFrame({"uf_id": pd.Series([], dtype=object),
                             "distance_m": pd.Series([], dtype=float)})
    tree = shapely.STRtree(u)
    ip, iu = tree.query(p, predicate="intersects")
    inside = pd.DataFrame({"ip": ip, "iu": iu, "d": 0.0}).drop_duplicates("ip")
    rest = np.setdiff1d(np.arange(len(p)), inside["ip"].to_numpy())
    parts = [inside]
    if len(rest) and rule.rayon_rattachement_m > 0:
        (jp, ju), d = tree.query_nearest(p[rest], max_distance=rule.rayon_rattachement_m,
                                         return_distance=True, all_matches=False)
        parts.append(pd.DataFrame({"ip": rest[jp], "iu": ju, "d": d}))
    found = pd.concat(parts, ignore_index=True).sort_values("ip")
    return pd.DataFrame({"uf_id": unites["uf_id"].to_numpy()[found["iu"].to_numpy()],
                         "distance_m": found["d"].to_numpy()},
                        index=etablissements.index[found["ip"].to_numpy()])


def establishment_states(etablissements: pd.DataFrame, *, date_observation: dt.date,
                         rule: VacancyRule = VacancyRule()) -> pd.DataFrame:
    """State of each establishment at the observation date.

    An establishment created after the date is ignored; one whose state is
    unknown counts as active; one closed after the date was active on it.

    Parameters
    ----------
    etablissements
        ``etat`` (A/F), ``date_creation``, ``date_fermeture``, ``naf``,
        ``categorie_juridique`` (missing columns count as unknown).
    date_observation
        The observation date.
    rule
        ``naf_exclus`` and ``categories_exclues``: establishments that do not
        occupy the land (property companies).

    Returns
    -------
    pandas.DataFrame
        Indexed like the input: ``existe``, ``actif``, ``ferme`` (bools),
        ``exclu`` (bool) and ``fermeture`` (timestamp or NaT).
    """
    obs = pd.Timestamp(date_observation)

    def col(name: str) -> pd.Series:
        if name in etablissements:
            return etablissements[name]
        return pd.Series([None] * len(etablissements), index=etablissements.index, dtype=object)

    creation = pd.to_datetime(col("date_creation"), errors="coerce", format="%Y-%m-%d")
    fermeture = pd.to_datetime(col("date_fermeture"), errors="coerce", format="%Y-%m-%d")
    etat = col("etat").astype(object)
    existe = creation.isna() | (creation <= obs)
    closed = (etat == "F") & (fermeture.isna() | (fermeture <= obs))
    naf = col("naf").astype(object).where(col("naf").notna(), "").astype(str).str.replace(
        ".", "", regex=False).str.upper()
    naf_exclus = {c.replace(".", "").upper() for c in rule.naf_exclus}
    categorie = col("categorie_juridique").astype(object).where(
        col("categorie_juridique").notna(), "").astype(str)
    exclu = naf.isin(naf_exclus) | categorie.isin(set(rule.categories_exclues))
    return pd.DataFrame({
        "existe": existe.to_numpy(dtype=bool),
        "actif": (existe & ~closed).to_numpy(dtype=bool),
        "ferme": (existe & closed).to_numpy(dtype=bool),
        "exclu": exclu.to_numpy(dtype=bool),
        "fermeture": fermeture.where(closed),
    }, index=etablissements.index)


def occupant_label(etablissements: pd.DataFrame) -> pd.Series:
    """« SIRET – name » of each establishment; natural persons are never named.

    Establishments of natural persons (entrepreneurs individuels, legal category
    1xxx) and non-diffusible ones (Sirene status « P ») are shown without SIRET
    nor name.
    """
    def col(name: str) -> pd.Series:
        if name in etablissements:
            return etablissements[name].astype(object).where(etablissements[name].notna(), None)
        return pd.Series([None] * len(etablissements), index=etablissements.index, dtype=object)

    person = col("type_personne") == "personne physique"
    hidden = ~col("diffusible").fillna(True).astype(bool)
    legal_name = col("raison_sociale").where(~person, None)
    name = col("nom").fillna(legal_name).fillna("(nom inconnu)")
    label = col("siret").fillna("").astype(str) + " – " + name.astype(str)
    label = label.where(~person, "entrepreneur individuel (non nommé)")
    return label.where(~hidden, "établissement non diffusible (non nommé)")


def _proprietaire_columns(unites: pd.DataFrame) -> pd.DataFrame:
    """Owner category, name (legal entities only) and SIREN (legal entities only)."""
    kind = unites["proprietaire_type"].astype(object)
    kind = kind.where(kind.isin(PROPRIETAIRE_TYPES), "inconnu")
    legal = kind == "personne morale"
    name = unites["proprietaire_nom"].astype(object).where(legal & unites["proprietaire_nom"]
                                                           .notna(), None)
    siren = unites["proprietaire_siren"].astype(object).where(
        legal & unites["proprietaire_siren"].notna(), None)
    return pd.DataFrame({"proprietaire_type": kind, "proprietaire_nom": name,
                         "proprietaire_siren": siren}, index=unites.index)


def _fr_date(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%d/%m/%Y").astype(object)


def _rule_text(*, legal: bool, batiments: bool, rule: VacancyRule, date_observation: dt.date,
               default_date: bool) -> str:
    obs = date_observation.strftime("%d/%m/%Y")
    when = f"date d'observation {obs}" + (
        " (date du jour : option date_observation absente)" if default_date else "")
    scope = (f"unité rattachée à la zone qui couvre la plus grande part de sa surface "
             f"(au moins {rule.part_min_zae * 100:.0f} %)")
    if legal:
        y = vacancy_threshold(date_observation).year
        return (f"Définition légale (art. L318-8-2 du code de l'urbanisme) : unité vacante si "
                f"aucun établissement n'y est actif au {obs} et si le dernier y a fermé au plus "
                f"tard le 1er janvier {y} (inoccupée depuis au moins deux ans au 1er janvier "
                f"{date_observation.year}) ; établissements rattachés à l'unité qui les contient "
                f"ou à moins de {rule.rayon_rattachement_m:g} m ; {scope} ; {when}")
    if batiments:
        return (f"Présomption par le bâti (aucune couche d'établissements) : unité présumée "
                f"occupée si elle porte au moins {rule.surface_batie_min_m2:g} m² de bâti "
                f"couvrant au moins {rule.part_batie_min * 100:g} % de sa surface, présumée "
                f"vacante sinon (option vacance) ; {scope} ; {when}")
    return (f"Occupation inconnue : ni couche d'établissements ni couche de bâtiments ; "
            f"{scope} ; {when}")


def inventory(zae: gpd.GeoDataFrame, unites: gpd.GeoDataFrame,
              batiments: gpd.GeoDataFrame | None, etablissements: gpd.GeoDataFrame | None, *,
              date_observation: dt.date | str | None = None,
              rule: VacancyRule = VacancyRule(),
              historique: EstablishmentHistory | None = None,
              ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Compute the ZAE inventory: units per zone, occupants, vacancy, rates.

    Parameters
    ----------
    zae
        The ``zae`` layer (``zae_id``, ``zae_nom``…, polygons).
    unites
        The ``unites_foncieres`` layer (``uf_id``, ``idus``, ``nb_parcelles``,
        ``surface_m2``, ``proprietaire_type``, ``proprietaire_nom``,
        ``proprietaire_siren``, polygons), in the same CRS.
    batiments
        Building footprints, or ``None`` when the territory has none.
    etablissements
        The ``etablissements`` layer (points with ``siret``, ``etat``,
        ``date_creation``, ``date_fermeture``…), or ``None`` when not configured:
        occupancy is then presumed from buildings.
    date_observation
        Observation date (ISO text or date); ``None``: today, said in ``regle_vacance``.
    rule
        Thresholds (``Territory.options.vacance``).
    historique
        The earlier observations of the history (``None``: no history), used with an
        establishments layer: the legal rule is then evaluated from the
        observations (:func:`_observed_status`), and ``regle_vacance`` says so.

    Returns
    -------
    tuple of geopandas.GeoDataFrame
        The ``zae`` layer with the columns :data:`ZAE_COLUMNS` added, and the
        ``zae_unites`` layer (:data:`ZAE_UNITES_COLUMNS`, the units' geometries),
        sorted by zone and unit.

    Raises
    ------
    SchemaError
        When a layer lacks a required column or the layers' CRS differ.
    ConfigError
        When ``date_observation`` is not an ISO date.
    """
    obs, default_date = observation_date(date_observation)
    _check_inputs(zae, unites, batiments, etablissements)
    legal = etablissements is not None
    rule_text = _rule_text(legal=legal, batiments=batiments is not None, rule=rule,
                           date_observation=obs, default_date=default_date)
    if legal and historique is not None:
        rule_text = _history_rule_text(rule_text, historique, date_observation=obs)

    assigned = assign_units(zae, unites, rule=rule)
    units = unites.loc[assigned.index]
    base = pd.concat([assigned, _proprietaire_columns(units)], axis=1)
    base["uf_id"] = units["uf_id"].astype(object)
    base["idus"] = units["idus"].astype(object)
    base["nb_parcelles"] = (pd.to_numeric(units["nb_parcelles"], errors="coerce")
                            if "nb_parcelles" in units else
                            units["idus"].fillna("").str.count(r"\|") + 1).astype("Int64")
    area = shapely.area(np.asarray(units.geometry.values))
    surface = pd.to_numeric(units["surface_m2"], errors="coerce")
    base["surface_m2"] = surface.fillna(pd.Series(area, index=units.index)).astype(float)
    built = built_area(units, batiments) if batiments is not None else pd.Series(
        np.nan, index=units.index)
    base["surface_batie_m2"] = built
    share_built = pd.Series(np.where(area > 0, built.to_numpy() / np.where(area > 0, area, 1),
                                     np.nan), index=units.index)

    if legal:
        assert etablissements is not None
        occ = _legal_status(units, etablissements, built, obs=obs, rule=rule,
                            historique=historique)
    else:
        occ = _presumed_status(built, share_built, has_buildings=batiments is not None,
                               rule=rule)
    base = pd.concat([base, occ], axis=1)

    names = zae.set_index("zae_id")["zae_nom"] if "zae_nom" in zae else pd.Series(dtype=object)
    base["zae_nom"] = base["zae_id"].map(names)
    out = gpd.GeoDataFrame(base[list(ZAE_UNITES_COLUMNS)], geometry=units.geometry.values,
                           crs=unites.crs)
    out = out.sort_values(["zae_id", "uf_id"], kind="stable").reset_index(drop=True)
    return _zone_stats(zae, out, rule_text), out


def _check_inputs(zae: gpd.GeoDataFrame, unites: gpd.GeoDataFrame,
                  batiments: gpd.GeoDataFrame | None,
                  etablissements: gpd.GeoDataFrame | None) -> None:
    missing = [c for c in ("zae_id",) if c not in zae]
    if missing:
        raise SchemaError(f"couche « zae » : champ « {missing[0]} » absent")
    missing = [c for c in _UNIT_REQUIRED if c not in unites]
    if missing:
        raise SchemaError(
            f"couche « unites_foncieres » : champ(s) absent(s) : {', '.join(missing)} ; "
            f"la couche doit suivre le contrat (uf_id, idus, surface_m2, proprietaire_…)"
        )
    if etablissements is not None and "siret" not in etablissements:
        raise SchemaError("couche « etablissements » : champ « siret » absent")
    layers = {"zae": zae, "unites_foncieres": unites, "batiments": batiments,
              "etablissements": etablissements}
    crs = {name: f.crs for name, f in layers.items() if f is not None and len(f)}
    ref = unites.crs
    wrong = [name for name, c in crs.items() if c is not None and ref is not None and c != ref]
    if wrong:
        raise SchemaError(
            f"couche « {wrong[0]} » : CRS {crs[wrong[0]]} différent de celui des unités "
            f"foncières ({ref}) ; reprojetez les couches dans le CRS du territoire"
        )


def _legal_status(units: gpd.GeoDataFrame, etablissements: gpd.GeoDataFrame,
                  built: pd.Series, *, obs: dt.date, rule: VacancyRule,
                  historique: EstablishmentHistory | None = None) -> pd.DataFrame:
    """Occupation and legal vacancy of each unit from its establishments.

    With earlier observations of the establishments (``historique``), the rule is
    evaluated from them (:func:`_observed_status`).
    """
    states = establishment_states(etablissements, date_observation=obs, rule=rule)
    relevant = states["existe"] & ~states["exclu"]
    etabs = etablissements[relevant.to_numpy()]
    link = attach_establishments(etabs, units, rule=rule)
    e = etabs.loc[link.index]
    st = states.loc[link.index]
    labels = occupant_label(e)
    frame = pd.DataFrame({"uf_id": link["uf_id"], "siret": e["siret"].astype(str),
                          "label": labels, "actif": st["actif"], "ferme": st["ferme"],
                          "fermeture": st["fermeture"],
                          "sans_date": st["ferme"] & st["fermeture"].isna()})
    frame = frame.sort_values(["uf_id", "siret"], kind="stable")
    active = frame[frame["actif"]]
    occupants = active.groupby("uf_id")["label"].agg(" ; ".join)
    n_active = active.groupby("uf_id").size()
    closed = frame[frame["ferme"]]
    n_closed = closed.groupby("uf_id").size()
    last = closed.groupby("uf_id")["fermeture"].max()
    undated = closed.groupby("uf_id")["sans_date"].sum()

    uf = units["uf_id"]

    def per_unit(values: pd.Series) -> pd.Series:
        return pd.Series(values.reindex(uf.to_numpy()).to_numpy(), index=uf.index)

    nb_occ = per_unit(n_active).fillna(0).astype("Int64")
    nb_closed = per_unit(n_closed).fillna(0).astype("Int64")
    last_closure = pd.to_datetime(per_unit(last))
    n_undated = per_unit(undated).fillna(0).astype(int)
    threshold = pd.Timestamp(vacancy_threshold(obs))
    recent = last_closure > threshold

    obs_fr = obs.strftime("%d/%m/%Y")
    y = threshold.year
    last_fr = _fr_date(last_closure).fillna("")
    has_active = nb_occ > 0
    has_closed = nb_closed > 0
    conditions = [
        has_active.to_numpy(dtype=bool),
        (has_closed & recent.fillna(False)).to_numpy(dtype=bool),
        (has_closed & (n_undated > 0)).to_numpy(dtype=bool),
        has_closed.to_numpy(dtype=bool),
    ]
    occupation = np.select(conditions, ["occupée", "occupée", "présumée vacante", "vacante"],
                           "vacante")
    statut = np.select(conditions, ["non vacante", "non vacante", "présumée vacante",
                                    "vacante"], "vacante")
    built_m2 = built.round().astype("Int64").astype(str)
    has_built = (built >= rule.surface_batie_min_m2).fillna(False)
    reasons = [
        nb_occ.astype(str) + f" établissement(s) actif(s) au {obs_fr}",
        ("aucun établissement actif ; dernière fermeture le " + last_fr
         + f" : inoccupée depuis moins de deux ans au 1er janvier {obs.year}, donc non vacante"
           " au sens de l'article L318-8-2"),
        ("aucun établissement actif ; " + n_undated.astype(str)
         + " établissement(s) fermé(s) à une date inconnue : vacance présumée, à vérifier"),
        ("aucun établissement actif ; dernier établissement fermé le " + last_fr
         + f", au plus tard le 1er janvier {y}"),
    ]
    never = pd.Series("aucun établissement, actif ou fermé, localisé sur l'unité",
                      index=units.index)
    never = never.where(~has_built, never + " ; bâti de " + built_m2
                        + " m² : occupation à vérifier sur place")
    raison = np.select(conditions, [r.to_numpy(dtype=object) for r in reasons],
                       never.to_numpy(dtype=object))
    if historique is not None and historique.observations:
        occupation, statut, raison = _observed_status(
            units, historique, obs=obs, active_now=has_active.to_numpy(dtype=bool),
            recent_closure=(has_closed & recent.fillna(False)).to_numpy(dtype=bool),
            occupation=occupation, statut=statut, raison=raison)
    return pd.DataFrame({
        "occupants": per_unit(occupants).astype(object),
        "nb_occupants": nb_occ,
        "occupation": occupation.astype(object),
        "statut_vacance": statut.astype(object),
        "raison_vacance": raison.astype(object),
        "nb_etablissements_fermes": nb_closed,
        "date_derniere_fermeture": last_closure.dt.strftime("%Y-%m-%d").astype(object).where(
            last_closure.notna(), None),
    }, index=units.index)


def observed_occupation(units: gpd.GeoDataFrame, observations: Sequence[ObservedEstablishments]
                        ) -> pd.DataFrame:
    """Whether an active establishment was observed on each unit, at each earlier observation.

    A parcel of an earlier observation stands for the unit it overlaps as the
    lineage links parcels (:func:`~observatoire.analysis.geometry.same_land`): their common
    part covers at least half of the one or of the other, and at least 1 m². So a
    renumbered parcel, the pieces of a split one and the parts of a merged one
    carry their establishments to the unit they now belong to.

    Parameters
    ----------
    units
        Land units (polygons).
    observations
        The earlier observations made with an establishments layer.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``units``, one boolean column per observation (its date).
    """
    u = np.asarray(units.geometry.values)
    out = pd.DataFrame(index=units.index)
    for observed in observations:
        parcels = np.asarray(observed.parcelles.geometry.values)
        ip, iu, inter = overlap_areas(parcels, u)
        linked = iu[same_land(inter, shapely.area(parcels[ip]), shapely.area(u[iu]))]
        seen = np.zeros(len(u), dtype=bool)
        seen[linked] = True
        out[observed.date] = seen
    return out


def _observed_status(units: gpd.GeoDataFrame, historique: EstablishmentHistory, *,
                     obs: dt.date, active_now: np.ndarray, recent_closure: np.ndarray,
                     occupation: np.ndarray, statut: np.ndarray, raison: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the legal rule from the observations of the history.

    The window runs from 1 January of the observation year minus two (the
    threshold) to the observation date. A unit without active establishment now:

    - on which an establishment was observed active after the threshold is
      « non vacante » (occupied less than two years before), with the date of the
      latest such observation;
    - else, when the history holds an observation of the establishments dated on
      or before the threshold (it covers the window): with none observed on it at
      the latest such observation nor after, and no closure after the threshold in
      the current vintage, it is « vacante » by the observations. One occupied at
      that observation and not since was freed at a date the observations do not
      give (before or after the threshold): the current vintage's closing dates
      decide, as without history, and the reason says so;
    - else (the history does not cover the window): the closing dates decide.

    Returns
    -------
    tuple of numpy.ndarray
        ``occupation``, ``statut_vacance`` and ``raison_vacance``, updated.
    """
    threshold = vacancy_threshold(obs)
    observations = sorted((o for o in historique.observations if o.date < obs),
                          key=lambda o: o.date)
    seen = observed_occupation(units, observations)
    occupation, statut, raison = occupation.copy(), statut.copy(), raison.copy()
    inside = [o.date for o in observations if o.date > threshold]
    free = ~active_now
    latest = pd.Series(pd.NaT, index=units.index, dtype="datetime64[ns]")
    for date in inside:
        latest = latest.where(~seen[date], pd.Timestamp(date))
    recent = free & latest.notna().to_numpy()
    when = _fr_date(latest).fillna("").to_numpy(dtype=object)
    y = threshold.year
    raison[recent] = ("aucun établissement actif au " + obs.strftime("%d/%m/%Y")
                      + " ; établissement actif observé le " + when[recent]
                      + f" (observation de l'historique), après le 1er janvier {y} : "
                        "inoccupée depuis moins de deux ans au 1er janvier "
                        f"{obs.year}, donc non vacante au sens de l'article L318-8-2")
    occupation[recent] = "occupée"
    statut[recent] = "non vacante"
    before = [o.date for o in observations if o.date <= threshold]
    if not before:
        return occupation, statut, raison
    anchor = before[-1]
    used = ", ".join(d.strftime("%d/%m/%Y") for d in [anchor, *inside])
    left = free & ~recent & seen[anchor].to_numpy(dtype=bool) & ~recent_closure
    raison[left] = (raison[left] + " ; établissement actif observé le "
                    + anchor.strftime("%d/%m/%Y") + ", aucun aux observations suivantes "
                    "(" + ", ".join(d.strftime("%d/%m/%Y") for d in inside) + ")"
                    if inside else raison[left] + " ; établissement actif observé le "
                    + anchor.strftime("%d/%m/%Y") + " (observation de l'historique)")
    vacant = free & ~recent & ~seen[anchor].to_numpy(dtype=bool) & ~recent_closure
    raison[vacant] = (f"aucun établissement actif observé sur l'unité aux observations du "
                      f"{used} (la première au plus tard le 1er janvier {y}) ni au "
                      f"{obs.strftime('%d/%m/%Y')} : inoccupée depuis au moins deux ans au "
                      f"1er janvier {obs.year}")
    occupation[vacant] = "vacante"
    statut[vacant] = "vacante"
    return occupation, statut, raison


def _history_rule_text(text: str, historique: EstablishmentHistory, *,
                       date_observation: dt.date) -> str:
    """``regle_vacance``: which rule was applied, on which observations."""
    threshold = vacancy_threshold(date_observation)
    y = threshold.year
    dates = sorted(o.date for o in historique.observations if o.date < date_observation)
    without = sorted(d for d in historique.sans_etablissements if d < date_observation)
    if not dates and not without:
        return text

    def fr(values: list[dt.date]) -> str:
        return ", ".join(d.strftime("%d/%m/%Y") for d in values)

    if not dates:
        return (f"{text} ; historique : aucune observation des établissements (observations "
                f"du {fr(without)} faites sans couche d'établissements) : règle des dates de "
                f"fermeture du millésime d'établissements")
    before = [d for d in dates if d <= threshold]
    inside = [d for d in dates if d > threshold]
    if before:
        used = [before[-1], *inside]
        return (f"Définition légale (art. L318-8-2 du code de l'urbanisme) évaluée sur les "
                f"observations de l'historique du {fr(used)} et le millésime d'établissements "
                f"du {date_observation.strftime('%d/%m/%Y')} : unité vacante si aucun "
                f"établissement actif n'y a été observé à ces dates (la première au plus tard "
                f"le 1er janvier {y}) ni n'y a fermé après le 1er janvier {y} ; non vacante si "
                f"un établissement y est actif ou y a été observé actif après le 1er janvier "
                f"{y} ; unité où un établissement était actif le "
                f"{before[-1].strftime('%d/%m/%Y')} et aucun depuis : dates de fermeture du "
                f"millésime ; " + text.split(" ; ", 1)[1])
    return (f"{text} ; historique trop court pour la règle des observations : aucune "
            f"observation des établissements au plus tard le 1er janvier {y} (observations "
            f"des établissements : {fr(dates)}) : règle des dates de fermeture du millésime "
            f"d'établissements, et unité non vacante si un établissement y a été observé actif "
            f"après le 1er janvier {y}")


def _presumed_status(built: pd.Series, share: pd.Series, *, has_buildings: bool,
                     rule: VacancyRule) -> pd.DataFrame:
    """Occupation presumed from the built footprint (no establishments layer)."""
    idx = built.index
    if not has_buildings:
        return pd.DataFrame({
            "occupants": pd.Series(None, index=idx, dtype=object),
            "nb_occupants": pd.Series(pd.NA, index=idx, dtype="Int64"),
            "occupation": pd.Series(None, index=idx, dtype=object),
            "statut_vacance": "inconnue",
            "raison_vacance": "ni établissements ni bâtiments : occupation inconnue",
            "nb_etablissements_fermes": pd.Series(pd.NA, index=idx, dtype="Int64"),
            "date_derniere_fermeture": pd.Series(None, index=idx, dtype=object),
        }, index=idx)
    occupied = ((built >= rule.surface_batie_min_m2) & (share >= rule.part_batie_min)).fillna(
        False).to_numpy(dtype=bool)
    percent = (share * 100).round(1).map("{:g}".format).astype(str)
    facts = ("bâti de " + built.round().astype("Int64").astype(str) + " m² ("
             + percent.str.replace(".", ",", regex=False) + " % de l'unité)")
    raison = np.where(
        occupied, facts + " : présumée occupée (pas de couche d'établissements)",
        "pas de bâti significatif (" + facts.str.removeprefix("bâti de ")
        + ") : présumée vacante (pas de couche d'établissements)")
    return pd.DataFrame({
        "occupants": pd.Series(None, index=idx, dtype=object),
        "nb_occupants": pd.Series(pd.NA, index=idx, dtype="Int64"),
        "occupation": np.where(occupied, "présumée occupée", "présumée vacante").astype(object),
        "statut_vacance": np.where(occupied, "présumée non vacante", "présumée vacante").astype(
            object),
        "raison_vacance": pd.Series(raison, index=idx).astype(object),
        "nb_etablissements_fermes": pd.Series(pd.NA, index=idx, dtype="Int64"),
        "date_derniere_fermeture": pd.Series(None, index=idx, dtype=object),
    }, index=idx)


def _zone_stats(zae: gpd.GeoDataFrame, unites: gpd.GeoDataFrame, rule_text: str
                ) -> gpd.GeoDataFrame:
    """Per zone: units, vacant units, rates by count and area, available area."""
    known = unites["statut_vacance"] != "inconnue"
    vacant = unites["statut_vacance"].isin(VACANT_STATUTS)
    area = unites["surface_dans_zae_m2"]
    g = pd.DataFrame({"zae_id": unites["zae_id"], "n": 1, "known": known.astype(int),
                      "vac": vacant.astype(int), "area": area.where(known, 0.0),
                      "vac_area": area.where(vacant, 0.0)}).groupby("zae_id").sum()
    out = zae.copy()
    ids = out["zae_id"]
    g = g.reindex(ids.to_numpy()).set_axis(ids.index)
    n = g["n"].fillna(0).astype("Int64")
    n_known = g["known"].fillna(0)
    n_vac = g["vac"].astype("Int64")
    out["nb_unites"] = n
    out["nb_unites_vacantes"] = n_vac.where((n_known > 0).to_numpy(), pd.NA).where(
        (n > 0).to_numpy(), 0)
    denom = n_known.where(n_known > 0).astype(float)
    out["taux_vacance"] = (g["vac"] / denom).astype(float)
    total = g["area"]
    out["taux_vacance_surface"] = (g["vac_area"] / total.where(total > 0)).astype(float)
    out["surface_disponible_m2"] = g["vac_area"].where(n_known > 0).astype(float)
    out["plus_grande_surface_dispo_m2"] = largest_vacant_area(zae, unites).where(
        (n_known > 0).to_numpy()).astype(float)
    out["regle_vacance"] = rule_text
    return out


def largest_vacant_area(zae: gpd.GeoDataFrame, zae_unites: gpd.GeoDataFrame,
                        *, tolerance: float = 0.5) -> pd.Series:
    """Largest area of vacant units in one piece, inside each zone (m²).

    Vacant units that touch (within ``tolerance``) form one piece; only their part
    inside the zone counts, so the figure never exceeds ``surface_disponible_m2``.

    Parameters
    ----------
    zae
        The zones (``zae_id``, polygons).
    zae_unites
        The units of the inventory (``zae_id``, ``statut_vacance``, polygons).
    tolerance
        Gap (m) under which two units are taken as touching.

    Returns
    -------
    pandas.Series
        Aligned on ``zae``; 0 for a zone without vacant unit.
    """
    vacant = zae_unites[zae_unites["statut_vacance"].isin(VACANT_STATUTS)]
    zones = dict(zip(zae["zae_id"], zae.geometry.values, strict=True))
    best: dict[str, float] = {}
    # One union per zone (a territory has tens to hundreds of zones, not of features).
    for zae_id, group in vacant.groupby("zae_id", sort=True):
        zone = zones.get(zae_id)
        if zone is None or zone.is_empty:
            continue
        merged = shapely.union_all(shapely.buffer(group.geometry.values, tolerance / 2))
        pieces = shapely.get_parts(shapely.intersection(
            shapely.buffer(merged, -tolerance / 2), zone))
        best[zae_id] = float(shapely.area(pieces).max()) if len(pieces) else 0.0
    return zae["zae_id"].map(best).fillna(0.0).astype(float)
