"""Report of the observatory: ``rapport.html``, in French, readable on screen and printable.

Key figures, charts (matplotlib, embedded as base64 SVG images: no external
file), the best candidate sites, friches by status and type, ZAE vacancy,
score distribution, sources and reliability. The page is rendered by Jinja2
with autoescaping: every value is HTML-escaped. Charts are drawn with
matplotlib's object API on the Agg canvas (no global state, no display), with
mathtext off so that a ``$`` in a name stays a dollar sign, and text turned into
paths inside an ``<img>``: a name never becomes markup. Owners are counted by
category; no natural person is ever named.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from jinja2 import Environment, select_autoescape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

from observatoire import __version__
from observatoire.analysis.scoring import UNDETERMINED
from observatoire.communes import commune_names
from observatoire.config import Territory
from observatoire.outputs import StagedFile
from observatoire.publish.assets import (
    EXCLUDED_COLOUR,
    EXCLUDED_LABEL,
    FRICHE_OTHER_COLOUR,
    FRICHE_STATUTS,
    SCORE_CLASSES,
    ProfileTexts,
    ScoringProfile,
    french_date,
    hectares,
    number,
    percent,
    profile_texts,
    scoring_profiles,
    surface_m2,
    template_text,
    vacancy_colour,
)
from observatoire.publish.atlas import (
    ATLAS_FOLDER,
    MapDrawer,
    cover_sheet,
    north_angles,
    png_uri,
    sheet_names,
)
from observatoire.readers.lineage import SourceReport, relative_name
from observatoire.readers.provenance import UNKNOWN_PRODUCER, credits

log = logging.getLogger(__name__)

#: Number of candidate sites listed in the report.
TOP_SITES = 15

_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "observatoire",
    "svg.fonttype": "path",
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass
class Chart:
    """A chart of the report: title, alternative text and SVG image as a data URI."""

    title: str
    alt: str
    uri: str


@dataclass
class Table:
    """A table of the report: French column headers and rows of display text."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)


