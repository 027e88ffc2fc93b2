"""The CNIG Sites Économiques standard (v2024-10) as shipped, and its validator.

The standard's files are shipped with the package (``observatoire/data/cnig``: the
official GeoPackage template and one ``schema.json`` per class, Licence Ouverte).
Validation is built at run time from the ``schema.json`` files (Table Schema): each
is turned into a JSON Schema and checked with :mod:`jsonschema` (types, required
values, patterns, ``constraints.enum``, dates, GeoJSON, geopoint, unique primary
key), plus the value lists that the PDF defines (§ 3.4) for the fields where
``schema.json`` leaves them open (:data:`LISTES_PDF`). Rows (:func:`validate_rows`),
CSV files (:func:`validate_csv`) and GeoPackages (:func:`validate_geopackage`) are
checked alike; every problem names the layer, row and field.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import jsonschema
import numpy as np
import pandas as pd
import pyogrio
import shapely

from observatoire.errors import SchemaError, SourceError

#: Folder of the standard's files shipped with the package.
CNIG_DIR = Path(__file__).resolve().parents[1] / "data" / "cnig"


#: The official GeoPackage template.
TEMPLATE = CNIG_DIR / "sites_economiques.gpkg"


#: GeoPackage layer → folder of its ``schema.json``.
CLASSES = {"site_eco": "site-eco", "terrain_eco": "terrain-eco",
           "etablissement": "etablissement", "pole_eco": "pole-eco"}


#: GeoPackage field → ``schema.json`` field, where the template renames them.
GPKG_TO_SCHEMA = {"siret": "SIRET", "siren": "SIREN", "ban_id": "ban-id", "bat_id": "bat-id"}


#: ``schema.json`` field holding each layer's geometry (``geom`` in the template).
GEOMETRY_FIELDS = {"site_eco": "site_geomsurf", "terrain_eco": "terr_geomsurf",
                   "etablissement": "etab_geompoint", "pole_eco": "pole_geompoint"}


#: Conventional values every list accepts (§ 3.4 and § 4.2 « attributs de type liste »).
VALEURS_CONVENTIONNELLES = ("inconnu", "autre", "sans objet")


#: Value lists of the standard's PDF, § 3.4 « Description des types énumérés », for the
#: fields whose ``schema.json`` gives no ``constraints.enum`` (its ``enum`` keys sit outside
#: ``constraints`` and bind no Table Schema validator). Each list also accepts
#: :data:`VALEURS_CONVENTIONNELLES` and the values of the field's ``enum`` in
#: ``schema.json``; the comparison ignores case, as the standard's own examples do
#: (« EPCI », « Localisation au bâtiment »).
LISTES_PDF: dict[str, tuple[str, ...]] = {
    # SITE-ECO
    "site_type": ("zone d'activité économique", "site économique historique hors ZAE",
                  "établissement économique isolé", "zone AU à vocation économique"),
    "site_etat": ("en projet", "création", "existant et actif", "projet de déclassement",
                  "déclassé"),
    "site_evol_urba": ("extension urbaine", "renouvellement urbain", "mixte"),
    "site_vocadomi": ("industrielle", "commerciale", "tertiaire", "artisanale", "touristique",
                      "portuaire", "aéroportuaire, aéronautique", "entrepôts, logistique",
                      "logistique agricole", "mixte"),
    "site_moa_type": ("commune", "epci", "société d'économie mixte",
                      "chambre de commerce et industrie", "Etat", "privé"),  # type moa_type
    # TERRAIN-ECO
    "terr_maitrise_fonc": (
        "personne physique", "Etat", "région", "département", "EPCI, structure intercommunale",
        "commune", "autre collectivité territoriale", "organisme de logement social",
        "établissement public foncier", "SEM ou SPLA", "aménageur", "investisseur professionnel",
        "établissement de santé et structure sociale",
        "établissement de tourisme et structure de loisir sportive ou cultuelle",
        "établissement industriel et commercial",
        "organisation de gestion foncière et immobilière",
        "établissement d’enseignement d'étude et de recherche"),
    "terr_stade_amngt": ("non aménageable", "non aménagé, non viabilisé",
                         "viabilisation en cours", "viabilisé non aménagé",
                         "viabilisé et aménagé"),
    "terr_stade_comm": ("non commercialisé", "non commercialisable", "en vente",
                        "en vente avec contraintes", "vendu, commercialisation achevée",
                        "réservé par option de réservation",
                        "réservé par une délibération de l'EPCI"),
    "terr_etat_occup": ("inoccupé", "occupation transitoire", "occupé", "vacant", "friche"),
    "terr_usage": ("voirie ou infrastructure", "parkings, stationnement",
                   "zone de retournement poids-lourds", "autres équipements publics",
                   "bâti productif", "bâti résidentiel", "bassin d'orage ou de rétention",
                   "espace vert", "espace naturel ou forestier", "espace agricole",
                   "zone de service partagée entre entreprises", "carrières, zones d'extraction",
                   "dépôt, stockage", "production d’énergie renouvelable"),
    # ETABLISSEMENT
    "geocodage_qualite": ("non localisé", "localisation à la commune",
                          "localisation au lieu-dit", "localisation à la rue (sans numéro)",
                          "localisation à la plaque adresse", "localisation à la parcelle",
                          "localisation au bâtiment"),
    # POLE-ECO (schema.json constrains these; listed for completeness of § 3.4)
    "pole_vocadomi": ("industrielle", "commerciale", "tertiaire", "artisanale", "touristique",
                      "portuaire", "aéroportuaire, aéronautique", "entrepôts, logistique",
                      "logistique agricole", "mixte, sans dominante"),
    "pole_rayonnement": ("international", "national", "régional", "local"),
}


_GEOJSON_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                  "MultiPolygon", "GeometryCollection")


#: Problems listed in one :class:`SchemaError` message (the count gives the rest).
MAX_PROBLEMS = 20


def _layer(classe: str) -> str:
    """Normalise a class name (``site-eco``, ``SITE-ECO``, ``site_eco``) to the layer name."""
    name = classe.strip().lower().replace("-", "_")
    if name not in CLASSES:
        raise ValueError(f"classe CNIG inconnue : {classe!r} ; classes : {', '.join(CLASSES)}")
    return name


@functools.lru_cache(maxsize=8)
def _table_schema_text(layer: str) -> str:
    path = CNIG_DIR / CLASSES[layer] / "schema.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(
            f"{path} : schéma CNIG introuvable ({exc.strerror}) ; réinstallez le paquet "
            f"(les fichiers du standard sont livrés dans observatoire/data/cnig)"
        ) from None


def table_schema(classe: str) -> dict[str, Any]:
    """Return the standard's Table Schema of a class, as shipped (``schema.json``).

    Parameters
    ----------
    classe
        ``site_eco``, ``terrain_eco``, ``etablissement`` or ``pole_eco`` (``site-eco``
        and ``SITE-ECO`` are accepted too).

    Returns
    -------
    dict
        The parsed ``schema.json``.
    """
    return json.loads(_table_schema_text(_layer(classe)))


def value_list(field: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Return the accepted values of a list field.

    They are the PDF's (§ 3.4), those of the field's ``enum`` in ``schema.json``, and
    the conventional ones; ``None`` for a field that is not a list of the PDF.
    """
    name = field["name"]
    if name not in LISTES_PDF:
        return None
    values = [*LISTES_PDF[name], *field.get("enum", ()),
              *field.get("constraints", {}).get("enum", ()), *VALEURS_CONVENTIONNELLES]
    return tuple(dict.fromkeys(values))


