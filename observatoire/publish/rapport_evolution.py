"""The report's section « Évolution depuis <date> »: what changed, and series over time.

Read from the history (:mod:`observatoire.observation.history`), a few columns of
each observation: hectares available by score class, vacancy rate by ZAE, friches
by status and economic land consumed between observations (compared as the
evolution layers are, following the parcels' lineage).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from observatoire.observation import history
from observatoire.observation.evolution import evolution_parcelles
from observatoire.observation.run import Evolution
from observatoire.publish.assets import (
    FRICHE_OTHER_COLOUR,
    FRICHE_STATUTS,
    SCORE_CLASSES,
    french_date,
    number,
)
from observatoire.publish.rapport import _RC, Chart, Section, Table, _svg_uri

#: ZAE drawn in the vacancy chart (the largest by number of units).
MAX_ZAE = 10


def evolution_section(folder: Path, manifest: Mapping[str, str], evolution: Evolution, *,
                      profile: str | None, seuil_bati: float) -> Section:
    """Return the section « Évolution depuis <date> » of the report.

    Parameters
    ----------
    folder
        The history folder.
    manifest
        Date → token of every observation, the current one included (committed or not).
    evolution
        The evolution since the previous observation.
    profile
        Name of the main scoring profile (its classes are charted); ``None``: no chart
        of classes.
    seuil_bati
        Built share from which a parcel counts as built (land consumed).

    Returns
    -------
    Section
        Paragraphs, the time-series charts and the table of figures by observation.
    """
    section = Section(f"Évolution depuis le {french_date(evolution.depuis)}")
    counts = {k: v for k, v in evolution.counts().items() if v}
    section.paragraphs.append(
        f"Comparaison de l'observation du {french_date(evolution.jusqua)} à celle du "
        f"{french_date(evolution.depuis)} (couches evolution_parcelles, evolution_zae, "
        f"evolution_friches et evolution_gisements du GeoPackage ; evolution.csv) : "
        + ("; ".join(f"{label} : {number(v, 2) if isinstance(v, float) else number(v)}"
                     for label, v in counts.items()) if counts else "aucun changement")
        + ".")
    section.paragraphs.append(
        f"Séries sur les {len(manifest)} observations de l'historique "
        f"({', '.join(french_date(dt.date.fromisoformat(d)) for d in manifest)}).")
    with matplotlib.rc_context(_RC):
        figures = _series(folder, manifest, section, profile=profile, seuil_bati=seuil_bati,
                          current=evolution)
    dates = list(figures.index)
    section.tables.append(Table(
        ["Observation", *figures.columns],
        [[french_date(d), *(number(v, 0 if c == "Friches" else 1)
                            for c, v in figures.loc[d].items())] for d in dates],
        [False, *[True] * len(figures.columns)]))
    return section


def _series(folder: Path, manifest: Mapping[str, str], section: Section, *,
            profile: str | None, seuil_bati: float, current: Evolution) -> pd.DataFrame:
    """Draw the charts into ``section``; return the figures by observation."""
    dates = [dt.date.fromisoformat(d) for d in manifest]
    figures = pd.DataFrame(index=pd.Index(dates, name="date"))
    classe = f"classe_{profile}" if profile else None
    parcelles = history.read_table(
        folder, "parcelles", manifest=manifest,
        columns=["idu", "surface_m2", "part_batie", "zae_id", "part_zae",
                 *([classe] if classe else [])])
    if classe and classe in parcelles:
        ha = (parcelles.assign(ha=parcelles["surface_m2"] / 10_000)
              .pivot_table(index="date_observation", columns=classe, values="ha",
                           aggfunc="sum", fill_value=0.0)
              .reindex(index=dates, columns=list(SCORE_CLASSES), fill_value=0.0))
        fig = _bars(ha, {c: SCORE_CLASSES[c][0] for c in SCORE_CLASSES}, "hectares",
                    labels={c: SCORE_CLASSES[c][1] for c in SCORE_CLASSES})
        section.charts.append(Chart("Hectares disponibles par classe de score",
                                    f"Barres empilées : hectares de parcelles par classe du "
                                    f"profil {profile}, à chaque observation", _svg_uri(fig)))
        figures["Hectares A et B"] = ha[[c for c in ("A", "B") if c in ha]].sum(axis=1)
    consumed = _consumed(folder, manifest, parcelles, dates, seuil_bati=seuil_bati,
                         current=current)
    if consumed is not None:
        fig = Figure(figsize=(7.5, 2.6))
        ax = fig.add_subplot()
        ax.bar([french_date(d) for d in dates], consumed.to_numpy(), color="#b2182b")
        ax.set_ylabel("hectares")
        section.charts.append(Chart("Foncier économique consommé",
                                    "Barres : hectares de parcelles des zones d'activités "
                                    "devenues bâties depuis l'observation précédente "
                                    "(parcelles suivies par leur filiation)",
                                    _svg_uri(fig)))
        figures["Foncier consommé en ZAE (ha)"] = consumed
    zae = history.read_table(folder, "zae", manifest=manifest,
                             columns=["zae_id", "zae_nom", "nb_unites", "taux_vacance"])
    if len(zae) and "taux_vacance" in zae and zae["taux_vacance"].notna().any():
        largest = (zae.groupby("zae_id")["nb_unites"].max().sort_values(ascending=False)
                   .index[:MAX_ZAE] if "nb_unites" in zae else zae["zae_id"].unique()[:MAX_ZAE])
        rates = (zae[zae["zae_id"].isin(largest)]
                 .pivot_table(index="date_observation", columns="zae_id",
                              values="taux_vacance", aggfunc="first").reindex(dates))
        names = zae.drop_duplicates("zae_id", keep="last").set_index("zae_id")
        fig = Figure(figsize=(7.5, 2.8))
        ax = fig.add_subplot()
        for zae_id in rates.columns:
            label = names["zae_nom"].get(zae_id) if "zae_nom" in names else None
            ax.plot([french_date(d) for d in dates], rates[zae_id].to_numpy() * 100,
                    marker="o", label=str(label or zae_id))
        ax.set_ylabel("taux de vacance (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        section.charts.append(Chart("Taux de vacance par zone d'activités",
                                    "Lignes : taux de vacance des unités foncières de chaque "
                                    "zone, à chaque observation", _svg_uri(fig)))
        weights = zae["nb_unites"] if "nb_unites" in zae else 1
        vacant = (zae["taux_vacance"] * weights).groupby(zae["date_observation"]).sum()
        units = pd.Series(weights, index=zae.index).groupby(zae["date_observation"]).sum()
        figures["Taux de vacance des ZAE (%)"] = (vacant / units * 100).reindex(dates)
    friches = history.read_table(folder, "friches", manifest=manifest,
                                 columns=["site_id", "site_statut", "dans_territoire"])
    if len(friches) and "site_statut" in friches:
        if "dans_territoire" in friches and friches["dans_territoire"].fillna(False).any():
            friches = friches[friches["dans_territoire"].fillna(False).astype(bool)]
        status = friches["site_statut"].fillna("non renseigné")
        count = (pd.crosstab(friches["date_observation"], status)
                 .reindex(index=dates, fill_value=0))
        colours = {s: FRICHE_STATUTS.get(s, (FRICHE_OTHER_COLOUR, ""))[0] for s in count}
        fig = _bars(count, colours, "nombre de friches")
        fig.axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
        section.charts.append(Chart("Friches par statut",
                                    "Barres empilées : nombre de friches par statut, à chaque "
                                    "observation", _svg_uri(fig)))
        figures["Friches"] = count.sum(axis=1)
    return figures


def _consumed(folder: Path, manifest: Mapping[str, str], parcelles: pd.DataFrame,
              dates: list[dt.date], *, seuil_bati: float,
              current: Evolution) -> pd.Series | None:
    """Hectares of ZAE parcels built since the observation before, by date.

    Each pair of successive observations is compared as the evolution layers are
    (:func:`~observatoire.observation.history.read_changes`, then the parcels'
    lineage): a parcel renumbered, split or merged is compared with its
    predecessors, so a parcel already built and renumbered is not land consumed.
    The figure is the evolution's ``surface_consommee_ha`` summed over the ZAE; the
    pair of ``current`` is not computed again.
    """
    if not {"part_batie", "zae_id", "idu"} <= set(parcelles.columns) or len(dates) < 2:
        return None
    out = pd.Series(np.nan, index=pd.Index(dates))
    for before, after in zip(dates, dates[1:], strict=False):
        if (before, after) == (current.depuis, current.jusqua):
            changes = current.layers["evolution_parcelles"]
        else:
            old, new = history.read_changes(folder, before, after, manifest=manifest)
            changes = evolution_parcelles(old, new, seuil_bati=seuil_bati)
        out[after] = consumed_ha(changes)
    return out


def consumed_ha(changes: pd.DataFrame) -> float:
    """Hectares of ZAE land newly built in an ``evolution_parcelles`` table (part in the ZAE)."""
    built = changes[changes["nouvellement_batie"].fillna(False).astype(bool).to_numpy()
                    & changes["zae_id"].notna().to_numpy()]
    share = built["part_zae"].fillna(1.0) if "part_zae" in built else 1.0
    return float((built["surface_consommee_m2"] * share).sum() / 10_000)


def _bars(table: pd.DataFrame, colours: Mapping[str, str], unit: str, *,
          labels: Mapping[str, str] | None = None) -> Figure:
    """Stacked bars: one bar per observation (rows), one colour per column."""
    fig = Figure(figsize=(7.5, 2.8))
    ax = fig.add_subplot()
    x = [french_date(d) for d in table.index]
    bottom = np.zeros(len(table))
    for column in table.columns:
        values = table[column].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, color=colours.get(column, FRICHE_OTHER_COLOUR),
               label=(labels or {}).get(column, str(column)))
        bottom += values
    ax.set_ylabel(unit)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig
