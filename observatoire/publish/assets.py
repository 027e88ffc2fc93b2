"""Inline assets and safe embedding for self-contained HTML pages.

The maps and the report are opened offline, from an e-mail attachment or a
locked-down workstation: every script, style sheet and image they use is read
from an installed package (``xstatic-leaflet`` for Leaflet) or from the
package's own ``templates`` folder, and written into the page. Nothing is ever
fetched from a CDN.

Data reach the page through :func:`json_for_script` only, in a
``<script type="application/json">`` block that no value can close, and the
page's scripts render them with ``textContent``: an attribute value never
becomes markup or code.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from observatoire.analysis.scoring import UNDETERMINED
from observatoire.config import Territory
from observatoire.errors import BuildError

#: Colours shared by the map, the QGIS styles and the report.
SCORE_CLASSES: dict[str, tuple[str, str]] = {
    "A": ("#1a9850", "A — très favorable"),
    "B": ("#91cf60", "B — favorable"),
    "C": ("#fee08b", "C — moyen"),
    "D": ("#fc8d59", "D — peu favorable"),
    "E": ("#d73027", "E — défavorable"),
    # Scored, but on too few criteria for a class (reliability under the profile's threshold).
    UNDETERMINED: ("#9ecae1", "Non déterminée — données insuffisantes"),
}
#: Colour of parcels excluded by the scoring profile.
EXCLUDED_COLOUR = "#bdbdbd"
#: Label of excluded parcels.
EXCLUDED_LABEL = "Exclue"

#: Friche statuses of the CNIG standard (``site_statut``), with their colour.
FRICHE_STATUTS: dict[str, tuple[str, str]] = {
    "friche sans projet": ("#e31a1c", "Friche sans projet"),
    "friche avec projet": ("#ff7f00", "Friche avec projet"),
    "friche potentielle": ("#6a3d9a", "Friche potentielle"),
    "friche reconvertie": ("#33a02c", "Friche reconvertie"),
    "inconnu": ("#969696", "Statut inconnu"),
}
#: Main change of a parcel between two observations (``evolution``): colour, label.
EVOLUTIONS: dict[str, tuple[str, str]] = {
    "nouvellement bâtie": ("#b2182b", "Nouvellement bâtie"),
    "entrée en gisement": ("#1a9850", "Entrée en gisement"),
    "sortie de gisement": ("#f46d43", "Sortie de gisement"),
    "divisée": ("#6a3d9a", "Divisée"),
    "fusionnée": ("#1f78b4", "Fusionnée"),
    "renumérotée": ("#a6cee3", "Renumérotée"),
    "géométrie modifiée": ("#cab2d6", "Géométrie modifiée"),
    "créée": ("#33a02c", "Créée"),
    "supprimée": ("#525252", "Supprimée"),
    "classe modifiée": ("#fdae61", "Classe de score modifiée"),
}
#: Colour of a friche whose status is empty or outside the CNIG list.
FRICHE_OTHER_COLOUR = "#969696"

#: Vacancy classes of the ZAE (``taux_vacance``, 0–1): upper bound, colour, label.
VACANCY_CLASSES: tuple[tuple[float, str, str], ...] = (
    (0.05, "#fef0d9", "moins de 5 %"),
    (0.15, "#fdcc8a", "5 à 15 %"),
    (0.30, "#fc8d59", "15 à 30 %"),
    (1.00, "#d7301f", "30 % et plus"),
)
#: Colour of a ZAE whose vacancy is unknown.
VACANCY_UNKNOWN_COLOUR = "#ffffff"

#: PLU zone types (``typezone``) of the CNIG standard, with their colour.
ZONE_TYPES: dict[str, tuple[str, str]] = {
    "U": ("#e41a1c", "U — urbaine"),
    "AUc": ("#ff7f00", "AUc — à urbaniser (constructible)"),
    "AUs": ("#fdbf6f", "AUs — à urbaniser (stricte)"),
    "A": ("#ffff99", "A — agricole"),
    "N": ("#33a02c", "N — naturelle"),
}

#: Occupation of ZAE land units (``occupation``), with their colour.
OCCUPATIONS: dict[str, tuple[str, str]] = {
    "vacante": ("#1a9850", "Vacante"),
    "présumée vacante": ("#a6d96a", "Présumée vacante"),
    "présumée occupée": ("#abd9e9", "Présumée occupée"),
    "occupée": ("#4575b4", "Occupée"),
}
#: Vacancy status of a land unit (``statut_vacance``): colour (those of the map's
#: occupations) and French label, for the atlas sheets and the QGIS atlas.
VACANCY_STATUTS: dict[str, tuple[str, str]] = {
    "vacante": (OCCUPATIONS["vacante"][0], "Vacante"),
    "présumée vacante": (OCCUPATIONS["présumée vacante"][0], "Présumée vacante"),
    "présumée non vacante": (OCCUPATIONS["présumée occupée"][0],
                             "Présumée non vacante (occupée)"),
    "non vacante": (OCCUPATIONS["occupée"][0], "Non vacante (occupée)"),
    "inconnue": ("#d9d9d9", "Statut inconnu"),
}

#: Owner categories of land units (``proprietaire_type``).
PROPRIETAIRE_TYPES: dict[str, tuple[str, str]] = {
    "personne morale": ("#8856a7", "Personne morale"),
    "personne physique": ("#9ebcda", "Personne physique"),
    "inconnu": ("#d9d9d9", "Propriétaire inconnu"),
}

#: Road classes (``classe``): colour and width in millimetres (QGIS).
ROAD_CLASSES: dict[str, tuple[str, float]] = {
    "autoroute": ("#e31a1c", 1.2),
    "principale": ("#ff7f00", 0.9),
    "secondaire": ("#fdbf6f", 0.6),
    "locale": ("#969696", 0.3),
}

#: Outline colour of candidate sites and of ZAE.
GISEMENT_COLOUR = "#0050b4"
ZAE_COLOUR = "#6a3d9a"

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def json_for_script(value: Any) -> str:
    r"""Serialise ``value`` as JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>``, ``&`` and the line separators U+2028/U+2029 are written as
    ``\uXXXX`` escapes, so that no value (``</script>``, ``<!--``) can close
    the element or change how the page is parsed; the JSON means the same.

    Parameters
    ----------
    value
        Any JSON-serialisable value; NaN and infinities are refused.

    Returns
    -------
    str
        The JSON text.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)


def escape(value: object) -> str:
    """Return ``value`` as text escaped for HTML (element content and quoted attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def script_block(code: str) -> str:
    """Wrap trusted JavaScript in a ``<script>`` element.

    Raises
    ------
    BuildError
        When the code holds ``</script`` or ``<!--``, which would end the element.
    """
    if re.search(r"</script|<!--", code, flags=re.IGNORECASE):
        raise BuildError("script à intégrer contenant « </script » ou « <!-- » : "
                         "la page serait cassée ; signalez ce défaut")
    return f"<script>{code}</script>"


def style_block(css: str) -> str:
    """Wrap trusted CSS in a ``<style>`` element.

    Raises
    ------
    BuildError
        When the CSS holds ``</style``, which would end the element.
    """
    if re.search(r"</style", css, flags=re.IGNORECASE):
        raise BuildError("feuille de style à intégrer contenant « </style » ; "
                         "signalez ce défaut")
    return f"<style>{css}</style>"


def leaflet_dir() -> Path:
    """Return the folder of the Leaflet files shipped by ``xstatic-leaflet``.

    Raises
    ------
    BuildError
        When the package is not installed.
    """
    try:
        import xstatic.pkg.leaflet as xleaflet
    except ImportError as exc:
        raise BuildError(
            "paquet « xstatic-leaflet » absent : la carte ne peut pas intégrer Leaflet ; "
            "installez-le (pip install 'xstatic-leaflet>=1.9.3')"
        ) from exc
    return Path(xleaflet.BASE_DIR)


@functools.cache
def leaflet_js() -> str:
    """Return the minified Leaflet script, read from ``xstatic-leaflet``."""
    return (leaflet_dir() / "leaflet.js").read_text(encoding="utf-8")


@functools.cache
def leaflet_css() -> str:
    """Return Leaflet's style sheet with its images inlined as ``data:`` URIs."""
    base = leaflet_dir()
    css = (base / "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        path = base / match.group(1)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        mime = "image/png" if path.suffix == ".png" else "image/svg+xml"
        return f"url(data:{mime};base64,{data})"

    return re.sub(r"url\((images/[A-Za-z0-9_.-]+)\)", inline, css)


@functools.cache
def template_text(name: str) -> str:
    """Return a file of ``observatoire/publish/templates`` (package data)."""
    return resources.files("observatoire.publish").joinpath("templates", name).read_text(
        encoding="utf-8")


#: Profiles shipped with the observatory, in their default order.
DEFAULT_PROFILES = ("industrie", "logistique")


@dataclass(frozen=True)
class ScoringProfile:
    """The columns a scoring profile added to the parcels (``None`` when absent).

    Attributes
    ----------
    name
        Profile name (``industrie``).
    label
        French label for titles and legends.
    score, classe, exclu, exclusions, raisons, fiabilite
        Column names (``score_industrie``…), or ``None`` when the column is absent.
    criteria
        ``(column, French label)`` of each ``contrib_<profile>_<critere>`` column.
    """

    name: str
    label: str
    score: str | None
    classe: str | None
    exclu: str | None
    exclusions: str | None
    raisons: str | None
    fiabilite: str | None
    criteria: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> list[str]:
        """Every present column of the profile."""
        cols = [self.score, self.classe, self.exclu, self.exclusions, self.raisons,
                self.fiabilite, *(c for c, _ in self.criteria)]
        return [c for c in cols if c is not None]

    @property
    def formats(self) -> dict[str, str]:
        """Display format of each present column (see :mod:`observatoire.publish.carte`)."""
        out = {self.score: "score", self.classe: "text", self.exclu: "bool",
               self.exclusions: "phrases", self.raisons: "phrases", self.fiabilite: "pct"}
        out.update({c: "pts" for c, _ in self.criteria})
        return {k: v for k, v in out.items() if k is not None}


@dataclass(frozen=True)
class ProfileTexts:
    """Order and French labels of the scoring profiles.

    Attributes
    ----------
    order
        Profile names, the main one first.
    labels
        French label of each profile (by name) and of each criterion (by its
        ``contrib_<profil>_<critere>`` column).
    fiabilite_min
        Reliability threshold of each profile's classes (by name).
    sources
        Source kind feeding each criterion (by its ``contrib_<profil>_<critere>`` column).
    """

    order: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    fiabilite_min: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


def profile_texts(territory: Territory) -> ProfileTexts:
    """Read the order and labels of the territory's profiles (shipped ones included)."""
    from observatoire.analysis.scoring import indicator_source

    profiles = territory.profiles
    labels: dict[str, str] = {}
    sources: dict[str, str] = {}
    for p in profiles:
        labels[p.name] = p.label
        labels.update({f"contrib_{p.name}_{c.name}": c.label for c in p.criteria})
        sources.update({f"contrib_{p.name}_{c.name}": indicator_source(c.indicator) or ""
                        for c in p.criteria})
    return ProfileTexts(tuple(p.name for p in profiles), labels,
                        {p.name: p.fiabilite_min for p in profiles}, sources)


def scoring_profiles(columns: Iterable[str], texts: ProfileTexts | None = None
                     ) -> list[ScoringProfile]:
    """Find the scoring profiles whose columns the parcels hold.

    Parameters
    ----------
    columns
        Columns of the parcels layer (``frame.columns``), with or without scores.
    texts
        Order and labels of the profiles (:func:`profile_texts`); without it,
        shipped profiles (:data:`DEFAULT_PROFILES`) come first, then the others
        by name, labelled from their column names.

    Returns
    -------
    list of ScoringProfile
        Empty when the parcels carry no score, class or exclusion column.
    """
    texts = texts or ProfileTexts()
    cols = [str(c) for c in columns]
    names: set[str] = set()
    for prefix in ("score_", "classe_", "exclu_"):
        names.update(c[len(prefix):] for c in cols if c.startswith(prefix) and len(c) > len(prefix))
    rank = {n: i for i, n in enumerate([*texts.order, *DEFAULT_PROFILES])}
    found = sorted(names, key=lambda n: (rank.get(n, len(rank)), n))
    profiles = []
    for name in found:
        def col(stem: str, name: str = name) -> str | None:
            return f"{stem}_{name}" if f"{stem}_{name}" in cols else None

        prefix = f"contrib_{name}_"
        criteria = tuple((c, _criterion_label(texts.labels.get(c, c[len(prefix):])))
                         for c in cols if c.startswith(prefix) and len(c) > len(prefix))
        profiles.append(ScoringProfile(
            name=name, label=texts.labels.get(name, name.replace("_", " ")), score=col("score"),
            classe=col("classe"),
            exclu=col("exclu"), exclusions=col("exclusions"), raisons=col("raisons"),
            fiabilite=col("fiabilite"), criteria=criteria))
    return profiles


def _criterion_label(stem: str) -> str:
    text = stem.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


#: Months in French, for :func:`french_date`.
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre")


def french_date(value: dt.date | str) -> str:
    """Format a date the French way: ``3 décembre 2026``, ``1er janvier 2026``.

    Parameters
    ----------
    value
        A date, or an ISO 8601 date or date-time (``2026-12-03``,
        ``2026-12-03T18:48:10+00:00``: the date as written).

    Returns
    -------
    str
        Day (``1er`` for the first), month in letters, year.

    Raises
    ------
    ValueError
        When ``value`` is a text that is not an ISO 8601 date.
    """
    day = dt.datetime.fromisoformat(value).date() if isinstance(value, str) else value
    return f"{'1er' if day.day == 1 else day.day} {MONTHS[day.month - 1]} {day.year}"


# --------------------------------------------------------------------------- formatting


def number(value: float | int | None, decimals: int = 0) -> str:
    """Format a number the French way (``12 345,6``); ``—`` for a missing value."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or pd.isna(value):
        return "—"
    text = f"{float(value):,.{decimals}f}"
    return text.replace(",", "\u202f").replace(".", ",")


def hectares(m2: float | None) -> str:
    """Format square metres as hectares (``12,3 ha``)."""
    return "—" if m2 is None or pd.isna(m2) else f"{number(m2 / 10_000, 1)} ha"


def percent(share: float | None) -> str:
    """Format a share (0–1) as a percentage (``12 %``)."""
    return "—" if share is None or pd.isna(share) else f"{number(share * 100, 0)}\u00a0%"


def surface_m2(frame: pd.DataFrame) -> pd.Series:
    """Return the area of each feature (m²): its ``surface_m2``, else its geometry's."""
    if "surface_m2" in frame.columns:
        return pd.to_numeric(frame["surface_m2"], errors="coerce")
    return pd.Series(frame.geometry.area, index=frame.index)


def vacancy_colour(rate: float | None) -> str:
    """Colour of a zone's vacancy rate (0–1), by the map's classes."""
    if rate is None or pd.isna(rate):
        return VACANCY_UNKNOWN_COLOUR
    for upper, colour, _ in VACANCY_CLASSES:
        if rate < upper:
            return colour
    return VACANCY_CLASSES[-1][1]
