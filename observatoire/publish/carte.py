"""Interactive map of the observatory: one self-contained, offline HTML page.

The page is a folium map whose assets are all inlined (Leaflet from
``xstatic-leaflet``, the application script and style sheet from
``templates/``): it opens from an e-mail attachment on a workstation without
network. Under the layers, a light background drawn from the observatory's own
layers (commune outlines and names, roads by class, buildings close up:
:mod:`observatoire.publish.fond`) shows where things are without network; an
OpenStreetMap basemap is an option when the network is there.

Layers (from bottom to top): PLU zoning, parcels coloured by score class
(excluded parcels grey), land units of the ZAE by occupation, friche
perimeters, ZAE coloured by vacancy rate, candidate sites, the changes since the previous
observation (hidden when the page opens), friches by status.
A selector switches between the overview of the territory and the view of each
ZAE; a search finds a parcel (IDU, or section and number) or a commune; a
button prints the current view with its legend.

Data are embedded once, as JSON in a ``<script type="application/json">``
element (see :func:`observatoire.publish.assets.json_for_script`), in a compact
form: coordinates simplified in the territory's metric CRS, converted to
WGS 84, rounded to 6 decimals and delta-encoded as integers; attribute columns
dictionary-encoded (text) or scaled to integers (numbers). Beyond
:data:`COMPRESS_ABOVE` bytes (a territory of hundreds of thousands of parcels),
the JSON is deflated and sent in base64, and the page inflates it
(``DecompressionStream``) before drawing. Popups and tooltips
are built by the page's script with DOM nodes and ``textContent`` only, so a
hostile value (``<img src=x onerror=…>``, ``</script>``, ``${…}``) shows as
text and runs nothing. Natural persons are never shown: owners appear by
category, legal entities by name.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from branca.element import Element, Figure, MacroElement
from jinja2 import Template

from observatoire import __version__
from observatoire.communes import commune_names
from observatoire.config import Territory
from observatoire.outputs import StagedFile
from observatoire.publish.assets import (
    EVOLUTIONS,
    EXCLUDED_COLOUR,
    EXCLUDED_LABEL,
    FRICHE_OTHER_COLOUR,
    FRICHE_STATUTS,
    GISEMENT_COLOUR,
    OCCUPATIONS,
    SCORE_CLASSES,
    VACANCY_CLASSES,
    VACANCY_UNKNOWN_COLOUR,
    ZAE_COLOUR,
    ZONE_TYPES,
    ProfileTexts,
    ScoringProfile,
    escape,
    french_date,
    json_for_script,
    leaflet_css,
    leaflet_js,
    profile_texts,
    scoring_profiles,
    script_block,
    style_block,
    template_text,
)
from observatoire.publish.fields import value_map
from observatoire.readers.lineage import SourceReport
from observatoire.readers.provenance import credits as source_credits

log = logging.getLogger(__name__)

#: Coordinates are rounded to 1e-6 degree (about 0.1 m) and sent as integers.
COORD_SCALE = 1_000_000
#: Id of the JSON element holding the map's data.
DATA_ELEMENT_ID = "observatoire-donnees"
#: Above this many bytes of JSON, the page's data are compressed (zlib, then base64) and
#: the page inflates them (``DecompressionStream``): 15 MB of data for a territory of
#: 300,000 parcels become 5 MB, a file that an e-mail can carry.
COMPRESS_ABOVE = 2_000_000
#: Web page of a site on Cartofriches (Cerema), by its ``site_id``.
CARTOFRICHES_URL = "https://cartofriches.cerema.fr/cartofriches/?site={}"
#: A Cartofriches site id: the commune's INSEE code and Cartofriches' number (``25056_21052``).
#: The CNIG standard's ids of local inventories (``12083_22-12.0017``) do not match.
CARTOFRICHES_ID = r"^(?:\d{5}|2[AB]\d{3})_\d+$"

# Decimals kept for each display format of a number.
_DECIMALS = {"int": 0, "m": 0, "m2": 0, "num1": 1, "num2": 2, "score": 1, "pts": 1,
             "pct": 2, "bool": 0}
_TEXT_FORMATS = {"text", "list", "idu", "phrases", "lien"}
# Long generated texts (reasons, exclusions) repeat their phrases: split after "; ", ". ", ": ".
_PHRASE_BREAK = r"(?<=[;.:] )"
# Parcel identifiers: commune and prefix (8 characters), then section and number.
_IDU_SPLIT = 8


@dataclass(frozen=True)
class MapLayer:
    """How one GeoPackage layer is shown on the map.

    Attributes
    ----------
    name
        Layer name in the GeoPackage (and id in the page).
    label
        French name in the layer control and the legend.
    kind
        ``polygon`` or ``point``.
    tolerance
        Simplification tolerance for display, in metres.
    visible
        Shown when the page opens.
    title_field
        Column appended to the popup title.
    title
        French title of the popups.
    fields
        ``(column, French label, format)`` shown in popups, in order; formats are
        ``text``, ``list`` (``|``-joined), ``int``, ``num1``, ``num2``, ``score``,
        ``pts``, ``pct`` (0–1), ``m``, ``m2``, ``bool`` and ``lien`` (a web address,
        shown as a link). Coded values are shown by their French label
        (:func:`observatoire.publish.fields.value_map`).
    tooltip
        ``(column, French label or "", format)`` shown on hover.
    source
        GeoPackage layer drawn, when not ``name`` (two map layers drawn from one).
    territoire
        ``True``: only the features of the territory (``dans_territoire``);
        ``False``: only those nearby; ``None``: all. A layer without the column is
        taken as the territory's.
    """

    name: str
    label: str
    kind: str
    tolerance: float
    visible: bool
    title_field: str | None
    title: str
    fields: tuple[tuple[str, str, str], ...]
    tooltip: tuple[tuple[str, str, str], ...]
    source: str | None = None
    territoire: bool | None = None


#: Popup fields of a friche (points and perimeters).
_FRICHE_FIELDS = (
    ("site_id", "Identifiant", "text"), ("site_type", "Type", "text"),
    ("site_statut", "Statut", "text"), ("site_occupation", "Occupation", "text"),
    ("comm_nom", "Commune", "text"), ("site_adresse", "Adresse", "text"),
    ("unite_fonciere_surface", "Surface", "m2"),
    ("zae_id", "Zone d'activités", "text"),
    ("appariement", "Rattachement aux parcelles", "text"),
    ("idu_absents", "Parcelles absentes du cadastre", "list"),
    ("source_nom", "Source", "text"), ("lien_cartofriches", "Cartofriches", "lien"))

#: Layers of the map, from bottom to top.
MAP_LAYERS: tuple[MapLayer, ...] = (
    MapLayer("zonage", "Zonage du PLU", "polygon", 2.0, False, "libelle", "Zone",
             (("libelong", "Libellé", "text"), ("typezone", "Type de zone", "text"),
              ("destdomi", "Destination dominante", "text"),
              ("zone_activite", "Zone d'activités", "bool"), ("insee", "Commune (INSEE)", "text"),
              ("idurba", "Document d'urbanisme", "text")),
             (("libelle", "Zone", "text"), ("typezone", "", "text"))),
    MapLayer("parcelles", "Parcelles", "polygon", 1.0, True, "idu", "Parcelle",
             (("comm_nom", "Commune", "text"), ("code_insee", "Commune (INSEE)", "text"),
              ("surface_m2", "Surface", "m2"),
              ("zone_libelle", "Zone du PLU", "text"), ("zae_id", "Zone d'activités", "text"),
              ("friche_id", "Friche", "text")),
             (("idu", "", "idu"), ("surface_m2", "", "m2"))),
    MapLayer("zae_unites", "Unités foncières des ZAE", "polygon", 0.5, False, "uf_id",
             "Unité foncière",
             (("zae_id", "Zone d'activités", "text"), ("surface_m2", "Surface", "m2"),
              ("occupation", "Occupation", "text"), ("statut_vacance", "Statut", "text"),
              ("raison_vacance", "Motif", "phrases"),
              ("proprietaire_type", "Propriétaire", "text"),
              ("proprietaire_nom", "Personne morale", "text"),
              ("nb_occupants", "Établissements", "int"), ("idus", "Parcelles", "list")),
             (("occupation", "", "text"), ("surface_m2", "", "m2"))),
    MapLayer("friches_surfaces_proximite", "Friches à proximité, hors territoire (périmètres)",
             "polygon", 0.5, True, "site_nom", "Friche hors territoire", _FRICHE_FIELDS,
             (("site_nom", "", "text"), ("comm_nom", "", "text")), source="friches_surfaces",
             territoire=False),
    MapLayer("friches_surfaces", "Friches du territoire (périmètres)", "polygon", 0.5, True,
             "site_nom", "Friche", _FRICHE_FIELDS,
             (("site_nom", "", "text"), ("site_statut", "", "text")), territoire=True),
    MapLayer("zae", "Zones d'activités (vacance)", "polygon", 0.5, True, "zae_nom",
             "Zone d'activités",
             (("zae_id", "Identifiant", "text"), ("zae_type", "Type", "text"),
              ("zae_vocation", "Vocation", "text"), ("comm_nom", "Commune", "text"),
              ("comm_insee", "Commune (INSEE)", "text"),
              ("taux_vacance", "Taux de vacance (unités)", "pct"),
              ("taux_vacance_surface", "Taux de vacance (surface)", "pct"),
              ("nb_unites", "Unités foncières", "int"),
              ("nb_unites_vacantes", "Unités vacantes", "int"),
              ("surface_disponible_m2", "Surface disponible", "m2"),
              ("plus_grande_surface_dispo_m2", "Plus grande surface disponible", "m2"),
              ("nb_friches", "Friches du territoire", "int"),
              ("surface_friches_m2", "Surface des friches", "m2"),
              ("regle_vacance", "Règle de vacance", "phrases"), ("zae_origine", "Origine", "text")),
             (("zae_nom", "", "text"), ("taux_vacance", "vacance", "pct"))),
    MapLayer("gisements", "Gisements fonciers", "polygon", 0.5, True, "gisement_id",
             "Gisement",
             (("surface_m2", "Surface", "m2"), ("nb_parcelles", "Parcelles", "int"),
              ("nb_proprietaires", "Propriétaires", "int"),
              ("score_moyen", "Score moyen", "score"), ("score_min", "Score minimal", "score"),
              ("zae_id", "Zone d'activités", "text"), ("friche_id", "Friche", "text"),
              ("communes_noms", "Communes", "text"), ("communes", "Communes (INSEE)", "text"),
              ("idus", "Parcelles (IDU)", "list")),
             (("gisement_id", "Gisement", "text"), ("surface_m2", "", "m2"),
              ("score_moyen", "score", "score"))),
    MapLayer("evolution_parcelles", "Changements depuis l'observation précédente", "polygon",
             0.5, False, "idu", "Parcelle — changement",
             (("evolution", "Changement principal", "text"),
              ("changement", "Changement cadastral", "text"),
              ("idu_precedents", "Parcelles précédentes", "text"),
              ("part_batie_avant", "Part bâtie avant", "pct"),
              ("part_batie", "Part bâtie", "pct"),
              ("surface_consommee_m2", "Surface consommée", "m2"),
              ("gisement_avant", "Gisement avant", "text"), ("gisement", "Gisement", "text"),
              ("zae_id", "Zone d'activités", "text")),
             (("idu", "", "idu"), ("evolution", "", "text"))),
    MapLayer("friches_proximite", "Friches à proximité, hors territoire (5 km)", "point", 0.0,
             True, "site_nom", "Friche hors territoire", _FRICHE_FIELDS,
             (("site_nom", "", "text"), ("comm_nom", "", "text")), source="friches",
             territoire=False),
    MapLayer("friches", "Friches du territoire", "point", 0.0, True, "site_nom", "Friche",
             _FRICHE_FIELDS, (("site_nom", "", "text"), ("site_statut", "", "text")),
             territoire=True),
)


#: Popup rows of the mutabilité (Mutafriches) of friches and candidate sites: the seven
#: usages side by side with the observatory's industrial score, and whether they agree.
MUTABILITE_POPUP: tuple[tuple[str, str, str], ...] = (
    *((f"mutabilite_{u}", f"Mutafriches — {label}", "num1") for u, label in (
        ("residentiel", "résidentiel"), ("equipements", "équipements publics"),
        ("culture", "culture, tourisme"), ("tertiaire", "tertiaire"),
        ("industrie", "industrie, logistique"), ("renaturation", "renaturation"),
        ("photovoltaique", "photovoltaïque au sol"))),
    ("mutabilite_meilleur_usage", "Mutafriches — meilleur usage", "text"),
    ("mutabilite_fiabilite", "Mutafriches — fiabilité (sur 10)", "num1"),
    ("mutabilite_score_observatoire", "Score industriel de l'observatoire", "score"),
    ("mutabilite_ecart_industrie", "Industrie : Mutafriches et observatoire", "phrases"),
)
MAP_LAYERS = tuple(dataclasses.replace(spec, fields=spec.fields + MUTABILITE_POPUP)
                   if spec.name in ("friches", "gisements") else spec for spec in MAP_LAYERS)


def stage_map(layers: Mapping[str, gpd.GeoDataFrame], territory: Territory, *,
              reports: Sequence[SourceReport] = (),
              communes: Mapping[str, str] | None = None,
              background: Mapping[str, gpd.GeoDataFrame] | None = None) -> StagedFile:
    """Write ``carte.html`` (overview and per-ZAE views) to a staged file.

    Parameters
    ----------
    layers
        The observatory's layers by name (``parcelles``, ``zae``, ``friches``…),
        in the territory's CRS; absent layers and columns are left out.
    territory
        The territory: name, communes, CRS, output folder, profiles.
    reports
        The sources read: their producers and data dates are credited in the
        map's attribution (Licence Ouverte 2.0).
    communes
        INSEE code → commune name (default: the table of communes, then
        ``[options.noms_communes]``).
    background
        Layers of the background not in ``layers``: ``limites_communes`` (the
        outlines of :func:`observatoire.analysis.limites.commune_outlines`), and
        ``routes`` and ``batiments`` when ``layers`` lacks them.

    Returns
    -------
    StagedFile
        ``carte.html`` in the output folder, to publish with the other outputs.
    """
    staged = StagedFile(territory.output_dir / "carte.html")
    date = french_date(territory.options.date_observation or dt.date.today())
    page = render_map(
        layers,
        title=f"Observatoire du foncier économique — {territory.name}",
        subtitle=(f"{len(territory.communes)} commune(s) — données au {date} — "
                  f"observatoire {__version__}"),
        crs=territory.crs,
        profiles=profile_texts(territory),
        credits=source_credits(reports),
        communes=communes if communes is not None else commune_names(
            territory.communes, overrides=territory.options.noms_communes),
        background=background,
    )
    staged.tmp.write_text(page, encoding="utf-8")
    log.info("Carte écrite (%.1f Mo)", len(page.encode("utf-8")) / 1e6)
    return staged


def render_map(layers: Mapping[str, gpd.GeoDataFrame], *, title: str, subtitle: str = "",
               crs: str | None = None, profiles: ProfileTexts | None = None,
               credits: Sequence[tuple[str, str, str]] = (),
               communes: Mapping[str, str] | None = None,
               background: Mapping[str, gpd.GeoDataFrame] | None = None,
               compress: bool | None = None) -> str:
    """Return the HTML page of the map.

    Parameters
    ----------
    layers
        Layers by name; see :data:`MAP_LAYERS` for those shown.
    title, subtitle
        Shown in the page header (as text).
    crs
        Metric CRS in which geometries are simplified (default: each layer's own).
    profiles
        Order and labels of the scoring profiles; the first colours the parcels
        when the page opens.
    credits
        ``(producer, data date, source kinds)`` of the sources, shown in the map's
        attribution (:func:`observatoire.readers.provenance.credits`).
    communes
        INSEE code → commune name, shown in popups and found by the search;
        codes it lacks are named from the table of communes.
    background
        The layers of the background when not in ``layers``
        (:func:`observatoire.publish.fond.background_data`).
    compress
        Compress the data in the page (zlib, base64); ``None``: above
        :data:`COMPRESS_ABOVE` bytes of JSON.

    Returns
    -------
    str
        A complete, self-contained HTML document.
    """
    data = map_data(layers, title=title, subtitle=subtitle, crs=crs,
                    profiles=profiles, credits=credits, communes=communes,
                    background=background)
    west, south, east, north = data["meta"]["emprise"]
    fmap = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=13,
                      tiles=None, prefer_canvas=True, zoom_control=True)
    # Every asset is inlined below: no link to a CDN.
    fmap.default_js = []
    fmap.default_css = []
    root = fmap.get_root()
    assert isinstance(root, Figure)
    root.header.add_child(_Raw(f"<title>{escape(title)}</title>"), name="obs_title")
    root.header.add_child(_Raw(style_block(leaflet_css())), name="leaflet_css")
    root.header.add_child(_Raw(script_block(leaflet_js())), name="leaflet_js")
    root.header.add_child(_Raw(style_block(template_text("carte.css"))), name="obs_css")
    root.header.add_child(_Raw(script_block(template_text("carte.js"))), name="obs_js")
    root.html.add_child(_Raw(data_element(json_for_script(data), compress=compress)),
                        name="obs_data")
    fmap.add_child(_Application())
    return root.render()


def data_element(text: str, *, compress: bool | None = None) -> str:
    """Return the ``<script>`` element holding the map's data (JSON text, escaped).

    Compressed (``compress``, or ``None`` and more than :data:`COMPRESS_ABOVE`
    bytes): the UTF-8 JSON deflated by zlib, in base64, marked
    ``data-encodage="deflate-base64"``; the page inflates it before drawing.
    """
    raw = text.encode("utf-8")
    if compress is None:
        compress = len(raw) > COMPRESS_ABOVE
    if not compress:
        return f'<script type="application/json" id="{DATA_ELEMENT_ID}">{text}</script>'
    payload = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
    return (f'<script type="application/octet-stream" id="{DATA_ELEMENT_ID}" '
            f'data-encodage="deflate-base64">{payload}</script>')


def page_data(html: str) -> dict:
    """Return the data embedded in a map page (compressed or not): what the page draws."""
    import json

    m = re.search(rf'<script type="[^"]+" id="{DATA_ELEMENT_ID}"( data-encodage="[^"]+")?>'
                  r"(.*?)</script>", html, flags=re.S)
    if m is None:
        raise ValueError("page sans données de carte")
    text = m.group(2)
    if m.group(1):
        text = zlib.decompress(base64.b64decode(text)).decode("utf-8")
    return json.loads(text)


class _Raw(Element):
    """HTML inserted as is: never parsed as a Jinja template (a value holding ``{{`` stays text)."""

    _template = Template("{{ this.content }}")

    def __init__(self, content: str) -> None:
        super().__init__()
        self.content = content


class _Application(MacroElement):
    """Start the page's script on the folium map."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "observatoireCarte({{ this._parent.get_name() }}, {{ this.data_id|tojson }});"
        "{% endmacro %}"
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "ObservatoireCarte"
        self.data_id = DATA_ELEMENT_ID


def map_data(layers: Mapping[str, gpd.GeoDataFrame], *, title: str, subtitle: str = "",
             crs: str | None = None, profiles: ProfileTexts | None = None,
             credits: Sequence[tuple[str, str, str]] = (),
             communes: Mapping[str, str] | None = None,
             background: Mapping[str, gpd.GeoDataFrame] | None = None) -> dict:
    """Return the data embedded in the map page (JSON-serialisable).

    Parameters
    ----------
    layers, title, subtitle, crs, profiles, credits, communes, background
        As for :func:`render_map`.

    Returns
    -------
    dict
        ``meta`` (titles, palettes, profiles, communes, ZAE views, extent),
        ``layers`` (one compact entry per non-empty layer of :data:`MAP_LAYERS`)
        and, when the layers give one, ``fond``: the background drawn from the
        communes, roads and buildings (:mod:`observatoire.publish.fond`).
    """
    from observatoire.publish.fond import background_data

    parcelles = layers.get("parcelles")
    found = scoring_profiles(parcelles.columns, profiles) if parcelles is not None else []
    names = _names(layers, communes)
    with ThreadPoolExecutor(1) as pool:
        # The background is made beside the layers: its simplification and projection
        # (GEOS, PROJ) run outside the interpreter's lock, on another core.
        fond = pool.submit(background_data, {**layers, **(background or {})}, crs=crs,
                           names=names)
        out = _map_layers_data(layers, parcelles, found, names, crs=crs, title=title,
                               subtitle=subtitle, credits=credits)
        drawn_background = fond.result()
    if drawn_background is not None:
        out["fond"] = drawn_background
    return out


def _map_layers_data(layers: Mapping[str, gpd.GeoDataFrame], parcelles: gpd.GeoDataFrame | None,
                     found: list[ScoringProfile], names: Mapping[str, str], *,
                     crs: str | None, title: str, subtitle: str,
                     credits: Sequence[tuple[str, str, str]]) -> dict:
    """Return ``meta`` and ``layers`` of :func:`map_data` (the background apart)."""
    shown: list[dict] = []
    bounds: list[np.ndarray] = []
    zae_views: list[dict] = []
    for spec in MAP_LAYERS:
        frame = _features(layers.get(spec.source or spec.name), spec)
        if frame is None or len(frame) == 0 or frame.geometry.isna().all():
            continue
        if spec.name == "evolution_parcelles" and "date_depuis" in frame:
            since = dt.date.fromisoformat(str(frame["date_depuis"].iloc[0]))
            spec = dataclasses.replace(spec, label=f"Changements depuis le {french_date(since)}")
        display = _display_frame(_linked(_named(frame, spec.name, names)), spec, crs, found)
        entry = _encode_layer(display, spec, found if spec.name == "parcelles" else [])
        shown.append(entry)
        if not display.geometry.is_empty.all():
            bounds.append(np.asarray(display.total_bounds))
        if spec.name == "zae":
            zae_views = _zae_views(display)
    extent = [np.nan] * 4
    if parcelles is not None and len(parcelles):
        extent = _bounds_4326(parcelles, crs)
    if not np.isfinite(extent).all() and bounds:
        stacked = np.vstack(bounds)
        extent = [np.nanmin(stacked[:, 0]), np.nanmin(stacked[:, 1]), np.nanmax(stacked[:, 2]),
                  np.nanmax(stacked[:, 3])]
    if not np.isfinite(extent).all():
        extent = [-5.2, 41.3, 9.6, 51.1]  # metropolitan France
    meta = {
        "titre": title,
        "sous_titre": subtitle,
        "emprise": [round(float(v), 6) for v in extent],
        "profils": [_profile_meta(p) for p in found],
        "libelle_exclue": f"{EXCLUDED_LABEL} (hors critères)",
        "communes": _communes(layers, crs, names),
        "zae": zae_views,
        "sources": [{"producteur": producer, "date": date, "donnees": kinds}
                    for producer, date, kinds in credits],
        "palettes": {
            "classes": {k: list(v) for k, v in SCORE_CLASSES.items()},
            "exclue": EXCLUDED_COLOUR,
            "friches": {k: list(v) for k, v in FRICHE_STATUTS.items()},
            "friche_autre": FRICHE_OTHER_COLOUR,
            "vacance": [list(c) for c in VACANCY_CLASSES],
            "vacance_inconnue": VACANCY_UNKNOWN_COLOUR,
            "zonage": {k: list(v) for k, v in ZONE_TYPES.items()},
            "occupation": {k: list(v) for k, v in OCCUPATIONS.items()},
            "gisement": GISEMENT_COLOUR,
            "evolution": {k: list(v) for k, v in EVOLUTIONS.items()},
            "zae": ZAE_COLOUR,
        },
    }
    return {"meta": meta, "layers": shown}


def _linked(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Add the web page of the friches that are Cartofriches sites (``lien_cartofriches``)."""
    if "site_id" not in frame or "lien_cartofriches" in frame:
        return frame
    ids = frame["site_id"].astype("string").str.strip()
    ours = ids.str.fullmatch(CARTOFRICHES_ID).fillna(False).astype(bool)
    links = pd.Series(None, index=frame.index, dtype=object)
    links[ours.to_numpy()] = [CARTOFRICHES_URL.format(i) for i in ids[ours]]
    return frame.assign(lien_cartofriches=links)


def _features(frame: gpd.GeoDataFrame | None, spec: MapLayer) -> gpd.GeoDataFrame | None:
    """Return the features of ``frame`` that ``spec`` draws: the territory's, those nearby, all."""
    if frame is None or spec.territoire is None:
        return frame
    if "dans_territoire" not in frame.columns:
        return frame if spec.territoire else frame.iloc[:0]
    inside = frame["dans_territoire"].fillna(False).astype(bool).to_numpy()
    return frame[inside if spec.territoire else ~inside]


def _display_columns(frame: pd.DataFrame, spec: MapLayer,
                     profiles: Sequence[ScoringProfile]) -> list[str]:
    wanted = [c for c, _, _ in (*spec.fields, *spec.tooltip)]
    if spec.title_field:
        wanted.append(spec.title_field)
    for p in profiles:
        # ``exclu_<p>`` is implied by a NULL score: not sent, to keep the page small.
        wanted.extend(c for c in p.columns if c != p.exclu)
    seen: list[str] = []
    for col in wanted:
        if col in frame.columns and col not in seen and col != frame.geometry.name:
            seen.append(col)
    return seen


def _display_frame(frame: gpd.GeoDataFrame, spec: MapLayer, crs: str | None,
                   profiles: Sequence[ScoringProfile]) -> gpd.GeoDataFrame:
    """Keep the shown columns, simplify in a metric CRS, convert to WGS 84."""
    cols = _display_columns(frame, spec, profiles if spec.name == "parcelles" else [])
    out = gpd.GeoDataFrame(frame[cols].copy(), geometry=frame.geometry.values, crs=frame.crs)
    if out.crs is None and crs:
        out = out.set_crs(crs)
    if "proprietaire_nom" in out.columns:
        # Natural persons are never named: only legal entities keep their name.
        legal = out.get("proprietaire_type", pd.Series(None, index=out.index)) == "personne morale"
        out["proprietaire_nom"] = out["proprietaire_nom"].where(legal, None)
    metric = out.crs is not None and out.crs.is_projected
    if spec.tolerance > 0 and metric:
        out = out.set_geometry(shapely.simplify(np.asarray(out.geometry.values), spec.tolerance,
                                                preserve_topology=True), crs=out.crs)
    if out.crs is not None and out.crs.to_epsg() != 4326:
        out = out.to_crs(4326)
    return out


def _bounds_4326(frame: gpd.GeoDataFrame, crs: str | None) -> list[float]:
    g = frame.geometry
    if g.crs is None and crs:
        g = g.set_crs(crs)
    if g.crs is not None and g.crs.to_epsg() != 4326:
        g = g.to_crs(4326)
    return [float(v) for v in g.total_bounds]


def _encode_layer(display: gpd.GeoDataFrame, spec: MapLayer,
                  profiles: Sequence[ScoringProfile]) -> dict:
    formats = {c: f for c, _, f in (*spec.fields, *spec.tooltip)}
    if spec.title_field:
        formats.setdefault(spec.title_field, "text")
    if spec.name == "parcelles":
        formats["idu"] = "idu"
    for p in profiles:
        formats.update(p.formats)
    props = {col: encode_column(display[col], formats.get(col, "text"))
             for col in display.columns if col != display.geometry.name}
    geometry = (encode_points(display.geometry) if spec.kind == "point"
                else encode_polygons(display.geometry))
    present = set(props)
    shown = [f for f in (*spec.fields, *spec.tooltip) if f[0] in present and f[2] == "text"]
    labels = {c: value_map(spec.source or spec.name, c) for c, _, _ in shown}
    return {
        "id": spec.name,
        "libelle": spec.label,
        "etiquette": spec.title,
        "titre": spec.title_field if spec.title_field in present else None,
        "visible": spec.visible,
        "n": len(display),
        "champs": [list(f) for f in spec.fields if f[0] in present],
        "infobulle": [list(f) for f in spec.tooltip if f[0] in present],
        # Coded values: their French labels, shown in popups and tooltips.
        "valeurs": {c: labels[c] for c in sorted(labels) if labels[c]},
        "props": props,
        "geom": geometry,
    }


def encode_column(values: pd.Series, fmt: str) -> dict:
    """Encode an attribute column for the page.

    Parameters
    ----------
    values
        The column.
    fmt
        Display format (see :class:`MapLayer`); text formats are
        dictionary-encoded, numbers scaled to integers.

    Returns
    -------
    dict
        ``{"t": "s", "d": [distinct values], "i": [index or -1]}`` for repeated text,
        ``{"t": "l", "v": [value or null]}`` for mostly distinct text,
        ``{"t": "p", "d": [first 8 characters], "i": [index or -1], "v": "rest,rest"}``
        for parcel identifiers (format ``idu``),
        ``{"t": "f", "d": [phrases], "v": "0.3.1,,2"}`` for long generated texts
        (format ``phrases``: each row lists its phrases; empty = NULL),
        ``{"t": "n", "k": decimals, "v": "12,,7"}`` for numbers (empty = NULL).
    """
    if fmt == "idu":
        text = values.astype("string")
        codes, uniques = pd.factorize(text.str[:_IDU_SPLIT], use_na_sentinel=True)
        tails = text.str[_IDU_SPLIT:].fillna("")
        if not tails.str.contains(",", regex=False).any():
            return {"t": "p", "d": [str(u) for u in uniques], "i": codes.tolist(),
                    "v": ",".join(tails.tolist())}
    if fmt == "phrases":
        text = values.astype("string").reset_index(drop=True)
        pieces = _phrases(text)
        first, uniques = pd.factorize(pieces)
        # The most frequent phrases get the shortest numbers (ties: first seen first).
        order = np.argsort(-np.bincount(first, minlength=len(uniques)), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        # Join each row's numbers with "." and the rows with ",", in Arrow (no Python loop).
        counts = np.bincount(pieces.index.to_numpy(dtype=np.int64), minlength=len(text))
        offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
        per_row = pc.binary_join(pa.ListArray.from_arrays(offsets, pa.array(
            rank[first].astype(str))), ".")
        whole = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()),
                                                        per_row), ",")
        return {"t": "f", "d": [str(u) for u in uniques[order]], "v": whole[0].as_py()}
    if fmt in _TEXT_FORMATS:
        text = values.astype("string")
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        if 2 * len(uniques) > len(text):
            # Mostly distinct values (identifiers): a dictionary would only add indexes.
            return {"t": "l", "v": text.astype(object).where(text.notna(), None).tolist()}
        return {"t": "s", "d": [str(u) for u in uniques], "i": codes.tolist()}
    k = _DECIMALS.get(fmt, 2)
    if values.dtype == object:
        values = values.map(lambda v: float(v) if isinstance(v, bool) else v)
    arr: np.ndarray = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    finite = np.isfinite(arr)
    ints = np.zeros(len(arr), dtype=np.int64)
    ints[finite] = np.rint(arr[finite] * 10**k).astype(np.int64)
    digits = np.where(finite, ints.astype(str), "")
    return {"t": "n", "k": k, "v": ",".join(digits.tolist())}


def _phrases(text: pd.Series) -> pd.Series:
    """Split each text after « ; », « . » and « : », by row (index: the row); no empty piece.

    In Arrow: the breaks are marked with a NUL character, then split on it (a text
    holding NUL is split by :data:`_PHRASE_BREAK` in Python).
    """
    values = pa.array(text.to_numpy(dtype=object, na_value=None), type=pa.large_string())
    if pc.any(pc.match_substring(values, "\x00")).as_py():
        pieces = text.str.split(_PHRASE_BREAK, regex=True).explode()
        return pieces[pieces.notna() & (pieces != "")]
    lists = pc.split_pattern(pc.replace_substring_regex(values, "([;.:] )", "\\1\x00"),
                             "\x00")
    flat = pc.list_flatten(lists)
    keep = pc.not_equal(flat, "")
    rows = pc.list_parent_indices(lists).filter(keep).to_numpy()
    return pd.Series(flat.filter(keep).to_numpy(zero_copy_only=False), index=rows,
                     dtype="string")


def _quantize(coords: np.ndarray, scale: int = COORD_SCALE) -> np.ndarray:
    return np.rint(coords * scale).astype(np.int64)


def encode_points(geoms: gpd.GeoSeries) -> dict:
    """Encode point geometries (WGS 84) as delta-encoded integer coordinates.

    Non-point geometries are represented by a point on their surface; missing or
    empty ones are flagged 0 in ``f`` and have no coordinates.
    """
    values = np.asarray(geoms.values)
    present = ~(shapely.is_missing(values) | shapely.is_empty(values))
    points = np.asarray(values[present], dtype=object)
    not_point = shapely.get_type_id(points) != 0
    points[not_point] = shapely.point_on_surface(points[not_point])
    q = _quantize(shapely.get_coordinates(points))
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return {"type": "point", "s": COORD_SCALE, "f": present.astype(int).tolist(),
            "c": deltas.ravel().tolist()}


def encode_polygons(geoms: gpd.GeoSeries, *, scale: int = COORD_SCALE) -> dict:
    """Encode (multi)polygons (WGS 84) compactly, without a loop over features.

    Coordinates are rounded to ``1 / scale`` degree (:data:`COORD_SCALE` by default).

    Returns
    -------
    dict
        ``f``: polygons per feature, ``p``: rings per polygon (each a list, or
        ``1`` when all are 1), ``r``: vertices per ring (closing vertex
        dropped), ``c``: flat ``[dx, dy, …]`` integer deltas in ``1 / s`` degree
        from the previous vertex of the layer, ``s``: the scale.
    """
    values = np.asarray(geoms.values)
    n = len(values)
    parts, feature_of_part = shapely.get_parts(values, return_index=True)
    polygon = shapely.get_type_id(parts) == 3
    parts, feature_of_part = parts[polygon], feature_of_part[polygon]
    rings, part_of_ring = shapely.get_rings(parts, return_index=True)
    coords, ring_of_vertex = shapely.get_coordinates(rings, return_index=True)
    q = _quantize(coords, scale)
    keep = np.ones(len(q), dtype=bool)
    if len(q):
        per_ring = np.bincount(ring_of_vertex, minlength=len(rings))
        keep[np.cumsum(per_ring)[per_ring > 0] - 1] = False  # closing vertex
        same = np.zeros(len(q), dtype=bool)
        same[1:] = (q[1:] == q[:-1]).all(axis=1) & (ring_of_vertex[1:] == ring_of_vertex[:-1])
        keep &= ~same
    q, ring_of_vertex = q[keep], ring_of_vertex[keep]
    ring_len = np.bincount(ring_of_vertex, minlength=len(rings))
    # A ring left with fewer than 3 vertices draws nothing; its polygon goes when
    # it is the exterior ring (the first ring of each polygon).
    ring_ok = ring_len >= 3
    first_ring = np.zeros(len(rings), dtype=bool)
    if len(rings):
        first_ring[0] = True
        first_ring[1:] = part_of_ring[1:] != part_of_ring[:-1]
    part_ok = np.zeros(len(parts), dtype=bool)
    part_ok[part_of_ring[first_ring & ring_ok]] = True
    ring_ok &= part_ok[part_of_ring]
    q = q[ring_ok[ring_of_vertex]]
    rings_per_part = np.bincount(part_of_ring[ring_ok], minlength=len(parts))[part_ok]
    parts_per_feature = np.bincount(feature_of_part[part_ok], minlength=n)
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return {"type": "polygon", "s": scale, "f": _counts(parts_per_feature),
            "p": _counts(rings_per_part), "r": ring_len[ring_ok].tolist(),
            "c": deltas.ravel().tolist()}


def _counts(values: np.ndarray) -> list[int] | int:
    """Return counts as a list, or as one number when all are 1 (simple polygons)."""
    return 1 if len(values) and (values == 1).all() else values.tolist()


def _profile_meta(profile: ScoringProfile) -> dict:
    return {
        "nom": profile.name,
        "libelle": profile.label,
        "colonnes": {
            "score": profile.score, "classe": profile.classe, "exclu": profile.exclu,
            "exclusions": profile.exclusions, "raisons": profile.raisons,
            "fiabilite": profile.fiabilite,
        },
        "criteres": [{"colonne": c, "libelle": label} for c, label in profile.criteria],
    }


def _zae_views(display: gpd.GeoDataFrame) -> list[dict]:
    """One view per ZAE: id, name, bounds (WGS 84) and row, sorted by name."""
    ids = display["zae_id"].astype("string") if "zae_id" in display else None
    if ids is None:
        return []
    names = (display["zae_nom"].astype("string").fillna(ids) if "zae_nom" in display
             else ids)
    bounds = display.geometry.bounds.round(6)
    views = pd.DataFrame({"id": ids, "nom": names, "row": np.arange(len(display)),
                          "minx": bounds["minx"], "miny": bounds["miny"],
                          "maxx": bounds["maxx"], "maxy": bounds["maxy"]})
    views = views.dropna(subset=["id", "minx"]).sort_values(["nom", "id"], kind="stable")
    return [{"id": str(r["id"]), "nom": str(r["nom"]), "index": int(r["row"]),
             "bbox": [r["minx"], r["miny"], r["maxx"], r["maxy"]]}
            for r in views.to_dict("records")]


def _names(layers: Mapping[str, gpd.GeoDataFrame], given: Mapping[str, str] | None
           ) -> dict[str, str]:
    """INSEE code → name of every commune the layers show: ``given``, else the table's."""
    codes: list[str] = []
    for name, column in (("parcelles", "code_insee"), ("zae", "comm_insee")):
        frame = layers.get(name)
        if frame is not None and column in frame:
            codes.extend(frame[column].dropna().astype(str).unique())
    sites = layers.get("gisements")
    if sites is not None and "communes" in sites:
        codes.extend(sites["communes"].dropna().astype(str).str.split(",").explode()
                     .str.strip().unique())
    return {**commune_names(codes), **(given or {})}


def _named(frame: gpd.GeoDataFrame, layer: str, names: Mapping[str, str]) -> gpd.GeoDataFrame:
    """Add the names of the communes a layer gives by code (``comm_nom``, ``communes_noms``)."""
    if layer in ("parcelles", "zae"):
        code = "code_insee" if layer == "parcelles" else "comm_insee"
        if code in frame and "comm_nom" not in frame:
            return frame.assign(comm_nom=frame[code].map(names))
    if layer == "gisements" and "communes" in frame:
        listed = frame["communes"].astype("string").str.split(",")
        return frame.assign(communes_noms=listed.map(
            lambda codes: ", ".join(names.get(c.strip(), c.strip()) for c in codes)
            if isinstance(codes, list) else None))
    return frame


def _communes(layers: Mapping[str, gpd.GeoDataFrame], crs: str | None,
              names: Mapping[str, str]) -> list[dict]:
    """Communes of the parcels: INSEE code, name, bounds (WGS 84)."""
    parcelles = layers.get("parcelles")
    if parcelles is None or len(parcelles) == 0 or "code_insee" not in parcelles:
        return []
    geoms = parcelles.geometry
    if geoms.crs is None and crs:
        geoms = geoms.set_crs(crs)
    bounds = geoms.bounds
    bounds["code"] = parcelles["code_insee"].astype("string").to_numpy()
    extent = bounds.dropna().groupby("code").agg(minx=("minx", "min"), miny=("miny", "min"),
                                                 maxx=("maxx", "max"), maxy=("maxy", "max"))
    corners = gpd.GeoSeries(
        gpd.points_from_xy(np.r_[extent["minx"], extent["maxx"]],
                           np.r_[extent["miny"], extent["maxy"]]), crs=geoms.crs)
    if corners.crs is not None:
        corners = corners.to_crs(4326)
    xy = shapely.get_coordinates(np.asarray(corners.values)).round(6)
    m = len(extent)
    return [{"code": str(code), "nom": names.get(str(code)),
             "bbox": [xy[i, 0], xy[i, 1], xy[m + i, 0], xy[m + i, 1]]}
            for i, code in enumerate(extent.index)]
