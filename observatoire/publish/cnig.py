"""Export of the ZAE inventory to the CNIG Sites Économiques standard (v2024-10).

The export starts from a byte copy of the standard's official GeoPackage template
(``observatoire/data/cnig/sites_economiques.gpkg``, Licence Ouverte), so layer
names, field names and types, geometry types and the QGIS forms stored in
``layer_styles`` are those of the standard; rows are appended with GDAL.

Layers written:

- ``site_eco``: one site per ZAE, with ``site_uf_nbre``, ``site_uf_vacant_nbre``,
  ``site_taux_vacance`` (a whole percentage, § 3.3 of the standard), surfaces in
  hectares;
- ``terrain_eco``: one terrain per land unit, clipped to its site; the template's
  geometry is a single polygon, so a unit in several pieces gives one terrain per
  piece;
- ``etablissement``: the establishments occupying the units (or closed less than
  two years before 1 January of the observation year), legal entities only: an
  establishment whose legal category is unknown or that of a natural person
  (entrepreneur individuel) is not exported, nor a non-diffusible one, nor a SCI
  (excluded by the standard, § 3.3 ETABLISSEMENT);
- ``pole_eco``: ``pole_id`` is required by ``schema.json``, so each site forms its
  own pole (the standard allows a pole of a single site).

The terrains are made and appended for groups of whole sites of about
:data:`CNIG_CHUNK_UNITS` land units (:func:`cnig_parts`): a département's hundreds of
thousands of ZAE units are never all cut into pieces at once, and the file is the
one made in a single pass.

Identifiers follow § 4.2: ``[INSEE]_[classe]_[n]`` with the classes ``SITE-ECO``,
``TERRAIN-ECO`` and ``POLE-ECO`` (``25267_TERRAIN-ECO_00001``).

The standard's files and the validator run on the staged file before it can be
published are in :mod:`observatoire.publish.cnig_schema`; the template copy is
written by :func:`observatoire.geopackage.append_to_template`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import prepared
from observatoire.analysis.zae_inventory import (
    DEFAULT_RULE,
    VacancyRule,
    attach_establishments,
    establishment_states,
    observation_date,
    overlap_areas,
    vacancy_threshold,
)
from observatoire.errors import ConfigError
from observatoire.geopackage import append_to_template
from observatoire.observation.run import FirstSeen
from observatoire.outputs import StagedFile
from observatoire.publish.cnig_schema import (
    CLASSES,
    TEMPLATE,
    template_fields,
    validate_geopackage,
    value_list,
)

log = logging.getLogger(__name__)


#: Object classes in identifiers (§ 4.2 « Codification des identifiants »).
ID_CLASSES = {"site_eco": "SITE-ECO", "terrain_eco": "TERRAIN-ECO", "pole_eco": "POLE-ECO"}


#: Insee salaried-staff brackets (« tranches d'effectif salarié »), code → label.
TRANCHES_EFFECTIF = {
    "NN": "Unités non employeuses", "00": "0 salarié", "01": "1 ou 2 salariés",
    "02": "3 à 5 salariés", "03": "6 à 9 salariés", "11": "10 à 19 salariés",
    "12": "20 à 49 salariés", "21": "50 à 99 salariés", "22": "100 à 199 salariés",
    "31": "200 à 249 salariés", "32": "250 à 499 salariés", "41": "500 à 999 salariés",
    "42": "1 000 à 1 999 salariés", "51": "2 000 à 4 999 salariés",
    "52": "5 000 à 9 999 salariés", "53": "10 000 salariés et plus",
}


#: Pieces of a terrain smaller than this (m²) are clipping slivers, dropped.
MIN_PIECE_M2 = 1.0


_PUBLIC_PROPRIETAIRES = (
    (re.compile(r"^(?:COMMUNE|VILLE|MAIRIE)\b"), "commune"),
    (re.compile(r"^(?:DEPARTEMENT|CONSEIL DEPARTEMENTAL|CONSEIL GENERAL)\b"), "département"),
    (re.compile(r"^(?:REGION|CONSEIL REGIONAL)\b"), "région"),
    (re.compile(r"^(?:ETAT|L ETAT|MINISTERE)\b"), "Etat"),
    (re.compile(r"COMMUNAUTE (?:DE COMMUNES|D AGGLOMERATION|URBAINE)|\bMETROPOLE\b"),
     "structure intercommunale"),
    (re.compile(r"ETABLISSEMENT PUBLIC FONCIER|^EPF\b"), "établissement public foncier"),
    (re.compile(r"SOCIETE D ECONOMIE MIXTE|\bSEM\b|\bSPLA?\b"), "SEM ou SPLA"),
)


def maitrise_fonciere(kind: pd.Series, name: pd.Series, siren: pd.Series, *,
                      epci_siren: str | None) -> pd.Series:
    """``terr_maitrise_fonc`` from the owner: category, and public bodies recognised by name.

    A legal entity is the intercommunality when its SIREN is the EPCI's; a
    commune, département, région, the State, an EPF or a SEM/SPL when its name
    says so; otherwise « inconnu » (the owner files do not tell a developer from an
    investor).
    """
    out = pd.Series("inconnu", index=kind.index, dtype=object)
    out[kind == "personne physique"] = "personne physique"
    legal = kind == "personne morale"
    norm = name.fillna("").astype(str).str.upper().str.normalize("NFKD").str.encode(
        "ascii", "ignore").str.decode("ascii").str.replace(r"[^A-Z0-9 ]", " ", regex=True)
    for pattern, value in _PUBLIC_PROPRIETAIRES:
        hit = legal & (out == "inconnu") & norm.str.contains(pattern)
        out[hit] = value
    if epci_siren:
        out[legal & (siren.astype(object) == epci_siren)] = "structure intercommunale"
    return out


def etat_occupation(unites: pd.DataFrame, *, rule: VacancyRule) -> pd.Series:
    """``terr_etat_occup`` of each unit (PDF § 3.4 definitions).

    Occupied (or presumed) → « occupé »; vacant with a past occupation (a closed
    establishment or a building) → « vacant »; vacant with neither, never occupied
    as far as the inputs tell → « inoccupé »; unknown → « inconnu ». A unit whose
    last establishment closed less than two years ago is not vacant in the legal
    sense but unused: « vacant » too. A friche on the unit (column ``friche``) gives
    « friche ».
    """
    occ = unites["occupation"]
    built = pd.to_numeric(unites["surface_batie_m2"], errors="coerce")
    closed = pd.to_numeric(unites["nb_etablissements_fermes"], errors="coerce").fillna(0)
    occupants = pd.to_numeric(unites["nb_occupants"], errors="coerce")
    past = (built >= rule.surface_batie_min_m2).fillna(False) | (closed > 0)
    unused = (occupants == 0).fillna(False)
    vacant = occ.isin(["vacante", "présumée vacante"]) | (occ.eq("occupée") & unused)
    out = pd.Series("inconnu", index=unites.index, dtype=object)
    out[occ.isin(["occupée", "présumée occupée"]) & ~unused] = "occupé"
    out[vacant & past] = "vacant"
    out[vacant & ~past] = "inoccupé"
    if "friche" in unites:
        out[vacant & unites["friche"].fillna(False).astype(bool)] = "friche"
    return out


def _lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """Values of ``table`` for each key (NaN where absent), aligned to ``keys``."""
    return pd.Series(table.reindex(keys.to_numpy()).to_numpy(), index=keys.index)


def _match(value: Any, allowed: Iterable[str]) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    v = str(value).strip().casefold()
    return next((a for a in allowed if a.casefold() == v), None)


def _site_insee(zae: gpd.GeoDataFrame, unites: pd.DataFrame) -> pd.Series:
    """INSEE code of each site: the zone's, else the commune of most of its parcels (or None)."""
    insee = zae["comm_insee"].astype(object) if "comm_insee" in zae else pd.Series(
        None, index=zae.index, dtype=object)
    # Only the zones without a commune need their parcels read.
    unites = unites[unites["zae_id"].isin(zae.loc[insee.isna(), "zae_id"])]
    first = unites.assign(c=unites["idus"].fillna("").str.split("|")).explode("c")
    first = first[first["c"].str.len() >= 5]
    by_parcels = first.groupby("zae_id")["c"].agg(lambda s: s.str[:5].mode().iloc[0])
    insee = insee.where(insee.notna(), _lookup(zae["zae_id"], by_parcels))
    return insee.astype(object).where(insee.notna(), None)