def _date_format(fmt: str) -> str:
    return f"cnig-date:{fmt}"


def _field_schema(field: Mapping[str, Any], *, value_lists: bool) -> dict[str, Any]:
    """JSON Schema of one Table Schema field; ``null`` is allowed unless it is required.

    Keywords other than ``type`` and ``enum`` (pattern, format, required) bind only
    values of their own type, so a null passes them and fails ``type`` alone.
    """
    ftype = field.get("type", "string")
    constraints = field.get("constraints", {})
    schema: dict[str, Any]
    if ftype == "string":
        schema = {"type": "string"}
        if field.get("format") == "email":
            schema["format"] = "email"
    elif ftype == "number":
        schema = {"type": "number"}
    elif ftype == "integer":
        schema = {"type": "integer"}
    elif ftype == "boolean":
        schema = {"type": "boolean"}
    elif ftype in ("date", "datetime", "year"):
        fmt = field.get("format", "%Y-%m-%d" if ftype == "date" else "%Y")
        fmt = "%Y-%m-%d" if fmt in ("default", "any") else fmt
        schema = {"type": "string", "format": _date_format(fmt)}
    elif ftype == "geojson":
        schema = {"type": "object", "format": "cnig-geojson", "required": ["type"],
                  "properties": {"type": {"enum": list(_GEOJSON_TYPES)}}}
    elif ftype == "geopoint":
        schema = {"type": "string", "format": "cnig-geopoint"}
    else:
        schema = {}
    if "pattern" in constraints:
        # Table Schema patterns match the whole value (XML Schema regular expressions).
        schema["pattern"] = f"^(?:{constraints['pattern']})$"
    if "enum" in constraints:
        schema["enum"] = list(constraints["enum"])
    allowed = value_list(field) if value_lists else None
    if allowed is not None and "enum" not in schema:
        schema["pattern"] = "(?i)^(?:" + "|".join(re.escape(v) for v in allowed) + ")$"
    for key in ("minLength", "maxLength", "minimum", "maximum"):
        if key in constraints:
            schema[key] = constraints[key]
    if not constraints.get("required") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def json_schema(classe: str, *, value_lists: bool = True) -> dict[str, Any]:
    """Generate the JSON Schema of one row of a class from its shipped ``schema.json``.

    Parameters
    ----------
    classe
        The class (``site_eco``…).
    value_lists
        Also require the PDF's value lists (:data:`LISTES_PDF`).

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12) for a row given as a mapping field → value,
        missing values being ``None``.
    """
    ts = table_schema(classe)
    fields = ts["fields"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": ts.get("title", classe), "type": "object",
            "properties": {f["name"]: _field_schema(f, value_lists=value_lists) for f in fields},
            "required": [f["name"] for f in fields if f.get("constraints", {}).get("required")]}