@dataclass
class Section:
    """A section of the report: title, paragraphs, charts and tables; a note when empty."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    missing: str | None = None


@dataclass
class Overview:
    """The report's opening: the territory on the map's background, and the atlas cover.

    ``territory`` and ``cover`` are PNG images as data URIs (``None`` when there is
    nothing to draw); ``legend`` lists the territory map's symbols (kind, colour,
    label), ``vacancy`` the cover map's classes (colour, label); ``columns`` and
    ``rows`` are the atlas cover's table of zones, ``links`` the sheet of each zone
    (``None`` when the atlas was not produced).
    """

    territory: str | None = None
    legend: list[tuple[str, str, str]] = field(default_factory=list)
    cover: str | None = None
    vacancy: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    links: list[str] | None = None


def stage_report(layers: Mapping[str, gpd.GeoDataFrame], reports: Sequence[SourceReport],
                 territory: Territory, *, communes: Mapping[str, str] | None = None,
                 background: Mapping[str, gpd.GeoDataFrame] | None = None,
                 evolution: Section | None = None) -> StagedFile:
    """Write ``rapport.html`` to a staged file next to the GeoPackage.

    Parameters
    ----------
    layers
        The observatory's layers by name; absent layers and columns leave their
        section with a note instead of figures.
    reports
        What reading each source did (``sources`` table).
    territory
        The territory: name, communes, output folder, profiles, observation date.
    communes
        INSEE code → commune name (default: the table of communes, then
        ``[options.noms_communes]``).
    background
        The map's background (:mod:`observatoire.publish.fond`): ``limites_communes``
        and ``routes``, drawn under the territory map that opens the report.
    evolution
        The section « Évolution depuis <date> »
        (:func:`observatoire.publish.rapport_evolution.evolution_section`), after the
        vacancy of the ZAE; ``None`` for a first observation.

    Returns
    -------
    StagedFile
        ``rapport.html`` in the output folder.
    """
    from observatoire.checks import missing_source_warnings, source_warnings

    staged = StagedFile(territory.output_dir / "rapport.html")
    page = render_report(
        layers, reports,
        territory_name=territory.name,
        communes=list(territory.communes),
        date=french_date(territory.options.date_observation or dt.date.today()),
        profiles=profile_texts(territory),
        base=territory.path.parent,
        warnings=[*missing_source_warnings(territory), *source_warnings(reports, territory)],
        names=communes if communes is not None else commune_names(
            territory.communes, overrides=territory.options.noms_communes),
        background=background, crs=territory.crs,
        atlas=f"{ATLAS_FOLDER}/" if territory.options.atlas else None,
        evolution=evolution,
    )
    staged.tmp.write_text(page, encoding="utf-8")
    return staged


def render_report(layers: Mapping[str, gpd.GeoDataFrame], reports: Sequence[SourceReport], *,
                  territory_name: str, communes: Sequence[str], date: str,
                  profiles: ProfileTexts | None = None, base: Path | None = None,
                  warnings: Sequence[str] = (),
                  names: Mapping[str, str] | None = None,
                  background: Mapping[str, gpd.GeoDataFrame] | None = None,
                  crs: Any = None, atlas: str | None = None,
                  evolution: Section | None = None) -> str:
    """Return the HTML of the report.

    Parameters
    ----------
    layers, reports
        As for :func:`stage_report`.
    territory_name, communes, date
        Shown in the header (the date as written: :func:`stage_report` gives the
        observation date in French, « 1er janvier 2026 »).
    profiles
        Order and labels of the scoring profiles; the first is the main one.
    base
        Folder that source paths are shown relative to (file names otherwise).
    warnings
        What the results lose (key sources missing, sources empty for the
        territory: :mod:`observatoire.checks`), listed with the sources.
    names
        INSEE code → commune name (default: the table of communes); a commune
        whose name is unknown is shown by its code, as are the friches' names.
    background
        As for :func:`stage_report`; without it the territory map has no commune
        outlines nor roads.
    crs
        The territory CRS (default: the parcels'), for the maps' north arrow.
    atlas
        Folder of the atlas sheets, relative to the report (``atlas/``): the table of
        zones links to them; ``None`` when the atlas is not produced.
    evolution
        As for :func:`stage_report`.

    Returns
    -------
    str
        A complete, self-contained HTML document.
    """
    parcelles = layers.get("parcelles")
    found = scoring_profiles(parcelles.columns, profiles) if parcelles is not None else []
    if names is None:
        codes = [*communes, *(parcelles["code_insee"].dropna().astype(str).unique()
                              if parcelles is not None and "code_insee" in parcelles else [])]
        names = commune_names(codes)
    names = {**_commune_names(layers), **names}
    overview = _overview(layers, background or {}, names,
                         crs if crs is not None else getattr(parcelles, "crs", None), atlas)
    with matplotlib.rc_context(_RC):
        sections = [
            _available_land(parcelles, found, names),
            _best_sites(layers.get("gisements")),
            _friches(layers.get("friches")),
            _mutabilite(layers.get("friches"), layers.get("gisements")),
            _vacancy(layers.get("zae"), cover=bool(overview.rows)),
            *([evolution] if evolution is not None else []),
            _scores(parcelles, found),
            _producers(reports, base),
            _sources(reports, parcelles, found, base, profiles or ProfileTexts(), warnings),
        ]
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(template_text("rapport.html"))
    return template.render(
        title=f"Observatoire du foncier économique — {territory_name}",
        territory=territory_name,
        communes=", ".join(f"{names.get(c, c)} ({c})" if names.get(c) else c for c in communes),
        date=date,
        produced=french_date(dt.date.today()),
        version=__version__,
        figures=_key_figures(layers, found, profiles or ProfileTexts(), reports),
        overview=overview,
        sections=sections,
        css=template_text("rapport.css"),
    )


# --------------------------------------------------------------------------- formatting


def _svg_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _text(value: Any) -> str:
    return "—" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


#: A column of a table: (column, French header, formatter, numeric).
_ColumnSpec = tuple[str, str, Callable[[Any], str], bool]


def _commune_names(layers: Mapping[str, gpd.GeoDataFrame]) -> dict[str, str]:
    names: dict[str, str] = {}
    for name in ("friches", "friches_surfaces"):
        frame = layers.get(name)
        if frame is not None and {"comm_insee", "comm_nom"} <= set(frame.columns):
            pairs = frame[["comm_insee", "comm_nom"]].dropna().drop_duplicates("comm_insee")
            names.update(dict(zip(pairs["comm_insee"].astype(str),
                                  pairs["comm_nom"].astype(str).str.title(), strict=True)))
    return names


# --------------------------------------------------------------------------- overview


def _overview(layers: Mapping[str, gpd.GeoDataFrame], background: Mapping[str, gpd.GeoDataFrame],
              names: Mapping[str, str], crs: Any, atlas: str | None) -> Overview:
    """Draw the territory map and the atlas cover (map and table of zones)."""
    friches = layers.get("friches")
    drawn = {
        "zae": layers.get("zae"), "gisements": layers.get("gisements"),
        # Only the territory's own friches: the nearby ones are listed, not mapped.
        "friches": split_friches(friches)[0] if friches is not None else None,
        "routes": background.get("routes"),
        "limites_communes": background.get("limites_communes"),
    }
    drawer = MapDrawer({k: v for k, v in drawn.items() if v is not None}, crs=crs)
    if not drawer.layers:
        return Overview()
    centre = shapely.points(np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in [
        shapely.total_bounds(next(iter(drawer.layers.values())).geoms)]]))
    angle = float(north_angles(centre, crs)[0]) if crs is not None else 0.0
    overview = Overview(territory=png_uri(drawer.territory_map(angle=angle, names=names)),
                        legend=drawer.territory_legend())
    zae = layers.get("zae")
    if zae is None or not len(zae) or "zae_id" not in zae:
        return overview
    zones = zae.sort_values("zae_id", kind="stable").reset_index(drop=True)
    files = sheet_names(zones["zae_id"])
    cover = cover_sheet(zones, np.asarray(zones.geometry.values), files, drawer, names,
                        angle=angle)
    overview.cover = png_uri(cover.map_png)
    overview.vacancy = cover.vacancy
    overview.columns, overview.rows = cover.columns, cover.rows
    if atlas is not None:
        overview.links = [f"{atlas}{f}.html" for f in files]
    return overview


# --------------------------------------------------------------------------- figures


def _key_figures(layers: Mapping[str, gpd.GeoDataFrame], profiles: Sequence[ScoringProfile],
                 texts: ProfileTexts, reports: Sequence[SourceReport]
                 ) -> list[tuple[str, str, str]]:
    """``(label, value, detail)`` of the key figures."""
    out: list[tuple[str, str, str]] = []
    parcelles = layers.get("parcelles")
    if parcelles is not None:
        area = surface_m2(parcelles)
        out.append(("Parcelles", number(len(parcelles)), f"{hectares(area.sum())} au total"))
        main = profiles[0] if profiles else None
        if main and main.score:
            ok = parcelles[main.score].notna()
            good = parcelles[main.classe].isin(["A", "B"]) if main.classe else ok & False
            unsure = (parcelles[main.classe] == UNDETERMINED).to_numpy(dtype=bool) \
                if main.classe else np.zeros(len(parcelles), dtype=bool)
            detail = (f"{number(int(ok.sum()))} parcelles non exclues, dont "
                      f"{hectares(area[good].sum())} en classes A ou B")
            if unsure.any():
                partial = bool((ok.to_numpy(dtype=bool) & ~unsure).any())
                detail += (f" ; {hectares(area[unsure].sum())} de classe non déterminée "
                           f"({_why_undetermined(main, texts, reports, partial)}), comptés "
                           f"dans aucune classe")
            out.append((f"Parcelles évaluées ({main.label})", hectares(area[ok].sum()), detail))
    gisements = layers.get("gisements")
    if gisements is not None:
        area = surface_m2(gisements)
        out.append(("Gisements fonciers", number(len(gisements)),
                    f"{hectares(area.sum())}, le plus grand : {hectares(area.max())}"
                    if len(gisements) else "aucun site candidat"))
    friches = layers.get("friches")
    if friches is not None:
        ours, nearby = split_friches(friches)
        details = []
        if "site_statut" in ours.columns:
            n = int((ours["site_statut"] == "friche sans projet").sum())
            details.append(f"dont {number(n)} sans projet")
        if "zae_id" in ours.columns:
            details.append(f"{number(int(ours['zae_id'].notna().sum()))} en zone d'activités")
        out.append(("Friches recensées", number(len(ours)), " ; ".join(details)))
        if "dans_territoire" in friches.columns:
            out.append(("Friches à proximité", number(len(nearby)),
                        "à moins de 5 km, hors du territoire : contexte, non comptées"))
    zae = layers.get("zae")
    if zae is not None:
        detail = ""
        if {"nb_unites", "nb_unites_vacantes"} <= set(zae.columns):
            units = pd.to_numeric(zae["nb_unites"], errors="coerce").sum()
            vacant = pd.to_numeric(zae["nb_unites_vacantes"], errors="coerce").sum()
            detail = (f"vacance : {percent(vacant / units) if units else '—'} des unités "
                      f"foncières ({number(vacant)} sur {number(units)})")
        if "surface_disponible_m2" in zae.columns:
            free = pd.to_numeric(zae["surface_disponible_m2"], errors="coerce").sum()
            detail += f" ; {hectares(free)} disponibles"
        out.append(("Zones d'activités", number(len(zae)), detail.strip(" ;")))
    return out


def _why_undetermined(main: ScoringProfile, texts: ProfileTexts,
                      reports: Sequence[SourceReport], partial: bool) -> str:
    """Why parcels of the main profile have no class: the threshold, the data missing.

    ``partial``: other parcels of the profile have a class, so these lack data that
    the sources give elsewhere (a parcel off the zoning or the DEM).
    """
    threshold = texts.fiabilite_min.get(main.name)
    reasons = []
    present = {r.kind for r in reports if r.in_territory}
    if "zonage" in present:
        present.add("zae")  # the ZAE are derived from the zoning when not given
    prefix = f"contrib_{main.name}_"
    missing = [texts.labels.get(col, col[len(prefix):])
               for col, kind in texts.sources.items()
               if col.startswith(prefix) and kind and kind not in present]
    if missing:
        reasons.append(f"critères sans donnée : {', '.join(missing)}")
    if partial or not missing:
        reasons.append("parcelles hors de l'emprise d'une source fournie (zonage, MNT…)")
    head = (f"fiabilité sous {percent(threshold)}" if threshold is not None
            else "fiabilité insuffisante")
    return f"{head} ; {' ; '.join(reasons)}"


def _available_land(parcelles: gpd.GeoDataFrame | None, profiles: Sequence[ScoringProfile],
                    names: Mapping[str, str]) -> Section:
    section = Section("Surfaces disponibles par classe de score et par commune")
    if parcelles is None or not profiles or not profiles[0].classe:
        section.missing = ("Les parcelles ne portent pas de score : l'analyse n'a pas été "
                           "faite pour ce territoire.")
        return section
    main = profiles[0]
    section.paragraphs.append(
        f"Surface des parcelles non exclues par le profil « {main.label} », par classe de "
        "score (A : très favorable … E : défavorable) ; les parcelles notées sur trop peu "
        "de critères (classe non déterminée) et les parcelles exclues (zones naturelles, "
        "risques, pente…) sont comptées à part.")
    area = surface_m2(parcelles) / 10_000
    commune = (parcelles["code_insee"].astype(str) if "code_insee" in parcelles.columns
               else pd.Series("territoire", index=parcelles.index))
    classes = parcelles[main.classe].astype(object).where(parcelles[main.classe].notna(),
                                                          EXCLUDED_LABEL)
    table = (pd.DataFrame({"commune": commune, "classe": classes, "ha": area})
             .pivot_table(index="commune", columns="classe", values="ha", aggfunc="sum",
                          fill_value=0.0))
    order = [c for c in [*SCORE_CLASSES, EXCLUDED_LABEL] if c in table.columns]
    table = table.reindex(columns=order)
    labels = [names.get(c, c) for c in table.index]

    fig = Figure(figsize=(7.5, 0.5 + 0.45 * max(len(table), 2)))
    ax = fig.add_subplot()
    left = np.zeros(len(table))
    for cls in order:
        colour = SCORE_CLASSES[cls][0] if cls in SCORE_CLASSES else EXCLUDED_COLOUR
        label = SCORE_CLASSES[cls][1] if cls in SCORE_CLASSES else EXCLUDED_LABEL
        ax.barh(labels, table[cls].to_numpy(), left=left, color=colour, label=label,
                edgecolor="white", linewidth=0.5)
        left += table[cls].to_numpy()
    ax.set_xlabel("hectares")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    section.charts.append(Chart("Hectares par classe de score et par commune",
                                "Barres empilées : hectares de parcelles par classe de score, "
                                "pour chaque commune", _svg_uri(fig)))
    rows = [[label, *(number(table.loc[idx, c], 1) for c in order),
             number(table.loc[idx].sum(), 1)] for idx, label in zip(table.index, labels,
                                                                    strict=True)]
    rows.append(["Total", *(number(table[c].sum(), 1) for c in order),
                 number(table.to_numpy().sum(), 1)])
    section.tables.append(Table(["Commune", *[f"{c} (ha)" for c in order], "Total (ha)"], rows,
                                [False, *[True] * (len(order) + 1)]))
    return section


def _best_sites(gisements: gpd.GeoDataFrame | None) -> Section:
    section = Section("Meilleurs gisements fonciers")
    if gisements is None or len(gisements) == 0:
        section.missing = "Aucun gisement foncier (site candidat) n'a été identifié."
        return section
    frame = gisements.copy()
    frame["_surface"] = surface_m2(frame)
    keys = [c for c in ("score_moyen", "_surface") if c in frame.columns]
    frame = frame.sort_values(keys, ascending=False, kind="stable").head(TOP_SITES)
    section.paragraphs.append(
        f"Les {min(TOP_SITES, len(gisements))} sites candidats les mieux notés (score moyen des "
        f"parcelles), sur {number(len(gisements))}.")
    spec: list[_ColumnSpec] = [
            ("gisement_id", "Gisement", _text, False), ("_surface", "Surface", hectares, True),
            ("nb_parcelles", "Parcelles", number, True),
            ("nb_proprietaires", "Propriétaires", number, True),
            ("score_moyen", "Score moyen", lambda v: number(v, 1), True),
            ("score_min", "Score minimal", lambda v: number(v, 1), True),
            ("zae_id", "Zone d'activités", _text, False), ("friche_id", "Friche", _text, False)]
    spec = [s for s in spec if s[0] in frame.columns]
    rows = [[fmt(v) for (_, _, fmt, _), v in zip(spec, values, strict=True)]
            for values in frame[[s[0] for s in spec]].itertuples(index=False)]
    section.tables.append(Table([s[1] for s in spec], rows, [s[3] for s in spec]))
    return section


def split_friches(friches: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the friches of the territory and those nearby (``dans_territoire``).

    The friches are read with a margin of 5 km: only those of the territory count.
    A layer without ``dans_territoire`` (no analysis) is taken as the territory's.
    """
    if "dans_territoire" not in friches.columns:
        return friches, friches.iloc[:0]
    inside = friches["dans_territoire"].fillna(False).astype(bool).to_numpy()
    return friches[inside], friches[~inside]


def _friches(friches: gpd.GeoDataFrame | None) -> Section:
    section = Section("Friches par statut et par type")
    if friches is None or len(friches) == 0:
        section.missing = "Aucune friche n'est recensée pour ce territoire."
        return section
    friches, nearby = split_friches(friches)
    if "dans_territoire" in nearby.columns:
        _friches_context(section, friches, nearby)
    if len(friches) == 0:
        section.missing = "Aucune friche n'est recensée dans le territoire."
        _nearby_table(section, nearby)
        return section
    status = (friches["site_statut"] if "site_statut" in friches.columns
              else pd.Series(None, index=friches.index)).fillna("non renseigné")
    kind = (friches["site_type"] if "site_type" in friches.columns
            else pd.Series(None, index=friches.index)).fillna("non renseigné")
    counts = status.value_counts()
    fig = Figure(figsize=(7.5, 0.6 + 0.4 * len(counts)))
    ax = fig.add_subplot()
    colours = [FRICHE_STATUTS.get(s, (FRICHE_OTHER_COLOUR, ""))[0] for s in counts.index]
    ax.barh([str(s) for s in counts.index], counts.to_numpy(), color=colours)
    ax.invert_yaxis()
    ax.set_xlabel("nombre de friches")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    section.charts.append(Chart("Friches par statut", "Barres : nombre de friches par statut",
                                _svg_uri(fig)))
    cross = pd.crosstab(kind, status)
    section.tables.append(Table(
        ["Type", *[str(c) for c in cross.columns], "Total"],
        [[str(idx), *(number(v) for v in row), number(row.sum())]
         for idx, row in zip(cross.index, cross.to_numpy(), strict=True)],
        [False, *[True] * (len(cross.columns) + 1)]))
    _nearby_table(section, nearby)
    return section


def _friches_context(section: Section, ours: pd.DataFrame, nearby: pd.DataFrame) -> None:
    """Add paragraphs on the friches of the territory, their parcels, and those nearby."""
    if len(ours):
        text = (f"{number(len(ours))} friche(s) dans le territoire : celles dont la commune est "
                f"l'une des siennes (ou, commune inconnue, rattachées à ses parcelles)")
        if "zae_id" in ours.columns:
            text += (f", dont {number(int(ours['zae_id'].notna().sum()))} dans une zone "
                     f"d'activités")
        section.paragraphs.append(text + ".")
    if "idu_absents" in ours.columns:
        both = pd.concat([ours, nearby])
        stale = both["idu_absents"].dropna().astype(str)
        if len(stale):
            ids = int((stale.str.count(r"\|") + 1).sum())
            geometry = int((both.loc[stale.index, "appariement"] == "géométrie").sum()) \
                if "appariement" in both.columns else 0
            section.paragraphs.append(
                f"{number(ids)} identifiant(s) de parcelle listé(s) par {number(len(stale))} "
                f"friche(s) n'existent pas dans le cadastre du territoire (parcelles "
                f"renumérotées depuis l'inventaire) ; {number(geometry)} de ces friches sont "
                f"rattachées aux parcelles sous leur point ou leur périmètre (champ "
                f"« appariement » : géométrie), la liste est dans le champ « idu_absents ».")
    if len(nearby):
        section.paragraphs.append(
            f"{number(len(nearby))} autre(s) friche(s) à proximité, à moins de 5 km mais hors "
            f"du territoire, sont montrées pour le contexte et ne sont pas comptées "
            f"(dernier tableau).")


def _nearby_table(section: Section, nearby: pd.DataFrame) -> None:
    """Add the table of the friches nearby, by commune."""
    if len(nearby) == 0:
        return
    commune = pd.Series(None, index=nearby.index, dtype=object)
    for column in ("comm_insee", "comm_nom"):  # the name when known, else the code
        if column in nearby.columns:
            commune = nearby[column].astype(object).where(nearby[column].notna(), commune)
    commune = commune.fillna("non renseignée")
    no_project = (nearby["site_statut"] == "friche sans projet") if "site_statut" in \
        nearby.columns else pd.Series(False, index=nearby.index)
    table = pd.DataFrame({"commune": commune.astype(str), "n": 1,
                          "sans": no_project.astype(int)}).groupby("commune").sum()
    table = table.sort_values("n", ascending=False, kind="stable")
    section.tables.append(Table(
        ["Friches à proximité (hors territoire) : commune", "Friches", "Sans projet"],
        [[str(c), number(r.n), number(r.sans)] for c, r in table.iterrows()],
        [False, True, True]))


#: Mutafriches usages: column suffix and short French label, in the reference's order.
MUTABILITE_USAGES = (("residentiel", "Résidentiel"), ("equipements", "Équipements"),
                     ("culture", "Culture"), ("tertiaire", "Tertiaire"),
                     ("industrie", "Industrie"), ("renaturation", "Renaturation"),
                     ("photovoltaique", "Photovoltaïque"))
#: Sites listed in the mutabilité table of the report, per layer.
TOP_MUTABILITE = 20


def _mutabilite(friches: gpd.GeoDataFrame | None,
                gisements: gpd.GeoDataFrame | None) -> Section:
    """Report the mutabilité (Mutafriches) of friches and sites beside the observatory."""
    section = Section("Mutabilité des friches et des gisements (Mutafriches, ADEME)")
    parts = []
    for label, frame, key, name in (("friche", friches, "site_id", "site_nom"),
                                    ("gisement", gisements, "gisement_id", None)):
        if frame is not None and len(frame) and "mutabilite_industrie" in frame.columns:
            f = pd.DataFrame(frame.drop(columns=frame.geometry.name))
            f["_site"] = label
            f["_id"] = f[key].astype(str)
            f["_nom"] = f[name].astype(object) if name and name in f else None
            parts.append(f)
    if not parts:
        section.missing = ("La mutabilité n'a pas été calculée (aucune friche ni aucun gisement, "
                           "ou options.mutabilite.actif = false).")
        return section
    frame = pd.concat(parts, ignore_index=True)
    version = frame["mutabilite_version"].dropna().iloc[0] \
        if frame["mutabilite_version"].notna().any() else "—"
    section.paragraphs.append(
        f"Indice de mutabilité de l'outil Mutafriches de l'ADEME (algorithme {version}), calculé "
        "pour chaque friche et chaque gisement à partir des couches de l'observatoire : pour "
        "chacun des sept usages, de 0 à 100 (Excellent à partir de 70, Très bon 60, Bon 50, "
        "Moyen 40, Faible en dessous), avec une fiabilité sur 10 qui dit quelle part des 28 "
        "critères était connue. Un critère inconnu n'est jamais compté comme défavorable : il "
        "abaisse la fiabilité. Le score industriel de l'observatoire est donné à côté ; "
        "« divergent » signale un site que l'un juge favorable à l'industrie (classe A ou B ; "
        "Excellent ou Très bon) et l'autre non (Faible ou Moyen ; classe D, E ou exclu). Le "
        "détail de chaque critère est dans la table mutabilite_criteres du GeoPackage.")
    best = frame["mutabilite_meilleur_usage"].astype(object)
    labels = dict(MUTABILITE_USAGES)
    counts = pd.crosstab(best.map(labels).fillna("—"), frame["_site"])
    counts = counts.reindex([lab for _, lab in MUTABILITE_USAGES if lab in counts.index])
    section.tables.append(Table(
        ["Meilleur usage selon Mutafriches", *[f"{c}s" for c in counts.columns]],
        [[str(idx), *(number(v) for v in row)]
         for idx, row in zip(counts.index, counts.to_numpy(), strict=True)],
        [False, *[True] * len(counts.columns)]))
    avis = frame.get("mutabilite_avis_industrie", pd.Series(None, index=frame.index))
    divergent = frame[avis.eq("divergent")]
    section.paragraphs.append(
        f"Avis sur l'industrie : {number(int(avis.eq('concordant').sum()))} sites concordants, "
        f"{number(len(divergent))} divergents, {number(int(avis.isna().sum()))} sans score de "
        "l'observatoire (friches hors des parcelles du territoire).")
    for _, row in divergent.head(TOP_MUTABILITE).iterrows():
        name = f" « {row['_nom']} »" if isinstance(row["_nom"], str) else ""
        section.paragraphs.append(f"{row['_site'].capitalize()} {row['_id']}{name} — "
                                  f"{_text(row.get('mutabilite_ecart_industrie'))}.")
    shown = pd.concat([g.sort_values(["mutabilite_score_observatoire", "_id"],
                                     ascending=[False, True], kind="stable",
                                     na_position="last").head(TOP_MUTABILITE)
                       for _, g in frame.groupby("_site", sort=True)])
    header = ["Site", "Identifiant", *[lab for _, lab in MUTABILITE_USAGES], "Meilleur usage",
              "Fiabilité /10", "Score obs.", "Avis industrie"]
    rows = []
    for _, row in shown.iterrows():
        rows.append([row["_site"], row["_id"],
                     *(number(row.get(f"mutabilite_{u}"), 1) for u, _ in MUTABILITE_USAGES),
                     labels.get(row["mutabilite_meilleur_usage"], "—"),
                     number(row["mutabilite_fiabilite"], 1),
                     number(row.get("mutabilite_score_observatoire"), 1),
                     _text(row.get("mutabilite_avis_industrie"))])
    section.tables.append(Table(header, rows,
                                [False, False, *[True] * 7, False, True, True, False]))
    return section

def _vacancy(zae: gpd.GeoDataFrame | None, *, cover: bool = False) -> Section:
    """Vacancy of the zones: chart and table (without the atlas cover's columns if ``cover``)."""
    section = Section("Vacance des zones d'activités économiques")
    if zae is None or len(zae) == 0:
        section.missing = "Aucune zone d'activités économiques n'est connue pour ce territoire."
        return section
    if "taux_vacance" not in zae.columns:
        section.missing = ("L'inventaire des zones d'activités (vacance des unités foncières) "
                           "n'a pas été calculé.")
        return section
    frame = zae.copy()
    name = (frame["zae_nom"] if "zae_nom" in frame.columns else frame["zae_id"]).astype(str)
    frame["_nom"] = name.where(frame.get("zae_nom", name).notna(), frame["zae_id"].astype(str))
    frame["_taux"] = pd.to_numeric(frame["taux_vacance"], errors="coerce")
    frame = frame.sort_values("_taux", ascending=False, kind="stable")
    section.paragraphs.append(
        "Part des unités foncières vacantes dans chaque zone (inventaire des zones "
        "d'activités économiques prévu par la loi Climat et résilience).")
    shown = frame.head(30)
    fig = Figure(figsize=(7.5, 0.6 + 0.35 * len(shown)))
    ax = fig.add_subplot()
    rates = shown["_taux"].fillna(0).to_numpy() * 100
    colours = [vacancy_colour(v) for v in shown["_taux"]]
    ax.barh([_short(n) for n in shown["_nom"]], rates, color=colours, edgecolor="#6a3d9a",
            linewidth=0.5)
    ax.invert_yaxis()
    ax.set_xlabel("taux de vacance (% des unités foncières)")
    ax.set_xlim(0, max(100.0, float(rates.max()) if len(rates) else 100.0))
    section.charts.append(Chart("Taux de vacance par zone",
                                "Barres : taux de vacance des unités foncières de chaque zone",
                                _svg_uri(fig)))
    spec: list[_ColumnSpec] = [
            ("_nom", "Zone", _text, False), ("nb_unites", "Unités", number, True),
            ("nb_unites_vacantes", "Vacantes", number, True), ("_taux", "Vacance", percent, True),
            ("taux_vacance_surface", "Vacance (surface)", percent, True),
            ("surface_disponible_m2", "Disponible", hectares, True),
            ("plus_grande_surface_dispo_m2", "Plus grand lot", hectares, True),
            ("nb_friches", "Friches", number, True),
            ("surface_friches_m2", "Surface des friches", hectares, True),
            ("regle_vacance", "Règle appliquée", _text, False)]
    if cover:  # the report's atlas cover already lists the zones' figures
        spec = [s for s in spec if s[0] in ("_nom", "nb_friches", "surface_friches_m2",
                                             "regle_vacance")]
    spec = [s for s in spec if s[0] in frame.columns]
    rows = [[fmt(v) for (_, _, fmt, _), v in zip(spec, values, strict=True)]
            for values in frame[[s[0] for s in spec]].itertuples(index=False)]
    section.tables.append(Table([s[1] for s in spec], rows, [s[3] for s in spec]))
    return section


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _scores(parcelles: gpd.GeoDataFrame | None, profiles: Sequence[ScoringProfile]) -> Section:
    section = Section("Distribution des scores")
    scored = [p for p in profiles if p.score]
    if parcelles is None or not scored:
        section.missing = "Les parcelles ne portent pas de score."
        return section
    fig = Figure(figsize=(7.5, 2.6 * len(scored)))
    axes = fig.subplots(len(scored), 1, squeeze=False)[:, 0]
    bins = np.arange(0, 105, 5)
    rows = []
    for ax, profile in zip(axes, scored, strict=True):
        values = pd.to_numeric(parcelles[profile.score], errors="coerce").dropna()
        ax.hist(values, bins=bins, color="#4575b4", edgecolor="white")
        ax.set_title(f"Profil « {profile.label} »", fontsize=9, loc="left")
        ax.set_ylabel("parcelles")
        ax.set_xlim(0, 100)
        excluded = int(parcelles[profile.score].isna().sum())
        rows.append([profile.label, number(len(values)), number(excluded),
                     number(values.median(), 1) if len(values) else "—",
                     number(values.quantile(0.9), 1) if len(values) else "—"])
    axes[-1].set_xlabel("score (0 à 100)")
    fig.tight_layout()
    section.charts.append(Chart("Distribution des scores", "Histogrammes des scores des "
                                "parcelles non exclues, un par profil", _svg_uri(fig)))
    section.tables.append(Table(["Profil", "Parcelles notées", "Parcelles exclues",
                                 "Score médian", "9e décile"], rows,
                                [False, True, True, True, True]))
    return section


def _producers(reports: Sequence[SourceReport], base: Path | None) -> Section:
    """Credit of each source: its producer and the date of its data (Licence Ouverte 2.0)."""
    section = Section("Sources et producteurs")
    if not reports:
        section.missing = "Aucune source n'est décrite."
        return section
    section.paragraphs.append(
        "Données publiques réutilisées sous Licence Ouverte / Open Licence 2.0 (Etalab) "
        "lorsque leur producteur les publie ainsi : chaque producteur est cité avec la date "
        "de ses données. " + " ; ".join(
            f"{producer} — {kinds}, données du {french_date(date) if date else 'date inconnue'}"
            for producer, date, kinds in credits(reports)) + ".")
    rows = [[r.producer or UNKNOWN_PRODUCER, r.kind,
             " ; ".join(relative_name(p, base) for p in r.paths),
             french_date(r.data_date) if r.data_date else "—", r.data_date_origin or "—"]
            for r in reports]
    section.tables.append(Table(["Producteur", "Source", "Fichier", "Date des données",
                                 "Date lue dans"], rows, [False, False, False, True, False]))
    return section


def _sources(reports: Sequence[SourceReport], parcelles: gpd.GeoDataFrame | None,
             profiles: Sequence[ScoringProfile], base: Path | None,
             texts: ProfileTexts, warnings: Sequence[str] = ()) -> Section:
    section = Section("Sources et fiabilité")
    section.paragraphs += [f"Avertissement : {w}." for w in warnings]
    if reports:
        rows = []
        for r in reports:
            paths = " ; ".join(relative_name(p, base) for p in r.paths)
            repairs = "; ".join(f"{k} : {v}" for k, v in sorted(r.repairs.items())) or "—"
            rows.append([r.kind, paths, r.format, number(r.features_read),
                         number(r.features_kept), _text(r.crs_in), repairs,
                         french_date(r.read_at) if r.read_at else "—"])
        # The date is aligned (and kept on one line) like a number.
        section.tables.append(Table(["Source", "Fichier", "Format", "Lues", "Gardées", "CRS",
                                     "Réparations", "Lue le"], rows,
                                    [False, False, False, True, True, False, False, True]))
    else:
        section.paragraphs.append("Aucune source n'est décrite.")
    reliable = [p for p in profiles if p.fiabilite]
    if parcelles is not None and reliable:
        section.paragraphs.append(
            "La fiabilité d'un score est la part du poids total des critères dont les données "
            "étaient disponibles pour la parcelle (1 = toutes les données). Sous le seuil du "
            "profil, la parcelle garde son score mais sa classe est « non déterminée » : elle "
            "n'est comptée dans aucune classe.")
        rows = []
        for p in reliable:
            values = pd.to_numeric(parcelles[p.fiabilite], errors="coerce").dropna()
            threshold = texts.fiabilite_min.get(p.name)
            unsure = (parcelles[p.classe] == UNDETERMINED).to_numpy(dtype=bool) if p.classe \
                else np.zeros(len(parcelles), dtype=bool)
            rows.append([p.label, number(values.mean(), 2) if len(values) else "—",
                         percent((values >= 0.8).mean()) if len(values) else "—",
                         number(values.min(), 2) if len(values) else "—",
                         percent(threshold) if threshold is not None else "—",
                         number(int(unsure.sum()))])
        section.tables.append(Table(["Profil", "Fiabilité moyenne", "Parcelles ≥ 0,8",
                                     "Fiabilité minimale", "Seuil de classe",
                                     "Classe non déterminée"], rows,
                                    [False, True, True, True, True, True]))
    return section