#: Zones named at most in the warnings of :func:`_exportable` (then a count).
MAX_ZONES_NAMED = 20


#: An INSEE commune code (Corsica: 2A, 2B).
INSEE_PATTERN = r"\d{5}|2[AB]\d{3}"


def _exportable(zae: gpd.GeoDataFrame, insee: pd.Series, communes: Mapping[str, str]
                ) -> pd.Series:
    """Whether each zone can be exported; warn of each one that cannot, naming the field.

    The standard requires ``site_comm_insee`` and ``site_comm_nom``: a zone whose
    commune or commune name is unknown is left out of the export, the others are
    exported.
    """
    no_code = insee.isna()
    bad_code = ~no_code & ~insee.astype(str).str.fullmatch(INSEE_PATTERN)
    no_name = ~no_code & ~bad_code & ~insee.map(lambda c: c in communes).astype(bool)
    problems = []
    for zone, code, missing_code, wrong_code, missing_name in zip(
            zae["zae_id"], insee, no_code, bad_code, no_name, strict=True):
        if missing_code:
            problems.append(
                f"zone « {zone} » non exportée : champ site_comm_insee manquant (la zone n'a "
                f"pas de comm_insee et aucune parcelle du territoire) ; renseignez le code "
                f"INSEE de sa commune dans la source zae")
        elif wrong_code:
            problems.append(
                f"zone « {zone} » non exportée : champ site_comm_insee invalide ({code!r} n'est "
                f"pas un code INSEE à 5 caractères) ; corrigez comm_insee dans la source zae")
        elif missing_name:
            problems.append(
                f"zone « {zone} » non exportée : champ site_comm_nom manquant (commune {code} "
                f"absente de la table des communes) ; ajoutez son nom dans "
                f"[options.noms_communes] du fichier de territoire")
    for message in problems[:MAX_ZONES_NAMED]:
        log.warning("export CNIG : %s", message)
    if len(problems) > MAX_ZONES_NAMED:
        log.warning("export CNIG : %d autre(s) zone(s) non exportée(s) (commune inconnue, code "
                    "INSEE invalide ou nom de commune inconnu)", len(problems) - MAX_ZONES_NAMED)
    return ~(no_code | bad_code | no_name)


def _number_ids(insee: pd.Series, classe: str, numbered: dict[str, int] | None = None
                ) -> pd.Series:
    """``[INSEE]_[classe]_[n]``, numbered per INSEE code in the order of ``insee``.

    ``numbered`` (INSEE code → last number given) starts the numbering after an
    earlier call's; it is updated.
    """
    n = (insee.groupby(insee.to_numpy()).cumcount() + 1).to_numpy()
    if numbered is not None:
        n = n + insee.map(numbered).fillna(0).to_numpy(dtype=np.int64)
        numbered.update(pd.Series(n, index=insee.to_numpy()).groupby(level=0).max().items())
    return pd.Series([f"{code}_{classe}_{k:05d}" for code, k in zip(insee, n, strict=True)],
                     index=insee.index, dtype=object)


def build_cnig_layers(zae: gpd.GeoDataFrame, zae_unites: gpd.GeoDataFrame,
                      etablissements: gpd.GeoDataFrame | None = None, *, epci_nom: str,
                      epci_siren: str, communes: Mapping[str, str],
                      date_observation: dt.date | str | None = None,
                      parcelles: gpd.GeoDataFrame | None = None,
                      rule: VacancyRule = DEFAULT_RULE,
                      producteur: str | None = None,
                      first_seen: FirstSeen | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Fill the four layers of the standard from the observatory's inventory.

    The whole export in memory; :func:`cnig_parts` gives it in parts.

    Parameters
    ----------
    zae
        The ``zae`` layer with the inventory's columns (``nb_unites``…).
    zae_unites
        The ``zae_unites`` layer.
    etablissements
        The ``etablissements`` layer, or ``None``.
    epci_nom, epci_siren
        The intercommunality (``territoire.epci_nom``, ``territoire.epci_siren``).
    communes
        INSEE code → commune name (:func:`observatoire.communes.commune_names`). A
        zone whose commune, or its name, is unknown is not exported: a warning
        names it and the missing field.
    date_observation
        The inventory's date: identification and update dates of the objects.
    parcelles
        The parcels (``idu``, optional ``friche_id``): lists the parcels of each
        terrain piece and recognises friches; without them a terrain lists its
        unit's parcels.
    rule
        The inventory's thresholds (buildings, establishment radius, exclusions).
    producteur
        ``source_producteur`` (default: the EPCI's name).
    first_seen
        Date of the first observation where each zone (``zae_id``) and each land
        unit (``uf_id``) appears, from the history: ``site_identif_date`` and
        ``terr_identif_date`` (default: ``date_observation``, as the update dates).

    Returns
    -------
    dict of geopandas.GeoDataFrame
        ``site_eco``, ``terrain_eco``, ``etablissement``, ``pole_eco``: the template's
        fields in its order (no ``fid``), geometries of its types, in ``zae``'s CRS.

    Raises
    ------
    ConfigError
        When the EPCI's name or SIREN is missing.
    """
    parts: dict[str, list[gpd.GeoDataFrame]] = {}
    for part in cnig_parts(zae, zae_unites, etablissements, epci_nom=epci_nom,
                           epci_siren=epci_siren, communes=communes,
                           date_observation=date_observation, parcelles=parcelles, rule=rule,
                           producteur=producteur, first_seen=first_seen):
        for name, frame in part.items():
            parts.setdefault(name, []).append(frame)
    return {name: parts[name][0] if len(parts[name]) == 1 else
            gpd.GeoDataFrame(pd.concat(parts[name], ignore_index=True), crs=parts[name][0].crs)
            for name in CLASSES}


#: Land units of the sites whose terrains are made at once by :func:`cnig_parts`.
CNIG_CHUNK_UNITS = 20_000


def cnig_parts(zae: gpd.GeoDataFrame, zae_unites: gpd.GeoDataFrame,
               etablissements: gpd.GeoDataFrame | None = None, *, epci_nom: str,
               epci_siren: str, communes: Mapping[str, str],
               date_observation: dt.date | str | None = None,
               parcelles: gpd.GeoDataFrame | None = None, rule: VacancyRule = DEFAULT_RULE,
               producteur: str | None = None, chunk_units: int = CNIG_CHUNK_UNITS,
               first_seen: FirstSeen | None = None
               ) -> Iterator[dict[str, gpd.GeoDataFrame]]:
    """Yield the layers of the standard in parts, to append one after the other.

    Parameters are those of :func:`build_cnig_layers`; ``chunk_units`` bounds the
    land units handled at once. A département holds hundreds of thousands of ZAE
    units: their terrains (clipped, cut into pieces, matched to their parcels) are
    made for groups of whole sites of about ``chunk_units`` units, in identifier
    order, so the parts concatenated are the export made at once. Each part but
    the last holds the ``terrain_eco`` of a group; the last holds ``site_eco``,
    ``etablissement`` and ``pole_eco``.
    """
    if not epci_nom or not epci_siren:
        key = "territoire.epci_nom" if not epci_nom else "territoire.epci_siren"
        raise ConfigError(f"clé « {key} » absente : l'export CNIG Sites Économiques l'exige ; "
                          f"ajoutez-la au fichier de territoire")
    obs, _ = observation_date(date_observation)
    day = obs.isoformat()
    crs = zae.crs
    zae = zae.sort_values("zae_id", kind="stable").reset_index(drop=True)
    zu = pd.DataFrame(zae_unites[zae_unites["zae_id"].isin(zae["zae_id"])])
    zu = zu.sort_values(["zae_id", "uf_id"], kind="stable").reset_index(drop=True)

    insee = _site_insee(zae, zu)
    ok = _exportable(zae, insee, communes)
    if not ok.all():
        zae, insee = zae[ok].reset_index(drop=True), insee[ok].reset_index(drop=True)
        zu = zu[zu["zae_id"].isin(zae["zae_id"])].reset_index(drop=True)
    insee = insee.astype(str)
    pattern = re.compile(rf"^({INSEE_PATTERN})_SITE-ECO_\d+$")
    given = zae["zae_id"].astype(str)
    renumber = ~given.str.match(pattern)
    new_ids = _number_ids(insee, "SITE-ECO")
    site_id = given.where(~renumber, new_ids)
    if site_id.duplicated().any():
        site_id = new_ids
    site_of = dict(zip(zae["zae_id"], site_id, strict=True))
    insee_of = dict(zip(zae["zae_id"], insee, strict=True))

    kept = _etablissements_kept(etablissements, zu, obs=obs, rule=rule, crs=crs)
    numbered: dict[str, int] = {}
    utile: list[pd.Series] = []
    etabs: list[gpd.GeoDataFrame] = []
    # No unit at all: one empty part, so that every layer is given.
    for lo, hi in _chunk_bounds(zu["zae_id"].to_numpy(), chunk_units) or [(0, 0)]:
        part = zu.iloc[lo:hi].reset_index(drop=True)
        terrains = _terrains(zae, part, _parcels_of(parcelles, part), site_of=site_of,
                             insee_of=insee_of, day=day, epci_siren=epci_siren, rule=rule,
                             crs=crs, numbered=numbered)
        utile.append(terrains[terrains["terr_utile"] == "oui"].groupby("zae_id")[
            "terr_surf_brute"].sum())
        rows = None if kept is None else _etablissements(
            kept, part, terrains, obs=obs, day=day, epci_nom=epci_nom, epci_siren=epci_siren,
            communes=communes, insee_of=insee_of)
        if rows is not None and len(rows):
            etabs.append(rows)
        if first_seen is not None:
            terrains["terr_identif_date"] = _first_date(terrains["uf_id"], first_seen.unites,
                                                        day)
        yield {"terrain_eco": _to_template(terrains, "terrain_eco", crs)}
    etab = _empty_etablissements(crs)
    if etabs:
        # In SIRET order, ties in the order the establishments were kept.
        etab = gpd.GeoDataFrame(pd.concat(etabs).sort_index(kind="stable").sort_values(
            "siret", kind="stable").reset_index(drop=True), crs=crs)
    sites = _sites(zae, zu, pd.concat(utile),
                   site_id=site_id, insee=insee, communes=communes, day=day,
                   epci_nom=epci_nom, epci_siren=epci_siren, rule=rule,
                   producteur=producteur or epci_nom)
    if first_seen is not None:
        sites["site_identif_date"] = _first_date(zae["zae_id"], first_seen.zae, day)
    poles = _poles(sites, insee=insee, day=day)
    sites["pole_id"] = poles["pole_id"].to_numpy()
    layers = {"site_eco": sites, "etablissement": etab, "pole_eco": poles}
    yield {name: _to_template(frame, name, crs) for name, frame in layers.items()}


def _first_date(ids: pd.Series, first: Mapping[str, str], day: str) -> np.ndarray:
    """Return each identifier's first observation, never after ``day`` (``day`` if unknown)."""
    dates = ids.map(first).fillna(day)
    return np.where(dates.astype(str) > day, day, dates.astype(str))


def _chunk_bounds(zae_id: np.ndarray, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of runs of whole zones of about ``size`` rows (sorted by zone)."""
    if not len(zae_id):
        return []
    starts = np.flatnonzero(np.r_[True, zae_id[1:] != zae_id[:-1]])
    bounds, lo = [], 0
    for start in starts[1:]:
        if start - lo >= size:
            bounds.append((lo, int(start)))
            lo = int(start)
    bounds.append((lo, len(zae_id)))
    return bounds


def _parcels_of(parcelles: gpd.GeoDataFrame | None, units: pd.DataFrame
                ) -> gpd.GeoDataFrame | None:
    """Return the parcels that ``units`` list (``idus``)."""
    if parcelles is None or not len(parcelles):
        return parcelles
    idus = units["idus"].dropna().str.split("|").explode()
    return parcelles[parcelles["idu"].isin(idus.to_numpy())]


def _to_template(frame: gpd.GeoDataFrame, layer: str, crs: Any) -> gpd.GeoDataFrame:
    """Order, complete and type the columns as in the template."""
    cols: dict[str, Any] = {}
    for name, dtype in template_fields()[layer]:
        values = frame[name] if name in frame else pd.Series(None, index=frame.index,
                                                             dtype=object)
        if dtype.startswith("int"):
            cols[name] = pd.to_numeric(values, errors="coerce").round().astype("Int64")
        elif dtype.startswith("float"):
            cols[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            cols[name] = values.astype(object).where(values.notna(), None)
    return gpd.GeoDataFrame(cols, geometry=frame.geometry.values, crs=crs, index=frame.index)


def _terrains(zae: gpd.GeoDataFrame, zu: pd.DataFrame, parcelles: gpd.GeoDataFrame | None, *,
              site_of: Mapping[str, str], insee_of: Mapping[str, str], day: str,
              epci_siren: str, rule: VacancyRule, crs: Any,
              numbered: dict[str, int] | None = None) -> gpd.GeoDataFrame:
    """One terrain per piece of each unit inside its site.

    ``numbered`` (INSEE code → terrains numbered so far) carries the numbering
    from one group of sites to the next; it is updated.
    """
    zone_geom = zae.set_index("zae_id").geometry
    geoms = np.asarray(gpd.GeoSeries(zu["geometry"]).values) if len(zu) else np.array([])
    zones = np.asarray(zone_geom.loc[zu["zae_id"]].values) if len(zu) else np.array([])
    whole = zu["part_dans_zae"].to_numpy(dtype=float) >= 1.0 - 1e-9 if len(zu) else np.array(
        [], dtype=bool)
    clipped = geoms.copy()
    if (~whole).any():
        clipped[~whole] = shapely.intersection(geoms[~whole], zones[~whole])
    pieces = gpd.GeoDataFrame({"row": np.arange(len(zu))}, geometry=clipped, crs=crs)
    pieces = pieces[~pieces.geometry.is_empty & pieces.geometry.notna()]
    pieces = pieces.set_geometry(pieces.geometry.make_valid())
    # The parcels of a unit may be separate polygons: merge those that touch.
    multi = shapely.get_num_geometries(np.asarray(pieces.geometry.values)) > 1
    if multi.any():
        merged = pieces[multi].dissolve(by="row").reset_index()
        pieces = pd.concat([pieces[~multi], merged], ignore_index=True)
    pieces = gpd.GeoDataFrame(pieces, geometry="geometry", crs=crs).explode(
        index_parts=False).reset_index(drop=True)
    pieces = pieces[pieces.geometry.geom_type == "Polygon"]
    pieces = pieces[pieces.area >= MIN_PIECE_M2]
    c = pieces.geometry.representative_point()
    pieces = pieces.assign(_x=c.x.round(2), _y=c.y.round(2)).sort_values(
        ["row", "_x", "_y"], kind="stable").reset_index(drop=True)
    n_split = int(pieces["row"].duplicated().sum())
    if n_split:
        log.info("export CNIG : %d unité(s) foncière(s) en plusieurs morceaux, un terrain par "
                 "morceau (le modèle CNIG n'admet que des polygones simples)", n_split)
    unit = zu.iloc[pieces["row"].to_numpy()].reset_index(drop=True)
    site_insee = unit["zae_id"].map(insee_of)
    terr_id = _number_ids(site_insee, "TERRAIN-ECO", numbered)
    refcad = unit["idus"].astype(object)
    friche = pd.Series(False, index=unit.index)
    if parcelles is not None and len(parcelles) and len(pieces):
        refcad, friche = _piece_parcels(pieces, unit, parcelles)
    units = unit.assign(friche=friche.to_numpy())
    etat = etat_occupation(units, rule=rule)
    # Built and used by an active establishment: productive; otherwise the inputs cannot tell.
    occupied = (pd.to_numeric(unit["nb_occupants"], errors="coerce") > 0) & (
        pd.to_numeric(unit["surface_batie_m2"], errors="coerce") >= rule.surface_batie_min_m2)
    out = gpd.GeoDataFrame({
        "terr_id": terr_id.to_numpy(),
        "site_id": unit["zae_id"].map(site_of).to_numpy(),
        "terr_refcad": refcad.to_numpy(),
        "terr_surf_brute": (pieces.area / 10_000).round(4).to_numpy(),
        "terr_utile": "oui",
        "terr_identif_date": day,
        "terr_actu_date": day,
        "terr_maitrise_fonc": maitrise_fonciere(
            unit["proprietaire_type"], unit["proprietaire_nom"], unit["proprietaire_siren"],
            epci_siren=epci_siren).to_numpy(),
        "terr_stade_amngt": "inconnu",
        "terr_stade_comm": "inconnu",
        "terr_etat_occup": etat.to_numpy(),
        "terr_usage": np.where(occupied.fillna(False), "bâti productif", "inconnu"),
        "uf_id": unit["uf_id"].to_numpy(),
        "zae_id": unit["zae_id"].to_numpy(),
    }, geometry=pieces.geometry.values, crs=crs)
    return out


def _piece_parcels(pieces: gpd.GeoDataFrame, unit: pd.DataFrame,
                   parcelles: gpd.GeoDataFrame) -> tuple[pd.Series, pd.Series]:
    """Parcels (IDUs of the unit) that each piece covers by more than a sliver, and friches.

    Only two kinds of pairs are measured: each piece with its own unit's parcels
    (the only ones it lists), and with the parcels of a friche. The parcels that
    merely touch a piece along a boundary, most of the neighbours, are never
    intersected.
    """
    geoms = np.asarray(parcelles.geometry.values)
    members = pd.DataFrame({"piece": unit.index, "idu": unit["idus"].fillna("").str.split("|")}
                           ).explode("idu")
    rows = pd.DataFrame({"idu": parcelles["idu"].astype(str).to_numpy(),
                         "j": np.arange(len(parcelles))})
    pairs = members.merge(rows, on="idu")  # only the unit's own parcels
    area = _shared_areas(np.asarray(pieces.geometry.values)[pairs["piece"].to_numpy()],
                         geoms[pairs["j"].to_numpy()])
    pairs = pairs.drop(columns="j")[area >= MIN_PIECE_M2].sort_values(["piece", "idu"])
    # The parcels of each piece joined, a run of rows each (not a pandas group each).
    piece, names = pairs["piece"].to_numpy(), pairs["idu"].tolist()
    starts = np.flatnonzero(np.r_[True, piece[1:] != piece[:-1]]) if len(piece) else piece
    stops = np.r_[starts[1:], len(piece)].astype(int)
    lists = pd.Series(["|".join(names[a:b]) for a, b in zip(starts, stops, strict=True)],
                      index=piece[starts], dtype=object)
    refcad = pd.Series(lists.reindex(unit.index).to_numpy(), index=unit.index).fillna(
        unit["idus"])
    friche = pd.Series(False, index=unit.index)
    if "friche_id" in parcelles:
        # Any parcel of a friche sharing an area with the piece, the unit's or not.
        on_friche = parcelles["friche_id"].notna().to_numpy()
        ip, _, _ = overlap_areas(np.asarray(pieces.geometry.values), geoms[on_friche])
        friche = pd.Series(unit.index.isin(ip), index=unit.index)
    return refcad, friche


def _shared_areas(pieces: np.ndarray, parcels: np.ndarray) -> np.ndarray:
    """Area shared by each piece and the parcel paired with it.

    A parcel inside its piece (the common case: a unit is the union of its
    parcels) shares its own area, found without an intersection; a piece that
    is its parcel, vertex for vertex (a unit of one parcel), without even a
    test of covering.
    """
    if not len(pieces):
        return np.array([], dtype=float)
    # A parcel is a multipolygon, most often of one polygon; a piece, a polygon.
    single = shapely.get_geometry(parcels, 0)
    inside = shapely.equals_exact(pieces, np.where(
        shapely.get_num_geometries(parcels) == 1, single, parcels), tolerance=0)
    with prepared(pieces[~inside]):
        inside[~inside] = shapely.covers(pieces[~inside], parcels[~inside])
    area = np.where(inside, shapely.area(parcels), 0.0)
    if (~inside).any():
        area[~inside] = shapely.area(shapely.intersection(pieces[~inside], parcels[~inside]))
    return area


def _empty_etablissements(crs: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"siret": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _etablissements_kept(etablissements: gpd.GeoDataFrame | None, zu: pd.DataFrame, *,
                         obs: dt.date, rule: VacancyRule, crs: Any
                         ) -> tuple[gpd.GeoDataFrame, pd.DataFrame] | None:
    """Return the establishments to list (legal entities on the units, active or just closed).

    Returns them with the ``uf_id`` of their unit, and their states; ``None`` when
    there is none.
    """
    if etablissements is None or len(etablissements) == 0 or len(zu) == 0:
        return None
    states = establishment_states(etablissements, date_observation=obs, rule=rule)
    threshold = pd.Timestamp(vacancy_threshold(obs))
    keep = states["existe"] & ~states["exclu"] & (
        states["actif"] | (states["ferme"] & (states["fermeture"] > threshold)))
    e = etablissements[keep.to_numpy()]
    units = gpd.GeoDataFrame(zu[["uf_id", "zae_id"]], geometry=zu["geometry"].values, crs=crs)
    link = attach_establishments(e, units, rule=rule)
    e = e.loc[link.index].assign(uf_id=link["uf_id"].to_numpy())
    kind = e["type_personne"] if "type_personne" in e else pd.Series(None, index=e.index)
    diffusible = (e["diffusible"] if "diffusible" in e else pd.Series(True, index=e.index)
                  ).fillna(True).astype(bool)
    legal = (kind == "personne morale") & diffusible
    if (~legal).any():
        log.warning(
            "export CNIG : %d établissement(s) non exporté(s) (entrepreneurs individuels, "
            "non diffusibles, ou catégorie juridique inconnue — ajoutez le fichier "
            "StockUniteLegale à la source etablissements pour la connaître)",
            int((~legal).sum()))
    e = e[legal.to_numpy()]
    created = e["date_creation"] if "date_creation" in e else pd.Series(None, index=e.index)
    if created.isna().any():
        log.warning("export CNIG : %d établissement(s) sans date de création non exporté(s) "
                    "(etab_creation_date est obligatoire)", int(created.isna().sum()))
        e = e[created.notna().to_numpy()]
    if len(e) == 0:
        return None
    # Numbered in their order: the rows made by parts are put back in it.
    st = states.loc[e.index]
    index = pd.RangeIndex(len(e))
    return e.set_axis(index), st.set_axis(index)


def _etablissements(kept: tuple[gpd.GeoDataFrame, pd.DataFrame], zu: pd.DataFrame,
                    terrains: gpd.GeoDataFrame, *, obs: dt.date, day: str, epci_nom: str,
                    epci_siren: str, communes: Mapping[str, str],
                    insee_of: Mapping[str, str]) -> gpd.GeoDataFrame:
    """Return the rows of the establishments on the units ``zu``.

    ``kept`` comes from :func:`_etablissements_kept`. The rows are indexed by
    their position among those kept, unsorted.
    """
    e, states = kept
    crs = terrains.crs
    e = e[e["uf_id"].isin(zu["uf_id"]).to_numpy()]
    if len(e) == 0:
        return _empty_etablissements(crs)
    # The terrain of each establishment: the piece of its unit nearest to it.
    cand = pd.DataFrame({"e": np.arange(len(e)), "uf_id": e["uf_id"].to_numpy()}).merge(
        pd.DataFrame({"t": np.arange(len(terrains)), "uf_id": terrains["uf_id"].to_numpy()}),
        on="uf_id")
    cand["d"] = shapely.distance(np.asarray(e.geometry.values)[cand["e"].to_numpy()],
                                 np.asarray(terrains.geometry.values)[cand["t"].to_numpy()])
    best = cand.sort_values(["e", "d", "t"]).drop_duplicates("e").set_index("e")["t"]
    terr = pd.Series(terrains["terr_id"].to_numpy()[best.to_numpy()], index=best.index)
    pos = np.arange(len(e))
    e = e.assign(terr_id=_lookup(pd.Series(pos), terr).to_numpy())
    e = e[e["terr_id"].notna().to_numpy()]
    st = states.loc[e.index]

    def col(name: str) -> pd.Series:
        if name in e:
            return e[name].astype(object).where(e[name].notna(), None)
        return pd.Series(None, index=e.index, dtype=object)

    zone = e["uf_id"].map(dict(zip(zu["uf_id"], zu["zae_id"], strict=False)))
    site_insee = zone.map(insee_of)
    insee = col("code_insee").fillna(site_insee)
    tranche = col("tranche_effectif").fillna("NN")
    year = col("annee_effectif").fillna(col("date_maj").str[:4]).fillna(str(obs.year))
    source = col("source").fillna("Sirene")
    out = gpd.GeoDataFrame({
        "siret": col("siret"),
        "siren": col("siren").fillna(col("siret").str[:9]),
        "terr_id": e["terr_id"],
        "ban_id": col("ban_id"),
        "etab_adresse": col("adresse"),
        "etab_raison_sociale": col("raison_sociale").fillna(col("nom")).fillna("inconnu"),
        "etab_nat_juridique": col("categorie_juridique"),
        "etab_nom": col("nom").fillna(col("raison_sociale")).fillna("inconnu"),
        "epci_nom": epci_nom,
        "epci_siren": epci_siren,
        "comm_nom": col("commune").fillna(insee.map(communes)).fillna("inconnu"),
        "comm_insee": insee,
        "etab_siege": col("siege"),
        "etab_creation_date": col("date_creation"),
        "etab_identif_date": day,
        "etab_actu_date": col("date_maj").fillna(day),
        "etab_actif": np.where(st["actif"], "oui", "non"),
        "etab_fermeture_date": st["fermeture"].dt.strftime("%Y-%m-%d").astype(object).where(
            st["fermeture"].notna(), None),
        "etab_activite_code": col("naf").fillna("inconnu"),
        "etab_activite_libelle": col("naf_libelle").fillna("inconnu"),
        "etab_effectif_code": tranche,
        "etab_effectif_libelle": tranche.map(TRANCHES_EFFECTIF).fillna("inconnu"),
        "etab_effectif_annee": year,
        "etab_source_info": "Base Sirene des entreprises et de leurs établissements (Insee) : "
                            + source.astype(str),
        "geocodage_qualite": col("geocodage").map(
            lambda v: _match(v, value_list({"name": "geocodage_qualite"}) or ())).fillna(
            "inconnu"),
    }, geometry=shapely.multipoints(np.asarray(e.geometry.values)[:, None]) if len(e) else [],
        crs=crs)
    return out


def _sites(zae: gpd.GeoDataFrame, zu: pd.DataFrame, utile: pd.Series, *,
           site_id: pd.Series, insee: pd.Series, communes: Mapping[str, str], day: str,
           epci_nom: str, epci_siren: str, rule: VacancyRule, producteur: str
           ) -> gpd.GeoDataFrame:
    """One site per zone, with the inventory's counts and rates.

    ``utile``: the useful area of the terrains of each zone (ha, by ``zae_id``).
    """
    ids = zae["zae_id"]
    types = value_list({"name": "site_type"}) or ()
    site_type = zae.get("zae_type", pd.Series(None, index=zae.index)).map(
        lambda v: _match(v, types)).fillna("zone d'activité économique")
    vocations = value_list({"name": "site_vocadomi"}) or ()
    voca = zae.get("zae_vocation", pd.Series(None, index=zae.index)).map(
        lambda v: _match(v, vocations)).fillna("inconnu")
    occupied = zu["occupation"].isin(["occupée", "présumée occupée"]).groupby(
        zu["zae_id"]).any()
    etat = np.where(_lookup(ids, occupied).eq(True), "existant et actif", "inconnu")
    built = pd.to_numeric(zu["surface_batie_m2"], errors="coerce")
    n_built = (built >= rule.surface_batie_min_m2).groupby(zu["zae_id"]).sum()
    has_built = built.notna().groupby(zu["zae_id"]).any()
    n_etab = pd.to_numeric(zu["nb_occupants"], errors="coerce").groupby(zu["zae_id"]).sum(
        min_count=1)
    def number(name: str) -> pd.Series:
        values = zae[name] if name in zae else pd.Series(np.nan, index=zae.index)
        return pd.to_numeric(values, errors="coerce")

    rate = number("taux_vacance")
    origin = zae.get("zae_origine", pd.Series(None, index=zae.index))
    note = np.where(origin == "derivee_plu",
                    " Périmètre dérivé des zones d'activité du PLU, à confirmer.", "")
    description = ("Inventaire des ZAE (art. L318-8-2 du code de l'urbanisme) au " + day
                   + ", identifiant observatoire " + ids.astype(str) + "." + note
                   + " Vacance : " + zae.get("regle_vacance", pd.Series("", index=zae.index))
                   .fillna("").astype(str))
    return gpd.GeoDataFrame({
        "site_id": site_id.to_numpy(),
        "site_nom": zae.get("zae_nom", pd.Series(None, index=zae.index)).fillna(
            ids).to_numpy(),
        "site_type": site_type.to_numpy(),
        "site_vocadomi": voca.to_numpy(),
        "site_etat": etat,
        "site_surf_brute": (zae.area / 10_000).round(4).to_numpy(),
        "site_surf_utile": _lookup(ids, utile).astype(float).fillna(0.0).round(4).to_numpy(),
        "site_identif_date": day,
        "site_actu_date": day,
        "site_description": description.to_numpy(),
        "source_producteur": producteur,
        "site_epci_nom": epci_nom,
        "site_epci_siren": epci_siren,
        "site_comm_nom": insee.map(communes).to_numpy(),
        "site_comm_insee": insee.to_numpy(),
        "site_moa_type": np.where(site_type == "zone d'activité économique", "epci", "inconnu"),
        "site_uf_nbre": number("nb_unites").to_numpy(),
        "site_uf_vacant_nbre": number("nb_unites_vacantes").to_numpy(),
        # § 3.3: « taux de vacance … (pourcentage) », an integer, rounded half up.
        "site_taux_vacance": np.floor((rate * 100).round(6) + 0.5).to_numpy(),
        "site_uf_bati_nbre": _lookup(ids, n_built).where(
            _lookup(ids, has_built).eq(True)).to_numpy(),
        "site_nb_etab": _lookup(ids, n_etab).to_numpy(),
    }, geometry=zae.geometry.values, crs=zae.crs)


def _poles(sites: gpd.GeoDataFrame, *, insee: pd.Series, day: str) -> gpd.GeoDataFrame:
    """One pole per site (``pole_id`` is required by ``schema.json``)."""
    pole_voca = {"mixte": "mixte, sans dominante"}
    return gpd.GeoDataFrame({
        "pole_id": _number_ids(pd.Series(insee.to_numpy()), "POLE-ECO").to_numpy(),
        "pole_nom": sites["site_nom"].to_numpy(),
        "pole_vocadomi": sites["site_vocadomi"].replace(pole_voca).to_numpy(),
        "pole_identif_date": day,
        "pole_actu_date": day,
        "pole_nb_site": 1,
        "pole_nb_etab": sites["site_nb_etab"].to_numpy(),
        "pole_surface": sites["site_surf_brute"].round().to_numpy(),
    }, geometry=sites.geometry.representative_point().values, crs=sites.crs)


def write_cnig_geopackage(layers: Mapping[str, gpd.GeoDataFrame]
                          | Iterable[Mapping[str, gpd.GeoDataFrame]], path: str | Path) -> Path:
    """Copy the official template to ``path`` and append the layers' rows.

    Parameters
    ----------
    layers
        From :func:`build_cnig_layers`, or the parts given by :func:`cnig_parts`
        (appended as they come: one part in memory at a time).
    path
        The file to write (replaced).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return append_to_template(TEMPLATE, layers, path, tables=tuple(CLASSES),
                              what="l'export CNIG")


def stage_cnig_export(zae: gpd.GeoDataFrame, zae_unites: gpd.GeoDataFrame,
                      etablissements: gpd.GeoDataFrame | None, *, output_dir: str | Path,
                      epci_nom: str | None, epci_siren: str | None,
                      communes: Mapping[str, str], date_observation: dt.date | str | None,
                      parcelles: gpd.GeoDataFrame | None = None,
                      rule: VacancyRule = DEFAULT_RULE,
                      producteur: str | None = None,
                      first_seen: FirstSeen | None = None) -> StagedFile:
    """Write the CNIG export to a staged file and validate it before it can be published.

    Parameters
    ----------
    zae, zae_unites, etablissements, parcelles, rule, producteur, first_seen
        See :func:`build_cnig_layers`.
    output_dir
        The territory's output folder; the file is ``<output_dir>/cnig/sites_economiques.gpkg``.
    epci_nom, epci_siren
        ``territoire.epci_nom`` and ``territoire.epci_siren``.
    communes
        INSEE code → commune name.
    date_observation
        ``options.date_observation`` (``None``: today).

    Returns
    -------
    StagedFile
        The validated GeoPackage, to publish with the other outputs.

    Raises
    ------
    ConfigError
        EPCI missing.
    SchemaError
        The export does not conform to the standard (layer, row and field named);
        nothing is left behind.
    """
    staged = StagedFile(Path(output_dir) / "cnig" / "sites_economiques.gpkg")
    try:
        # Written by groups of sites, then validated as read back, by batches.
        write_cnig_geopackage(cnig_parts(
            zae, zae_unites, etablissements, epci_nom=epci_nom or "",
            epci_siren=epci_siren or "", communes=communes, date_observation=date_observation,
            parcelles=parcelles, rule=rule, producteur=producteur, first_seen=first_seen),
            staged.tmp)
        counts = validate_geopackage(staged.tmp)
    except BaseException:
        staged.discard()
        raise
    log.info("export CNIG Sites Économiques : %s", ", ".join(f"{k} {v}"
                                                            for k, v in counts.items()))
    return staged