_FORMATS = jsonschema.FormatChecker(())


@_FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value))


@_FORMATS.checks("cnig-geopoint")
def _is_geopoint(value: object) -> bool:
    if not isinstance(value, str):
        return True
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*", value)
    return m is not None and abs(float(m.group(1))) <= 180 and abs(float(m.group(2))) <= 90


@_FORMATS.checks("cnig-geojson")
def _is_geojson(value: object) -> bool:
    if not isinstance(value, dict):
        return True
    if value.get("type") == "GeometryCollection":
        return isinstance(value.get("geometries"), list)
    return isinstance(value.get("coordinates"), list)


def _date_checker(fmt: str) -> Any:
    def check(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            dt.datetime.strptime(value, fmt)
        except ValueError:
            return False
        return True
    return check


for _fmt in ("%Y-%m-%d", "%Y"):
    _FORMATS.checks(_date_format(_fmt))(_date_checker(_fmt))


@functools.lru_cache(maxsize=16)
def _field_validators(layer: str, value_lists: bool
                      ) -> tuple[dict[str, jsonschema.protocols.Validator], tuple[str, ...]]:
    """Return a validator per field (the row schema's properties) and the required fields."""
    schema = json_schema(layer, value_lists=value_lists)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validators = {name: cls(sub, format_checker=_FORMATS)
                  for name, sub in schema["properties"].items()}
    return validators, tuple(schema["required"])


#: Python types of the JSON types, exactly (``bool`` is not a number here).
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "null": (type(None),), "number": (int, float), "integer": (int,),
    "boolean": (bool,)}


@functools.lru_cache(maxsize=16)
def _plain_types(layer: str, value_lists: bool) -> dict[str, frozenset[type]]:
    """Python types that a field whose schema is only a ``type`` accepts without validation.

    A value of such a type is valid whatever it is: the validator is not called for
    it (most distinct values are identifiers, areas and texts of this kind).
    """
    schema = json_schema(layer, value_lists=value_lists)
    plain: dict[str, frozenset[type]] = {}
    for name, sub in schema["properties"].items():
        if set(sub) != {"type"}:
            continue
        kinds = [sub["type"]] if isinstance(sub["type"], str) else sub["type"]
        if all(k in _PYTHON_TYPES for k in kinds):
            plain[name] = frozenset(t for k in kinds for t in _PYTHON_TYPES[k])
    return plain


@functools.lru_cache(maxsize=16)
def _plain_patterns(layer: str, value_lists: bool) -> dict[str, re.Pattern[str]]:
    """Compiled pattern of each field whose schema is a text ``type`` and a ``pattern`` only.

    A text matching it is valid: the validator (which tests ``re.search`` alike) is
    not called for it (identifiers, parcel lists, value lists).
    """
    schema = json_schema(layer, value_lists=value_lists)
    out = {}
    for name, sub in schema["properties"].items():
        kinds = [sub.get("type")] if isinstance(sub.get("type"), str) else sub.get("type", [])
        if set(sub) == {"type", "pattern"} and "string" in kinds:
            out[name] = re.compile(sub["pattern"])
    return out


_TYPE_WORDS = {"string": "un texte", "number": "un nombre", "integer": "un entier",
               "object": "un objet GeoJSON", "boolean": "un booléen"}


_FORMAT_WORDS = {"email": "une adresse électronique",
                 "cnig-geopoint": "un point « longitude, latitude » en degrés",
                 "cnig-geojson": "une géométrie GeoJSON (coordinates ou geometries)",
                 _date_format("%Y-%m-%d"): "une date AAAA-MM-JJ",
                 _date_format("%Y"): "une année AAAA"}


def _describe(error: jsonschema.ValidationError, field: Mapping[str, Any] | None,
              value: Any) -> str:
    """French wording of one validation error of a field."""
    shown = repr(value) if not isinstance(value, dict) else "{…}"
    if len(shown) > 80:
        shown = shown[:77] + "…'"
    kind = error.validator
    if kind == "required" or (kind == "type" and value is None):
        return "valeur obligatoire manquante"
    if kind == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, str) else expected[0]
        return f"{_TYPE_WORDS.get(expected, expected)} est attendu, pas {shown}"
    if kind == "format":
        return f"{_FORMAT_WORDS.get(error.validator_value, error.validator_value)} est " \
               f"attendue, pas {shown}"
    if kind == "pattern":
        allowed = value_list(field) if field is not None else None
        if allowed is not None and field is not None and "pattern" not in field.get(
                "constraints", {}):
            return (f"valeur {shown} hors de la liste du standard (PDF § 3.4) ; valeurs "
                    f"possibles : {' | '.join(allowed)}")
        pattern = field.get("constraints", {}).get("pattern") if field else error.validator_value
        return f"valeur {shown} non conforme au motif du standard {pattern}"
    if kind == "enum":
        return f"valeur {shown} hors liste ; valeurs possibles : " + " | ".join(
            map(str, error.validator_value))
    return f"valeur {shown} refusée ({error.message})"


def _value_key(value: Any) -> Any:
    """Return a hashable key of a cell value: values of one key pass or fail the same checks.

    A GeoJSON mapping is keyed by what the field schemas look at (:func:`_field_schema`):
    its ``type`` and whether its ``coordinates`` or ``geometries`` are lists. Every
    geometry differs from the others: written out as text to be grouped, or checked
    one by one, it would cost more than all the other fields.
    """
    if isinstance(value, dict):
        kind = value.get("type")
        if kind is None or isinstance(kind, str):
            return ("object", "type" in value, kind, isinstance(value.get("coordinates"), list),
                    isinstance(value.get("geometries"), list))
        return ("object", id(value))
    if isinstance(value, list):
        return ("array", id(value))
    return (type(value), value)


