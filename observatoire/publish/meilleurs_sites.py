"""The table of the best candidate sites, ``meilleurs_sites.csv``: French headers, rounded values.

The analysis tabulates the candidate sites (:func:`observatoire.analysis.units.meilleurs_sites`)
with its own column names and full precision; the published CSV is read by people,
in a spreadsheet set to French: each header says what the column holds and in
which unit, scores are rounded to a tenth, areas to the m² (and the hundredth of a
hectare), coordinates to the decimetre (and the millionth of a degree, about 10 cm).
"""

from __future__ import annotations

import pandas as pd


def headers(*, profile: str, crs: str) -> dict[str, str]:
    """Return the French header of each column of the analysis' table.

    Parameters
    ----------
    profile
        Name of the first scoring profile (whose scores and class the table holds).
    crs
        The territory's CRS (``EPSG:2154``): the unit of ``x`` and ``y``.

    Returns
    -------
    dict
        Column of :func:`observatoire.analysis.units.meilleurs_sites` → header.
    """
    return {
        "rang": "Rang",
        "gisement_id": "Gisement (identifiant)",
        "surface_m2": "Surface (m²)",
        "surface_ha": "Surface (ha)",
        "nb_parcelles": "Nombre de parcelles",
        "idus": "Parcelles (IDU)",
        "nb_proprietaires": "Nombre de propriétaires",
        "classe": f"Classe {profile} (A à E)",
        "score_moyen": f"Score moyen {profile} (/100)",
        "score_min": f"Score minimal {profile} (/100)",
        "zae_id": "Zone d'activités (identifiant)",
        "friche_id": "Friche (identifiant)",
        "communes": "Communes (code INSEE)",
        "x": f"X ({crs}, m)",
        "y": f"Y ({crs}, m)",
        "lon": "Longitude (WGS 84, °)",
        "lat": "Latitude (WGS 84, °)",
    }


#: Decimals kept for each rounded column (0: a whole number).
DECIMALS = {"surface_m2": 0, "surface_ha": 2, "score_moyen": 1, "score_min": 1,
            "x": 1, "y": 1, "lon": 6, "lat": 6}


def best_sites_table(table: pd.DataFrame, *, profile: str, crs: str) -> pd.DataFrame:
    """Return the table of the best sites as published: French headers, rounded values.

    Parameters
    ----------
    table
        :func:`observatoire.analysis.units.meilleurs_sites` (not modified).
    profile, crs
        As for :func:`headers`.

    Returns
    -------
    pandas.DataFrame
        The same rows and columns in the same order, renamed by :func:`headers`
        and rounded by :data:`DECIMALS` (whole m² as integers); a column without
        a French header keeps its name.
    """
    out = table.copy()
    for column, decimals in DECIMALS.items():
        if column in out.columns:
            values = pd.to_numeric(out[column], errors="coerce").round(decimals)
            out[column] = values.astype("Int64") if decimals == 0 else values
    return out.rename(columns=headers(profile=profile, crs=crs))

