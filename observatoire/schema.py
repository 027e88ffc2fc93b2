"""Canonical layers of the observatory: names, types, geometry, required fields.

Readers turn every real format into these layers; the analysis and the
publication rely on them only.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Field:
    """A column of a canonical layer.

    Attributes
    ----------
    name
        Column name.
    dtype
        ``str``, ``float``, ``int``, ``bool`` or ``date`` (ISO text).
    required
        Whether a feature may leave it empty.
    description
        French description, written into the GeoPackage metadata.
    """

    name: str
    dtype: str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class LayerSchema:
    """A canonical layer: its geometry type and its fields, in order."""

    name: str
    geometry_type: str | None
    fields: tuple[Field, ...]
    description: str
    key: str | None = None

    @property
    def columns(self) -> list[str]:
        """Field names, in order."""
        return [f.name for f in self.fields]


#: NULL as a 0-d object array, for ``np.where(cond, values, NULL)``: the same result
#: as ``None`` there (an object array), in the types numpy's stubs accept.
NULL = np.array(None, dtype=object)

#: Column naming the source file of each feature (lineage).
LINEAGE = "source"

PARCELLES = LayerSchema(
    "parcelles",
    "MultiPolygon",
    (
        Field("idu", "str", True, "Identifiant unique de la parcelle (14 caractères)"),
        Field("code_insee", "str", True, "Code INSEE de la commune"),
        Field("prefixe", "str", True, "Préfixe de section (commune absorbée), 000 par défaut"),
        Field("section", "str", True, "Section cadastrale sur 2 caractères"),
        Field("numero", "str", True, "Numéro de parcelle sur 4 chiffres"),
        Field("contenance", "float", False, "Contenance fiscale (m²)"),
        Field("surface_m2", "float", True, "Surface calculée de la géométrie (m²)"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Parcelles cadastrales normalisées",
    key="idu",
)

FRICHES = LayerSchema(
    "friches",
    "Point",
    (
        Field("site_id", "str", True, "Identifiant du site (standard CNIG Friches)"),
        Field("site_nom", "str", False, "Nom du site"),
        Field("site_type", "str", False, "Type de friche (liste CNIG)"),
        Field("site_statut", "str", False, "Statut de la friche (liste CNIG)"),
        Field("site_occupation", "str", False, "Occupation du site"),
        Field("comm_insee", "str", False, "Code INSEE de la commune"),
        Field("comm_nom", "str", False, "Nom de la commune"),
        Field("unite_fonciere_surface", "float", False, "Surface de l'unité foncière (m²)"),
        Field("unite_fonciere_refcad", "str", False, "Parcelles du site (IDU séparés par |)"),
        Field("source_nom", "str", False, "Producteur de la donnée d'origine"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Friches (localisation ponctuelle)",
    key="site_id",
)

FRICHES_SURFACES = LayerSchema(
    "friches_surfaces",
    "MultiPolygon",
    FRICHES.fields,
    "Friches dont le périmètre est connu",
    key="site_id",
)

ZAE = LayerSchema(
    "zae",
    "MultiPolygon",
    (
        Field("zae_id", "str", True, "Identifiant de la zone d'activité"),
        Field("zae_nom", "str", False, "Nom de la zone"),
        Field("zae_type", "str", False, "Type de site économique"),
        Field("zae_vocation", "str", False, "Vocation dominante"),
        Field("comm_insee", "str", False, "Code INSEE de la commune principale"),
        Field("zae_origine", "str", True, "cnig, couche ou derivee_plu"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Zones d'activités économiques",
    key="zae_id",
)

ZONAGE = LayerSchema(
    "zonage",
    "MultiPolygon",
    (
        Field("libelle", "str", True, "Libellé court de la zone (UA, UY, A, N…)"),
        Field("libelong", "str", False, "Libellé long"),
        Field("typezone", "str", True, "Type de zone (U, AUc, AUs, A, N…)"),
        Field("destdomi", "str", False, "Destination dominante (code CNIG)"),
        Field("insee", "str", False, "Code INSEE"),
        Field("idurba", "str", False, "Identifiant du document d'urbanisme"),
        Field("zone_activite", "bool", True, "Zone dédiée aux activités économiques"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Zonage du document d'urbanisme (CNIG zone_urba)",
)

BATIMENTS = LayerSchema(
    "batiments",
    "MultiPolygon",
    (
        Field("bati_id", "str", False, "Identifiant du bâtiment"),
        Field("nature", "str", False, "Nature du bâtiment"),
        Field("hauteur", "float", False, "Hauteur (m)"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Bâtiments",
)

ROUTES = LayerSchema(
    "routes",
    "MultiLineString",
    (
        Field("route_id", "str", False, "Identifiant du tronçon"),
        Field("nature", "str", False, "Nature du tronçon"),
        Field("importance", "int", False, "Importance (1 = la plus forte, 5 = locale)"),
        Field("numero", "str", False, "Numéro de route (A36, N83, D464…)"),
        Field("classe", "str", True, "Classe : autoroute, principale, secondaire, locale"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Réseau routier",
)

UNITES_FONCIERES = LayerSchema(
    "unites_foncieres",
    "MultiPolygon",
    (
        Field("uf_id", "str", True, "Identifiant de l'unité foncière (UF- + plus petit IDU)"),
        Field("idus", "str", True, "Parcelles de l'unité (IDU séparés par |)"),
        Field("nb_parcelles", "int", True, "Nombre de parcelles"),
        Field("surface_m2", "float", True, "Surface (m²)"),
        Field("proprietaire_type", "str", True, "personne morale, personne physique ou inconnu"),
        Field("proprietaire_nom", "str", False, "Dénomination (personnes morales uniquement)"),
        Field("proprietaire_siren", "str", False, "SIREN du propriétaire personne morale"),
        Field("methode", "str", True, "proprietaire (table des propriétaires) ou parcelle"),
    ),
    "Unités foncières : parcelles contiguës d'un même propriétaire",
    key="uf_id",
)

GISEMENTS = LayerSchema(
    "gisements",
    "MultiPolygon",
    (
        Field("gisement_id", "str", True, "Identifiant du gisement (G- + plus petit IDU)"),
        Field("surface_m2", "float", True, "Surface (m²)"),
        Field("nb_parcelles", "int", True, "Nombre de parcelles"),
        Field("idus", "str", True, "Parcelles du gisement (IDU séparés par |)"),
        Field("nb_proprietaires", "int", False, "Nombre de propriétaires distincts"),
        Field("score_moyen", "float", False, "Score moyen des parcelles"),
        Field("score_min", "float", False, "Score minimal des parcelles"),
        Field("zae_id", "str", False, "ZAE du gisement"),
        Field("friche_id", "str", False, "Friche du gisement"),
    ),
    "Gisements : parcelles éligibles contiguës regroupées en sites candidats",
    key="gisement_id",
)

ZAE_UNITES = LayerSchema(
    "zae_unites",
    "MultiPolygon",
    (
        Field("zae_id", "str", True, "ZAE de l'unité"),
        Field("uf_id", "str", True, "Unité foncière"),
    ),
    "Inventaire des ZAE : unités foncières, propriétaires, occupants, vacance",
)

LAYERS: dict[str, LayerSchema] = {
    s.name: s for s in (PARCELLES, FRICHES, FRICHES_SURFACES, ZAE, ZONAGE, BATIMENTS, ROUTES,
                        UNITES_FONCIERES, GISEMENTS, ZAE_UNITES)
}


#: Usages of Mutafriches (keys of the reference), in its order.
MUTABILITE_USAGES = ("residentiel", "equipements", "culture", "tertiaire", "industrie",
                     "renaturation", "photovoltaique")

#: Columns the mutabilité (Mutafriches) adds to ``friches`` and ``gisements``.
MUTABILITE_FIELDS: tuple[Field, ...] = (
    *(f for u in MUTABILITE_USAGES for f in (
        Field(f"mutabilite_{u}", "float", False,
              f"Indice de mutabilité Mutafriches pour l'usage {u} (0–100)"),
        Field(f"mutabilite_{u}_rang", "int", False, f"Rang de l'usage {u} (1 à 7)"),
        Field(f"mutabilite_{u}_potentiel", "str", False,
              f"Potentiel Mutafriches pour l'usage {u} (Excellent … Faible)"))),
    Field("mutabilite_meilleur_usage", "str", False, "Usage de rang 1 selon Mutafriches"),
    Field("mutabilite_fiabilite", "float", False, "Fiabilité de l'indice, note sur 10"),
    Field("mutabilite_fiabilite_niveau", "str", False, "Niveau de fiabilité (Très fiable …)"),
    Field("mutabilite_version", "str", False, "Version de l'algorithme Mutafriches"),
    Field("mutabilite_avis_industrie", "str", False,
          "concordant ou divergent : indice industrie de Mutafriches et score de l'observatoire"),
    Field("mutabilite_ecart_industrie", "str", False,
          "Ce que disent l'un et l'autre de l'industrie, et le meilleur usage selon Mutafriches"),
    Field("mutabilite_score_observatoire", "float", False,
          "Score industriel de l'observatoire du site (moyenne pondérée de ses parcelles)"),
)

MUTABILITE_CRITERES = LayerSchema(
    "mutabilite_criteres",
    None,
    (
        Field("site_type", "str", True, "friche ou gisement"),
        Field("site_id", "str", True, "site_id de la friche ou gisement_id du gisement"),
        Field("critere", "str", True, "Critère Mutafriches (nom de l'algorithme de référence)"),
        Field("critere_libelle", "str", True, "Libellé du critère"),
        Field("valeur", "str", False, "Valeur du critère pour le site (vide : non renseigné)"),
        Field("source", "str", False, "Couche et fait d'où vient la valeur"),
        Field("etat", "str", True, "noté, non renseigné, ne sait pas, recherche sans résultat, "
                                   "valeur sans score"),
        Field("classe", "str", False, "Tranche ou modalité de la matrice lue"),
        Field("poids", "float", True, "Poids du critère"),
        Field("renseigne", "bool", True, "Compté comme renseigné par la fiabilité"),
        *(Field(f"impact_{u}", "float", False,
                f"Impact pour l'usage {u} : -2, -1, 0,5 (neutre), 1, 2 ; vide si non noté")
          for u in MUTABILITE_USAGES),
        Field("version", "str", True, "Version de l'algorithme Mutafriches"),
    ),
    "Mutabilité (Mutafriches) : chaque critère de chaque friche et gisement, sa valeur, sa "
    "source et son impact par usage",
)

#: Attribute tables of the observatory (no geometry), by name.
TABLES: dict[str, LayerSchema] = {MUTABILITE_CRITERES.name: MUTABILITE_CRITERES}

def empty_layer(schema: LayerSchema, crs: str) -> gpd.GeoDataFrame:
    """Return an empty GeoDataFrame with the columns and types of ``schema``."""
    data = {f.name: pd.Series([], dtype=_pandas_dtype(f.dtype)) for f in schema.fields}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _pandas_dtype(dtype: str) -> str:
    return {"str": "object", "float": "float64", "int": "Int64", "bool": "bool",
            "date": "object"}[dtype]


def conform(frame: pd.DataFrame, schema: LayerSchema) -> gpd.GeoDataFrame:
    """Order and type the columns of ``frame`` as ``schema`` says.

    Extra columns are kept after the canonical ones; missing optional ones are
    added empty.

    Parameters
    ----------
    frame
        A GeoDataFrame holding at least the required fields.
    schema
        The canonical layer.

    Returns
    -------
    geopandas.GeoDataFrame
        A new frame; ``frame`` is not modified.
    """
    out = frame.copy()
    for f in schema.fields:
        if f.name not in out.columns:
            out[f.name] = pd.Series(pd.NA if f.dtype == "int" else None, index=out.index,
                                    dtype=_pandas_dtype(f.dtype))
        elif f.dtype == "str":
            col = out[f.name]
            if (isinstance(col.dtype, pd.StringDtype) and col.dtype == _TEXT_DTYPE
                    and col.notna().any()):
                continue  # already text: the conversion would give it back unchanged
            out[f.name] = pd.Series(_str_values(col), index=out.index,
                                    dtype=object).infer_objects()
        elif f.dtype == "float":
            out[f.name] = pd.to_numeric(out[f.name], errors="coerce").astype("float64")
        elif f.dtype == "int":
            out[f.name] = pd.to_numeric(out[f.name], errors="coerce").round().astype("Int64")
        elif f.dtype == "bool":
            out[f.name] = out[f.name].fillna(False).astype(bool)
    extra = [c for c in out.columns if c not in schema.columns and c != out.geometry.name]
    ordered = [*schema.columns, *extra, out.geometry.name]
    return gpd.GeoDataFrame(out[ordered], geometry=out.geometry.name, crs=out.crs)


#: The dtype pandas gives a column of strings (``str`` in pandas 3, ``object`` before).
_TEXT_DTYPE = pd.Series(["a"]).dtype


def _str_values(col: pd.Series) -> np.ndarray:
    """Return a column as an object array of ``str`` (others through ``str()``) and ``None``."""
    values = col.to_numpy(dtype=object).copy()
    missing = pd.isna(values)
    values[missing] = None
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        other = ~missing & ~np.fromiter((isinstance(v, str) for v in values), dtype=bool,
                                        count=len(values))
        values[other] = [str(v) for v in values[other]]
    return values