#: Types of the values keyed by themselves in :func:`validate_rows`.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_ABSENT = object()


def validate_rows(rows: Sequence[Mapping[str, Any]], classe: str, *, value_lists: bool = True,
                  origin: str | None = None, first_row: int = 1,
                  seen: dict[Any, int] | None = None) -> None:
    """Validate rows of a CNIG class against its ``schema.json`` (and the PDF's lists).

    Parameters
    ----------
    rows
        One mapping per row, keyed by the ``schema.json`` field names; missing
        values are ``None``; numbers as numbers; GeoJSON as a mapping.
    classe
        The class (``site_eco``, ``terrain_eco``, ``etablissement``, ``pole_eco``).
    value_lists
        Also require the PDF's value lists (:data:`LISTES_PDF`).
    origin
        The file validated, for messages.
    first_row
        Number of the first row in messages (2 for a CSV below its header).
    seen
        Identifiers already met → their row number: pass the same dictionary to
        the calls validating a layer batch by batch, so that an identifier used
        twice is found across batches.

    Raises
    ------
    SchemaError
        Listing the problems (layer, row, identifier, field, what is wrong), at most
        :data:`MAX_PROBLEMS` of them, and their total.
    """
    layer = _layer(classe)
    names = list(_field_validators(layer, value_lists)[0])
    columns = {name: [row.get(name, _ABSENT) for row in rows] for name in names}
    key = _primary_key(layer)
    if key and key not in columns:
        columns[key] = [row.get(key, _ABSENT) for row in rows]
    validate_columns(columns, len(rows), layer, value_lists=value_lists, origin=origin,
                     first_row=first_row, seen=seen)


def _primary_key(layer: str) -> str | None:
    key = table_schema(layer).get("primaryKey")
    return key if isinstance(key, str) else (key[0] if key else None)


def validate_columns(columns: Mapping[str, Sequence[Any]], n_rows: int, classe: str, *,
                     value_lists: bool = True, origin: str | None = None, first_row: int = 1,
                     seen: dict[Any, int] | None = None) -> None:
    """Validate rows given column by column, as :func:`validate_rows` does.

    Parameters
    ----------
    columns
        Field name → its values, one per row (``None`` when missing); a field that
        is not given is absent from every row.
    n_rows
        The number of rows.
    classe, value_lists, origin, first_row, seen
        See :func:`validate_rows`.

    Raises
    ------
    SchemaError
        As :func:`validate_rows`.
    """
    layer = _layer(classe)
    fields = {f["name"]: f for f in table_schema(layer)["fields"]}
    validators, required = _field_validators(layer, value_lists)
    plain = _plain_types(layer, value_lists)
    patterns = _plain_patterns(layer, value_lists)
    found: list[tuple[int, int, str]] = []  # (row, field rank, message)
    # Each field's schema is checked once per distinct value: the same rules as the row
    # schema, without validating « 2025-03-01 » ten thousand times. The rows of a value
    # are looked for only when it fails.
    for rank, (name, validator) in enumerate(validators.items()):
        values = columns.get(name)
        if values is None:
            values = [_ABSENT] * n_rows
        kinds = {value.__class__ for value in values}
        keyed = len(kinds - {type(None)}) <= 1 and kinds <= _SCALARS
        distinct = ({value: value for value in set(values)} if keyed else
                    {_cell_key(value): value for value in values})
        accepted = plain.get(name, frozenset())
        pattern = patterns.get(name)
        failed: dict[Any, str] = {}
        for k, value in distinct.items():
            if value is _ABSENT:
                if name in required:
                    failed[k] = f"champ « {name} » : champ absent"
                continue
            if type(value) in accepted or (
                    pattern is not None and type(value) is str and pattern.search(value)):
                continue
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if error is not None:
                failed[k] = f"champ « {name} » : {_describe(error, fields.get(name), value)}"
        if failed:
            for i, value in enumerate(values):
                message = failed.get(value if keyed else _cell_key(value))
                if message is not None:
                    found.append((i, rank, message))
    key = _primary_key(layer)
    idents = columns.get(key) if key else None
    if key and idents is not None:
        seen = {} if seen is None else seen
        for i, ident in enumerate(idents):
            if ident is None or ident is _ABSENT:
                continue
            if ident in seen:
                found.append((i, -1, f"champ « {key} » : identifiant {ident!r} déjà utilisé "
                                     f"ligne {seen[ident]}"))
            seen.setdefault(ident, i + first_row)
    found.sort(key=lambda p: (p[0], p[1]))
    total = len(found)
    problems = []
    for i, _, message in found[:MAX_PROBLEMS]:
        ident = idents[i] if idents is not None else None
        label = f" ({key} {ident})" if ident is not None and ident is not _ABSENT else ""
        problems.append(f"ligne {i + first_row}{label}, {message}")
    if problems:
        where = f"{origin}, " if origin else ""
        more = f" (et {total - len(problems)} autre(s))" if total > len(problems) else ""
        raise SchemaError(
            f"{where}couche « {layer} » non conforme au standard CNIG Sites Économiques "
            f"({total} problème(s)){more} : " + " ; ".join(problems)
        )


