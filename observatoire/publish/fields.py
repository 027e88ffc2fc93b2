"""French aliases of the observatory's fields, and the labels of their coded values.

QGIS shows a field's alias instead of its name (attribute table, forms,
identify tool) and, through a *value map*, a label instead of a coded value.
:func:`field_alias` gives the alias of any column the observatory writes:

- the canonical fields (:mod:`observatoire.schema`) and the columns the analysis
  adds (indicators, land units, ZAE inventory…), by name (:data:`ALIASES`), a
  few names meaning something else in one layer (:data:`LAYER_ALIASES`);
- the columns of the scoring profiles (``score_<profil>``,
  ``contrib_<profil>_<critère>``…), named after the profile's and the
  criterion's labels;
- the columns named after the territory (``dist_route_<classe>_m``,
  ``part_contrainte_<contrainte>``).

A column without alias is returned as ``None`` (and listed by
:func:`missing_aliases`): the tests require every written column to have one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from observatoire.publish.assets import (
    FRICHE_STATUTS,
    OCCUPATIONS,
    PROPRIETAIRE_TYPES,
    SCORE_CLASSES,
    ZONE_TYPES,
    ScoringProfile,
)

#: French alias of each column, whatever the layer holding it.
#: Mutafriches usages (the reference's keys) and their French labels.
MUTABILITE_USAGE_LABELS: dict[str, str] = {
    "residentiel": "résidentiel", "equipements": "équipements publics",
    "culture": "culture, tourisme", "tertiaire": "tertiaire",
    "industrie": "industrie, logistique", "renaturation": "renaturation",
    "photovoltaique": "photovoltaïque au sol"}
ALIASES: dict[str, str] = {
    # Shared
    "fid": "Identifiant interne",
    "source": "Fichier source",
    "code_insee": "Commune (code INSEE)",
    "comm_insee": "Commune (code INSEE)",
    "comm_nom": "Commune",
    "communes": "Communes (codes INSEE)",
    "surface_m2": "Surface (m²)",
    "nb_parcelles": "Nombre de parcelles",
    "idus": "Parcelles (IDU)",
    "uf_id": "Unité foncière",
    "zae_id": "Zone d'activités",
    "zae_nom": "Nom de la zone d'activités",
    "friche_id": "Friche",
    "proprietaire_type": "Catégorie de propriétaire",
    "proprietaire_nom": "Propriétaire (personne morale)",
    "proprietaire_siren": "SIREN du propriétaire",
    # parcelles: canonical fields
    "idu": "Identifiant de parcelle (IDU)",
    "prefixe": "Préfixe de section",
    "section": "Section cadastrale",
    "numero": "Numéro",
    "contenance": "Contenance cadastrale (m²)",
    # parcelles: indicators
    "compacite": "Compacité (1 = disque)",
    "largeur_utile_m": "Largeur utile (m)",
    "emprise_50m": "Emprise de 50 m × 50 m possible",
    "part_batie": "Part bâtie",
    "nb_batiments": "Nombre de bâtiments",
    "zone_libelle": "Zone du PLU",
    "zone_typezone": "Type de zone du PLU",
    "zone_activite": "Zone d'activités du PLU",
    "part_zae": "Part dans la zone d'activités",
    "dist_zae_m": "Distance à la zone d'activités la plus proche (m)",
    "friche_statut": "Statut de la friche",
    "friche_type": "Type de friche",
    "pente_moy_pct": "Pente moyenne (%)",
    "pente_max_pct": "Pente maximale (%)",
    "dist_voie_ferree_m": "Distance à la voie ferrée (m)",
    "dist_poste_electrique_m": "Distance au poste électrique (m)",
    "en_friche": "Parcelle en friche",
    "en_zae": "Parcelle en zone d'activités",
    "zonage_vocation": "Vocation du zonage",
    "part_contraintes": "Part sous contrainte (la plus étendue)",
    "contrainte_principale": "Contrainte principale",
    "part_contrainte_stricte": "Part sous contrainte stricte",
    "contrainte_stricte": "Contrainte stricte",
    # friches (CNIG Friches)
    "site_id": "Identifiant du site",
    "site_nom": "Nom du site",
    "site_type": "Type de friche",
    "site_statut": "Statut de la friche",
    "site_occupation": "Occupation du site",
    "site_adresse": "Adresse du site",
    "unite_fonciere_surface": "Surface de l'unité foncière (m²)",
    "unite_fonciere_refcad": "Parcelles du site (IDU)",
    "source_nom": "Producteur de la donnée d'origine",
    "dans_territoire": "Dans le territoire",
    "idu_absents": "Parcelles citées absentes du cadastre",
    "appariement": "Rattachement aux parcelles",
    "surface_origine": "Origine de la surface",
    "bati_nombre": "Nombre de bâtiments",
    "bati_pollution": "Pollution connue des bâtiments",
    "bati_patrimoine": "Présence de bâti patrimonial",
    "bati_etat": "Dégradation des bâtiments",
    "proprio_type": "Type de propriétaire",
    "proprio_personne": "Type de personne (physique ou morale)",
    "sol_pollution_existe": "Existence de pollution du sol",
    "urba_zone_type": "Type de zone d'urbanisme",
    "urba_zone_lib": "Libellé de la zone d'urbanisme",
    "mutabilite_meilleur_usage": "Mutafriches : meilleur usage",
    "mutabilite_fiabilite": "Mutafriches : fiabilité (sur 10)",
    "mutabilite_fiabilite_niveau": "Mutafriches : niveau de fiabilité",
    "mutabilite_version": "Mutafriches : version de l'algorithme",
    "mutabilite_avis_industrie": "Industrie : Mutafriches et observatoire (avis)",
    "mutabilite_ecart_industrie": "Industrie : Mutafriches et observatoire",
    "mutabilite_score_observatoire": "Score industriel de l'observatoire",
    **{key: text for usage, label in MUTABILITE_USAGE_LABELS.items() for key, text in (
        (f"mutabilite_{usage}", f"Mutafriches : indice {label} (0–100)"),
        (f"mutabilite_{usage}_rang", f"Mutafriches : rang {label} (1 à 7)"),
        (f"mutabilite_{usage}_potentiel", f"Mutafriches : potentiel {label}"))},
    # zae
    "zae_type": "Type de site économique",
    "zae_vocation": "Vocation dominante",
    "zae_origine": "Origine de la zone",
    "nb_unites": "Unités foncières",
    "nb_unites_vacantes": "Unités foncières vacantes",
    "taux_vacance": "Taux de vacance (unités)",
    "taux_vacance_surface": "Taux de vacance (surface)",
    "surface_disponible_m2": "Surface disponible (m²)",
    "plus_grande_surface_dispo_m2": "Plus grande surface disponible (m²)",
    "regle_vacance": "Règle de vacance appliquée",
    "nb_friches": "Nombre de friches",
    "surface_friches_m2": "Surface des friches (m²)",
    # zae_unites
    "part_dans_zae": "Part dans la zone",
    "coupee_par_limite": "Coupée par la limite de la zone",
    "occupants": "Établissements occupants",
    "nb_occupants": "Nombre d'établissements",
    "occupation": "Occupation",
    "statut_vacance": "Statut de vacance",
    "raison_vacance": "Motif du statut",
    "surface_dans_zae_m2": "Surface dans la zone (m²)",
    "surface_batie_m2": "Surface bâtie (m²)",
    "nb_etablissements_fermes": "Établissements fermés",
    "date_derniere_fermeture": "Date de la dernière fermeture",
    # zonage (CNIG zone_urba)
    "libelle": "Libellé de la zone",
    "libelong": "Libellé long",
    "typezone": "Type de zone",
    "destdomi": "Destination dominante",
    "insee": "Commune (code INSEE)",
    "idurba": "Document d'urbanisme",
    # batiments, routes
    "bati_id": "Identifiant du bâtiment",
    "nature": "Nature",
    "hauteur": "Hauteur (m)",
    "route_id": "Identifiant du tronçon",
    "importance": "Importance (1 = la plus forte)",
    "classe": "Classe de route",
    # unites_foncieres
    "methode": "Méthode de regroupement",
    # gisements
    "gisement_id": "Identifiant du gisement",
    "nb_proprietaires": "Nombre de propriétaires",
    "score_moyen": "Score moyen",
    "score_min": "Score minimal",
    # etablissements
    "siret": "SIRET",
    "siren": "SIREN",
    "nom": "Enseigne ou dénomination",
    "raison_sociale": "Raison sociale",
    "categorie_juridique": "Catégorie juridique",
    "type_personne": "Type de personne",
    "diffusible": "Diffusible",
    "naf": "Activité (code NAF)",
    "naf_libelle": "Activité",
    "etat": "État administratif",
    "date_creation": "Date de création",
    "date_fermeture": "Date de fermeture",
    "date_maj": "Date de mise à jour (Sirene)",
    "siege": "Siège",
    "tranche_effectif": "Tranche d'effectif",
    "annee_effectif": "Année de l'effectif",
    "adresse": "Adresse",
    "commune": "Commune",
    "ban_id": "Identifiant BAN de l'adresse",
    "geocodage": "Qualité de géocodage",
}

#: Columns of the evolution layers (:mod:`observatoire.observation.run`).
ALIASES.update({
    "date_depuis": "Observation précédente",
    "date_jusqua": "Observation",
    "idu_precedents": "Parcelles précédentes (IDU)",
    "nb_precedents": "Nombre de parcelles précédentes",
    "evolution": "Évolution principale",
    "part_batie_avant": "Part bâtie avant",
    "nb_batiments_avant": "Nombre de bâtiments avant",
    "nouveaux_batiments": "Nouveaux bâtiments",
    "nouvellement_batie": "Nouvellement bâtie",
    "surface_consommee_m2": "Surface consommée (m²)",
    "gisement_avant": "Gisement avant",
    "gisement": "Gisement",
    "gisements_avant": "Gisements précédents",
    "surface_avant_m2": "Surface avant (m²)",
    "surface_consommee_ha": "Foncier consommé (ha)",
    "consommation_par_commune": "Foncier consommé par commune",
    "nb_unites_avant": "Nombre d'unités foncières avant",
    "nb_unites_vacantes_avant": "Unités vacantes avant",
    "taux_vacance_avant": "Taux de vacance avant",
    "surface_disponible_avant_m2": "Surface disponible avant (m²)",
    "unites_liberees": "Unités libérées",
    "unites_occupees": "Unités occupées",
    "evolution_surface_disponible_m2": "Évolution de la surface disponible (m²)",
    "statut_avant": "Statut avant",
})

#: Aliases of a column that means something else in one layer.
LAYER_ALIASES: dict[str, dict[str, str]] = {
    "parcelles": {"numero": "Numéro de parcelle"},
    "routes": {"numero": "Numéro de route", "nature": "Nature du tronçon"},
    "batiments": {"nature": "Nature du bâtiment"},
    "friches": {"zae_id": "Zone d'activités de la friche"},
    "friches_surfaces": {"zae_id": "Zone d'activités de la friche"},
    "gisements": {"zae_id": "Zone d'activités du gisement", "friche_id": "Friche du gisement"},
    "evolution_parcelles": {"changement": "Changement cadastral"},
    "evolution_zae": {"changement": "Évolution de la zone"},
    "evolution_friches": {"changement": "Évolution de la friche"},
    "evolution_gisements": {"statut": "Évolution du gisement",
                            "zae_id": "Zone d'activités du gisement"},
}

#: Labels of score classes beyond those of :data:`SCORE_CLASSES`.
_OTHER_CLASSES = {"exclue": "Exclue", "non déterminée": "Non déterminée"}

#: Labels of the coded values of a column, by column.
VALUE_MAPS: dict[str, dict[str, str]] = {
    "statut_vacance": {
        "vacante": "Vacante",
        "non vacante": "Non vacante",
        "présumée vacante": "Présumée vacante",
        "présumée non vacante": "Présumée non vacante",
        "inconnue": "Inconnue",
    },
    "occupation": {value: label for value, (_, label) in OCCUPATIONS.items()},
    "zae_origine": {
        "cnig": "Fichier CNIG Sites économiques",
        "couche": "Couche de zones fournie",
        "derivee_plu": "Dérivée des zones d'activités du PLU",
    },
    "proprietaire_type": {value: label for value, (_, label) in PROPRIETAIRE_TYPES.items()},
    "methode": {
        "proprietaire": "Parcelles contiguës d'un même propriétaire",
        "parcelle": "Une parcelle par unité (propriétaires inconnus)",
    },
    "site_statut": {value: label for value, (_, label) in FRICHE_STATUTS.items()},
    "friche_statut": {value: label for value, (_, label) in FRICHE_STATUTS.items()},
    "typezone": {"AU": "AU — à urbaniser",
                 **{value: label for value, (_, label) in ZONE_TYPES.items()}},
    "zone_typezone": {"AU": "AU — à urbaniser",
                      **{value: label for value, (_, label) in ZONE_TYPES.items()}},
    "etat": {"A": "Actif", "F": "Fermé"},
    "appariement": {"identifiant": "Par identifiant de parcelle (IDU)",
                    "géométrie": "Par géométrie (point ou périmètre)"},
    "mutabilite_meilleur_usage": {usage: label.capitalize()
                                  for usage, label in MUTABILITE_USAGE_LABELS.items()},
    "mutabilite_avis_industrie": {"concordant": "Concordant", "divergent": "Divergent"},
    "surface_origine": {"périmètre": "Aire du périmètre",
                        "unité foncière": "Surface de l'unité foncière déclarée",
                        "parcelles": "Aire des parcelles rattachées"},
}
#: Value maps that hold in one layer only.
LAYER_VALUE_MAPS: dict[str, dict[str, dict[str, str]]] = {
    "routes": {"classe": {"autoroute": "Autoroute", "principale": "Route principale",
                          "secondaire": "Route secondaire", "locale": "Route locale"}},
}
#: Labels of the score classes (``classe_<profil>``).
CLASS_LABELS: dict[str, str] = {
    **{value: label for value, (_, label) in SCORE_CLASSES.items()}, **_OTHER_CLASSES}


def profile_aliases(profiles: Sequence[ScoringProfile]) -> dict[str, str]:
    """Aliases of the columns of the scoring profiles, named after their labels."""
    out: dict[str, str] = {}
    for p in profiles:
        out.update({
            f"score_{p.name}": f"Score « {p.label} » (0 à 100)",
            f"classe_{p.name}": f"Classe « {p.label} »",
            f"exclu_{p.name}": f"Exclue du profil « {p.label} »",
            f"exclusions_{p.name}": f"Motifs d'exclusion « {p.label} »",
            f"raisons_{p.name}": f"Atouts et faiblesses « {p.label} »",
            f"fiabilite_{p.name}": f"Fiabilité du score « {p.label} »",
            f"avant_classe_{p.name}": f"Classe « {p.label} » avant",
            f"critere_{p.name}": f"Critère ayant le plus changé « {p.label} »",
        })
        out.update({column: f"Points « {label} » ({p.label})"
                    for column, label in p.criteria})
    return out


def field_alias(layer: str, column: str, *, profiles: Sequence[ScoringProfile] = (),
                constraints: Mapping[str, str] | None = None) -> str | None:
    """Return the French alias of a column, or ``None`` when it has none.

    Parameters
    ----------
    layer
        Name of the layer holding the column.
    column
        Column name.
    profiles
        Scoring profiles found in the layer (their columns and labels).
    constraints
        Name of each constraint by its ``part_contrainte_<…>`` column.

    Returns
    -------
    str or None
        The alias.
    """
    if column in LAYER_ALIASES.get(layer, {}):
        return LAYER_ALIASES[layer][column]
    if column in ALIASES:
        return ALIASES[column]
    named = profile_aliases(profiles)
    if column in named:
        return named[column]
    if constraints and column in constraints:
        return f"Part sous la contrainte « {constraints[column]} »"
    if column == "dist_route_autoroute_m":
        return "Distance à une autoroute (m)"
    for prefix, suffix, text in (
            ("dist_route_", "_m", "Distance à une route « {} » (m)"),
            ("part_contrainte_", "", "Part sous la contrainte « {} »")):
        if column.startswith(prefix) and column.endswith(suffix) and \
                len(column) > len(prefix) + len(suffix):
            stem = column[len(prefix):len(column) - len(suffix)]
            return text.format(stem.replace("_", " "))
    return None


def value_map(layer: str, column: str) -> dict[str, str] | None:
    """Return the labels of a coded column's values (``None`` when it is not coded)."""
    if column in LAYER_VALUE_MAPS.get(layer, {}):
        return LAYER_VALUE_MAPS[layer][column]
    if column.startswith("classe_") and layer == "parcelles":
        return CLASS_LABELS
    return VALUE_MAPS.get(column)


def missing_aliases(layer: str, columns: Iterable[str], *,
                    profiles: Sequence[ScoringProfile] = (),
                    constraints: Mapping[str, str] | None = None) -> list[str]:
    """Return the columns of ``layer`` that have no alias."""
    return [c for c in columns
            if field_alias(layer, c, profiles=profiles, constraints=constraints) is None]