def _cell_key(value: Any) -> Any:
    """:func:`_value_key`, and the absent marker as itself."""
    return value if value is _ABSENT else _value_key(value)


def cast_cell(value: str | None, field: Mapping[str, Any], missing: Iterable[str]) -> Any:
    """Cast a CSV cell to its Table Schema type (left as text when it does not parse)."""
    if value is None or value in missing:
        return None
    ftype = field.get("type", "string")
    try:
        if ftype == "number":
            return float(value)
        if ftype == "integer":
            return int(value)
        if ftype == "geojson":
            return json.loads(value)
    except ValueError:
        return value
    return value


def validate_csv(path: str | Path, classe: str, *, value_lists: bool = True) -> int:
    """Validate a CSV file of a CNIG class (``;``-separated, UTF-8, as the standard's examples).

    Parameters
    ----------
    path
        The CSV file.
    classe
        Its class.
    value_lists
        Also require the PDF's value lists.

    Returns
    -------
    int
        The number of rows validated.

    Raises
    ------
    SchemaError
        When a header field is unknown or a row does not conform.
    SourceError
        When the file cannot be read.
    """
    path = Path(path)
    layer = _layer(classe)
    ts = table_schema(layer)
    fields = {f["name"]: f for f in ts["fields"]}
    missing = set(ts.get("missingValues", [""]))
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter=";")
            raw = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path} : CSV illisible ({exc}) ; il doit être en UTF-8, séparé "
                          f"par « ; »") from None
    unknown = [h for h in header if h not in fields]
    if unknown:
        raise SchemaError(
            f"{path}, couche « {layer} » : champ(s) inconnu(s) du standard : "
            f"{', '.join(unknown)}"
        )
    rows = [{name: cast_cell(r.get(name), fields[name], missing) for name in fields} for r in raw]
    validate_rows(rows, layer, value_lists=value_lists, origin=str(path), first_row=2)
    return len(rows)


def _geopoint(geoms: np.ndarray, crs: Any) -> list[str | None]:
    """« lon, lat » (degrees, 6 decimals) of each point."""
    if len(geoms) == 0:
        return []
    pts = gpd.GeoSeries(geoms, crs=crs).to_crs(4326)
    return [None if g is None or g.is_empty else f"{g.x:.6f}, {g.y:.6f}" for g in pts]


def gpkg_rows(frame: gpd.GeoDataFrame, layer: str) -> list[dict[str, Any]]:
    """Rows of a GeoPackage layer of the template keyed by ``schema.json`` field names.

    The geometry becomes the class's GeoJSON field (or the geopoint of a pole).
    """
    columns = _gpkg_columns(frame, layer, one_geojson_per_type=False)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _gpkg_columns(frame: gpd.GeoDataFrame, layer: str, *, one_geojson_per_type: bool
                  ) -> dict[str, list[Any]]:
    """Return the values of :func:`gpkg_rows` by field, in its order.

    With ``one_geojson_per_type``, geometries of a type share one GeoJSON.

    The GeoJSON of a geometry passes the standard's checks or fails them by its
    type alone (:func:`_value_key`): to validate a layer, one GeoJSON is made of
    the first geometry of each type and given to the rows of that type.
    """
    layer = _layer(layer)
    data = pd.DataFrame(frame.drop(columns=[frame.geometry.name]))
    data = data.drop(columns=[c for c in ("fid",) if c in data])
    data = data.rename(columns=GPKG_TO_SCHEMA)
    geoms = np.asarray(frame.geometry.values)
    gfield = GEOMETRY_FIELDS[layer]
    if layer == "pole_eco":
        values: list[Any] = _geopoint(geoms, frame.crs)
    else:
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        if one_geojson_per_type:
            kinds = np.where(missing, -1, shapely.get_type_id(geoms))
            found, first, inverse = np.unique(kinds, return_index=True, return_inverse=True)
            shared = [None if kind < 0 else json.loads(shapely.to_geojson(geoms[i]))
                      for kind, i in zip(found.tolist(), first.tolist(), strict=True)]
            values = [shared[k] for k in inverse.tolist()]
        else:
            values = [None if m else json.loads(text) for text, m in
                      zip(shapely.to_geojson(geoms).tolist(), missing.tolist(), strict=True)]
    # Column by column (``tolist`` gives Python numbers, not numpy's: the rows are as JSON
    # would read them), NULLs as ``None``.
    columns = {}
    for name in data.columns:
        cells = data[name].astype(object).tolist()
        nulls = data[name].isna().to_numpy()
        if nulls.any():
            cells = [None if null else v for v, null in zip(cells, nulls.tolist(), strict=True)]
        columns[str(name)] = cells
    columns[gfield] = values
    return columns


def validate_geopackage(path: str | Path, *, value_lists: bool = True) -> dict[str, int]:
    """Validate every layer of a CNIG Sites Économiques GeoPackage against the standard.

    Parameters
    ----------
    path
        The GeoPackage (the export, or any file following the official template).
    value_lists
        Also require the PDF's value lists.

    Returns
    -------
    dict
        Rows validated per layer.

    Raises
    ------
    SchemaError
        A layer is missing, or a row does not conform (layer, row, field named).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # GDAL warns about the staged file's extension (.tmp), harmlessly.
            warnings.simplefilter("ignore", RuntimeWarning)
            present = {str(n) for n, _ in pyogrio.list_layers(path)}
    except Exception as exc:  # GDAL raises several types for one unreadable file
        raise SourceError(f"{path} : GeoPackage illisible ({exc})") from None
    counts: dict[str, int] = {}
    for layer in CLASSES:
        if layer not in present:
            raise SchemaError(f"{path} : couche « {layer} » absente ; le modèle CNIG en a "
                              f"quatre : {', '.join(CLASSES)}")
        # Read and checked by batches: a row as Python objects (GeoJSON included)
        # weighs kilobytes, and a département's layer holds hundreds of thousands.
        seen: dict[Any, int] = {}
        start = 0
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                frame = pyogrio.read_dataframe(path, layer=layer, skip_features=start,
                                               max_features=VALIDATION_BATCH)
            if len(frame) or start == 0:
                columns = _gpkg_columns(frame, layer, one_geojson_per_type=True)
                validate_columns(columns, len(frame), layer, value_lists=value_lists,
                                 origin=str(path), first_row=start + 1, seen=seen)
            start += len(frame)
            if len(frame) < VALIDATION_BATCH:
                break
        counts[layer] = start
    return counts


#: Rows of a layer validated at once (bounds the memory of the validation).
VALIDATION_BATCH = 20_000


@functools.lru_cache(maxsize=1)
def template_fields() -> dict[str, list[tuple[str, str]]]:
    """Fields ``(name, numpy dtype)`` of each layer of the official template, in order."""
    out = {}
    for layer in CLASSES:
        info = pyogrio.read_info(TEMPLATE, layer=layer)
        out[layer] = list(zip(info["fields"].tolist(), info["dtypes"].tolist(), strict=True))
    return out
