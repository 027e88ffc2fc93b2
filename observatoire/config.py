"""The territory file: a TOML description of a territory and its sources.

The file is data, never code: it is parsed with :mod:`tomllib` and checked key by
key. Unknown keys, missing keys and bad values raise :class:`ConfigError` naming
the key (``sources.parcelles.chemin``) and how to fix it. Source paths are
resolved against the territory file's folder.

Everything the file sets is parsed here, once: ``[options]`` into :class:`Options`
(with the analysis options, the vacancy rule, the Mutafriches tables and the
partition size), ``[profils]`` merged with the shipped profiles into
:class:`~observatoire.profiles.Profile` objects. The rest of the package reads
these typed, frozen objects and never a TOML table; so ``validate`` refuses what
``build`` would refuse, before any source is read (:func:`read_territory`).

Example
-------
.. code-block:: toml

    [territoire]
    nom = "Gennes"
    communes = ["25267"]
    crs = "EPSG:2154"

    [sources.parcelles]
    chemin = "parcel.gpkg"
    format = "bdparcellaire"
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from observatoire.errors import ConfigError
from observatoire.profiles import Profile, load_profiles
from observatoire.sources import SOURCE_KINDS, SOURCES

if TYPE_CHECKING:
    from observatoire.analysis import AnalysisOptions
    from observatoire.analysis.mutabilite import Algorithme
    from observatoire.analysis.zae_inventory import VacancyRule

log = logging.getLogger(__name__)

#: Legal projected CRS of French territories (metropole and overseas).
LEGAL_CRS = {
    "EPSG:2154": "Lambert-93 (métropole)",
    "EPSG:5490": "RGAF09 / UTM 20N (Guadeloupe, Martinique)",
    "EPSG:2972": "RGFG95 / UTM 22N (Guyane)",
    "EPSG:2975": "RGR92 / UTM 40S (La Réunion)",
    "EPSG:4471": "RGM04 / UTM 38S (Mayotte)",
}

#: Publishers ``observatoire telecharger`` fetches (``[telechargement] sources``), in the
#: order they are fetched: the cadastre first, its commune outlines give the box of
#: the others.
ACQUISITION_SOURCES = ("cadastre", "zonage", "friches", "bdtopo", "bdalti", "sirene",
                       "georisques", "patrinat")
_MILLESIME = re.compile(r"latest|\d{4}-\d{2}-\d{2}")

CONSTRAINT_TYPES = (
    "inondation",
    "nature",
    "patrimoine",
    "risque_technologique",
    "autre",
)

_SOURCE_KEYS = {"chemin", "format", "couche", "crs", "champs", "encodage", "filtre",
                "producteur", "date"}
_CONSTRAINT_KEYS = _SOURCE_KEYS | {"nom", "type", "stricte"}
_INSEE = re.compile(r"^(\d{2}|2A|2B)\d{3}$")


@dataclass(frozen=True)
class Source:
    """One input of the territory.

    Attributes
    ----------
    kind
        The source family (``parcelles``, ``friches``…).
    paths
        Files, resolved against the territory file's folder (globs expanded).
    format
        Declared format, or ``auto``.
    layer
        Layer name inside the file (``None``: the only or first layer).
    crs
        CRS of the files, overriding their own: for files without ``.prj`` or
        whose ``.prj`` is wrong.
    fields
        Canonical field name → source field name overrides.
    encoding
        Attribute encoding to force (shapefiles without ``.cpg``).
    key
        The TOML key of this source, for error messages.
    name
        For constraint layers: their name.
    constraint_type
        For constraint layers: their kind (``inondation``, ``nature``…).
    strict
        For constraint layers: a parcel inside is excluded.
    producer
        Producer of the data, credited in the outputs (``producteur``); found from
        the format and the file when ``None``.
    date
        Date of the data (``date``, ``AAAA-MM-JJ``); read from the file when ``None``.
    """

    kind: str
    paths: tuple[Path, ...]
    format: str = "auto"
    layer: str | None = None
    crs: str | None = None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    encoding: str | None = None
    key: str = ""
    name: str | None = None
    constraint_type: str | None = None
    strict: bool = False
    producer: str | None = None
    date: str | None = None

    @property
    def path(self) -> Path:
        """The first (often only) file of the source."""
        return self.paths[0]


#: ``options.parcelles_par_partition`` by default: parcels analysed together (few calls,
#: each costs a fixed overhead; memory bounded by the partition).
PARCELLES_PAR_PARTITION = 40_000
#: ``options.partition`` of earlier versions (one pass or by partition): read, without effect.
PARTITION_MODES = ("auto", "commune", "aucune")


@dataclass(frozen=True)
class Options:
    """The ``[options]`` table of a territory file, checked; defaults for the keys not set.

    Attributes
    ----------
    analysis
        Road classes and thresholds of the candidate sites (``classes_routes``,
        ``seuil_bati_gisement``, ``score_min_gisement``).
    vacance
        Thresholds of the ZAE inventory (``[options.vacance]``).
    mutabilite
        The Mutafriches tables (``[options.mutabilite]``); ``None`` when turned off.
    date_observation
        Date of the observation; ``None``: the day of the build.
    carte, rapport, atlas
        Whether to publish the map, the report, the ZAE atlas.
    export_cnig
        ``options.export_cnig`` as written: ``True`` requires the EPCI, ``False``
        turns the export off, ``None`` (not written) exports when the EPCI is known.
    parcelles_par_partition
        Parcels analysed together (neighbouring communes grouped up to this
        number; a commune is never cut): every territory is built by partitions, a
        small one is a single partition.
    noms_communes
        INSEE code → name overriding the official names.
    dossier_intermediaire
        Folder of the staging store (the parcels by commune in GeoParquet), resolved
        against the territory file's folder; ``None``: beside the outputs. On a Dask
        cluster of several machines it must be a shared path every worker reaches.
    """

    analysis: AnalysisOptions
    vacance: VacancyRule
    mutabilite: Algorithme | None
    date_observation: dt.date | None = None
    carte: bool = True
    rapport: bool = True
    atlas: bool = True
    export_cnig: bool | None = None
    parcelles_par_partition: int = PARCELLES_PAR_PARTITION
    noms_communes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dossier_intermediaire: Path | None = None


@dataclass(frozen=True)
class Telechargement:
    """The ``[telechargement]`` table: what ``observatoire telecharger`` fetches.

    Attributes
    ----------
    sources
        Publishers to fetch, among :data:`ACQUISITION_SOURCES`.
    millesime
        Cadastre vintage: ``latest`` or ``AAAA-MM-JJ``.
    cache
        The download cache folder (resolved against the territory file's folder).
    """

    sources: tuple[str, ...]
    millesime: str
    cache: Path


@dataclass(frozen=True)
class Territory:
    """A territory file, loaded and checked.

    Attributes
    ----------
    name
        Human name of the territory.
    slug
        ASCII identifier used for output folders.
    communes
        INSEE codes of the communes.
    crs
        The legal CRS every layer is brought to.
    sources
        Single sources by kind.
    constraints
        Constraint layers, in file order.
    output_dir
        Folder of the outputs.
    options
        The ``[options]`` table, parsed.
    profiles
        The scoring profiles: the shipped ones (``observatoire/data/profils.toml``)
        overridden and completed by ``[profils]``, in order (the first one draws the
        candidate sites).
    path
        The territory file itself.
    epci_nom, epci_siren
        The intercommunality, for the CNIG export.
    """

    name: str
    slug: str
    communes: tuple[str, ...]
    crs: str
    sources: Mapping[str, Source]
    constraints: tuple[Source, ...]
    output_dir: Path
    options: Options
    profiles: tuple[Profile, ...]
    path: Path
    epci_nom: str | None = None
    epci_siren: str | None = None
    telechargement: Telechargement | None = None

    @property
    def gpkg_path(self) -> Path:
        """Path of the observatory GeoPackage."""
        return self.output_dir / "observatoire.gpkg"

    def source(self, kind: str) -> Source | None:
        """Return the source of ``kind``, or ``None`` when not configured."""
        return self.sources.get(kind)

    def all_sources(self) -> list[Source]:
        """Every configured source, single ones then constraints."""
        return [*self.sources.values(), *self.constraints]


_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "date_observation": (str, dt.date),
    "carte": bool,
    "rapport": bool,
    "atlas": bool,
    "partition": str,
    "parcelles_par_partition": int,
    "classes_routes": dict,
    "seuil_bati_gisement": (int, float),
    "score_min_gisement": (int, float),
    "vacance": dict,
    "export_cnig": bool,
    "noms_communes": dict,
    "mutabilite": dict,
    "dossier_intermediaire": str,
}


def slugify(text: str) -> str:
    """Return an ASCII, lower-case, dash-separated form of ``text``."""
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", norm).strip("-").lower()
    return slug or "territoire"


def _check_keys(table: Mapping[str, Any], allowed: set[str], prefix: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{path} : clé inconnue « {prefix}{unknown[0]} » ; "
            f"clés possibles : {', '.join(sorted(allowed))}"
        )


def _require(table: Mapping[str, Any], key: str, typ: type | tuple[type, ...], prefix: str,
             path: Path) -> Any:
    if key not in table:
        raise ConfigError(f"{path} : clé obligatoire « {prefix}{key} » absente ; ajoutez-la")
    return _typed(table[key], typ, f"{prefix}{key}", path)


def _typed(value: Any, typ: type | tuple[type, ...], key: str, path: Path) -> Any:
    # bool is an int in Python: refuse true/false where a number is expected.
    if isinstance(value, bool) and typ is not bool and (typ == (int, float) or typ is int):
        ok = False
    else:
        ok = isinstance(value, typ)
    if not ok:
        names = typ.__name__ if isinstance(typ, type) else " ou ".join(t.__name__ for t in typ)
        raise ConfigError(
            f"{path} : valeur invalide pour « {key} » : {value!r} (type attendu : {names})"
        )
    return value


def _resolve_paths(raw: Any, key: str, base: Path, path: Path) -> tuple[Path, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ConfigError(
            f"{path} : « {key} » doit être un chemin ou une liste de chemins (texte), "
            f"relatifs au dossier du fichier de territoire"
        )
    out: list[Path] = []
    for item in items:
        if "\x00" in item or not item.strip():
            raise ConfigError(f"{path} : « {key} » : chemin vide ou invalide {item!r}")
        p = Path(item).expanduser()
        full = p if p.is_absolute() else base / p
        if any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(str(full)))
            if not matches:
                raise ConfigError(f"{path} : « {key} » : aucun fichier ne correspond à « {item} »")
            out.extend(matches)
        else:
            out.append(full)
    # Order-independent: the same set of files always gives the same build.
    return tuple(sorted(dict.fromkeys(out)))


def _parse_source(kind: str, raw: Any, key: str, base: Path, path: Path) -> Source:
    if isinstance(raw, str):
        raw = {"chemin": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} : « {key} » doit être une table (chemin, format, couche…)")
    allowed = _CONSTRAINT_KEYS if kind == "contraintes" else _SOURCE_KEYS
    _check_keys(raw, allowed, f"{key}.", path)
    if "chemin" not in raw:
        raise ConfigError(f"{path} : clé obligatoire « {key}.chemin » absente ; ajoutez-la")
    paths = _resolve_paths(raw["chemin"], f"{key}.chemin", base, path)
    fmt = _typed(raw.get("format", "auto"), str, f"{key}.format", path)
    if fmt not in SOURCE_KINDS[kind].formats:
        raise ConfigError(
            f"{path} : valeur invalide pour « {key}.format » : {fmt!r} ; "
            f"formats possibles : {', '.join(SOURCE_KINDS[kind].formats)}"
        )
    crs = raw.get("crs")
    if crs is not None:
        crs = _check_crs(_typed(crs, str, f"{key}.crs", path), f"{key}.crs", path, legal=False)
    fields = _typed(raw.get("champs", {}), dict, f"{key}.champs", path)
    for k, v in fields.items():
        _typed(v, str, f"{key}.champs.{k}", path)
    extra: dict[str, Any] = {}
    if kind == "contraintes":
        extra["name"] = _require(raw, "nom", str, f"{key}.", path)
        ctype = _require(raw, "type", str, f"{key}.", path)
        if ctype not in CONSTRAINT_TYPES:
            raise ConfigError(
                f"{path} : valeur invalide pour « {key}.type » : {ctype!r} ; "
                f"types possibles : {', '.join(CONSTRAINT_TYPES)}"
            )
        extra["constraint_type"] = ctype
        extra["strict"] = _typed(raw.get("stricte", False), bool, f"{key}.stricte", path)
    if "producteur" in raw:
        producer = _typed(raw["producteur"], str, f"{key}.producteur", path).strip()
        if not producer:
            raise ConfigError(f"{path} : « {key}.producteur » est vide ; nommez le producteur "
                              f"des données (ex. \"IGN\") ou retirez la clé")
        extra["producer"] = producer
    if "date" in raw:
        extra["date"] = _source_date(raw["date"], f"{key}.date", path)
    return Source(
        kind=kind,
        paths=paths,
        format=fmt,
        layer=_typed(raw["couche"], str, f"{key}.couche", path) if "couche" in raw else None,
        crs=crs,
        fields=MappingProxyType(dict(fields)),
        encoding=(
            _check_encoding(_typed(raw["encodage"], str, f"{key}.encodage", path),
                            f"{key}.encodage", path) if "encodage" in raw else None
        ),
        key=key,
        **extra,
    )


def _source_date(value: Any, key: str, path: Path) -> str:
    """Read a date written as text (``"2024-03-01"``) or as a TOML date (``2024-03-01``)."""
    import datetime as dt

    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise ConfigError(
            f"{path} : valeur invalide pour « {key} » : {value!r} (date attendue, "
            f"AAAA-MM-JJ, ex. \"2024-03-01\")"
        )
    _check_date(value, key, path)
    return dt.date.fromisoformat(value).isoformat()


def _check_encoding(value: str, key: str, path: Path) -> str:
    import codecs

    try:
        codecs.lookup(value)
    except LookupError:
        raise ConfigError(
            f"{path} : valeur invalide pour « {key} » : {value!r} n'est pas un encodage connu "
            f"(exemples : \"utf-8\", \"latin-1\", \"cp1252\")"
        ) from None
    return value


def _check_crs(value: str, key: str, path: Path, *, legal: bool) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError as PyprojCRSError

    try:
        crs = CRS.from_user_input(value)
    except PyprojCRSError:
        raise ConfigError(
            f"{path} : valeur invalide pour « {key} » : {value!r} n'est pas un système de "
            f"coordonnées connu (exemple : \"EPSG:2154\")"
        ) from None
    epsg = crs.to_epsg()
    code = f"EPSG:{epsg}" if epsg else value
    if legal and code not in LEGAL_CRS:
        raise ConfigError(
            f"{path} : valeur invalide pour « {key} » : {value!r} n'est pas une projection "
            f"légale française ; choisissez parmi {', '.join(LEGAL_CRS)}"
        )
    return code


def declared_sources(text: str, path: Path) -> frozenset[str]:
    """Return the source kinds a territory file's text declares (``[sources.<kind>]``).

    For ``observatoire telecharger``, which writes the sources a user has not
    declared by hand.

    Raises
    ------
    ConfigError
        The text is not TOML.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} : TOML invalide ({exc}) ; corrigez la syntaxe") from None
    sources = doc.get("sources", {})
    return frozenset(sources) if isinstance(sources, dict) else frozenset()


def declared_constraint_names(text: str) -> frozenset[str]:
    """Return the names of the ``[[sources.contraintes]]`` a territory file's text declares.

    Text that is not TOML declares none (:func:`declared_sources` names the error).
    """
    try:
        sources = tomllib.loads(text).get("sources", {})
    except tomllib.TOMLDecodeError:
        return frozenset()
    items = sources.get("contraintes", []) if isinstance(sources, dict) else []
    if not isinstance(items, list):
        return frozenset()
    return frozenset(str(c.get("nom")) for c in items if isinstance(c, dict))


def source_table(chunk: str, kind: str) -> dict[str, Any] | None:
    """Return the table of one ``[sources.<kind>]`` (or first ``[[sources.<kind>]]``) chunk.

    For the block ``observatoire telecharger`` generates; ``None`` when the chunk is
    not TOML or holds no such table.
    """
    try:
        table = tomllib.loads(chunk)["sources"][kind]
    except (tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    table = table[0] if isinstance(table, list) and table else table
    return table if isinstance(table, dict) else None


def load_territory(path: str | Path, *, output_dir: str | Path | None = None) -> Territory:
    """Load and check a territory file.

    Parameters
    ----------
    path
        The TOML territory file.
    output_dir
        Overrides ``sorties.dossier``.

    Returns
    -------
    Territory
        The checked, frozen description of the territory.

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or a key is unknown, missing or wrong;
        for the settings, the first of :func:`read_territory`'s problems.
    """
    territory, problems = read_territory(path, output_dir=output_dir)
    if problems:
        raise problems[0][1]
    return territory


def read_territory(path: str | Path, *, output_dir: str | Path | None = None
                   ) -> tuple[Territory, list[tuple[str, ConfigError]]]:
    """Read a territory file, collecting every settings problem rather than the first.

    The file's shape (unknown keys, types, sources, dates, Mutafriches tables) is
    checked as it is read, and its first fault raised. The settings are then
    checked section by section — the profiles (``profils``), the options
    (``options``), the constraint names (``sources.contraintes``) and the CNIG
    export's prerequisites (``options.export_cnig``) — and each section's first
    problem is returned: :func:`load_territory` (the build) raises the first one,
    ``validate`` lists them all and still reads the sources. A section at fault is
    given its defaults in the territory returned.

    Parameters
    ----------
    path
        The TOML territory file.
    output_dir
        Overrides ``sorties.dossier``.

    Returns
    -------
    tuple
        The territory, and the key and error of each section at fault, in the
        order above (empty when the build may start).

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or a key is unknown, missing or wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path} : fichier de territoire introuvable ; indiquez un fichier TOML existant "
            f"(--config)"
        )
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} : TOML invalide ({exc}) ; corrigez la syntaxe") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} : le fichier doit être encodé en UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path} : fichier de territoire illisible ({exc.strerror})") from None
    base = path.resolve().parent
    _check_keys(doc, {"territoire", "sources", "sorties", "options", "profils",
                      "telechargement"}, "", path)
    telechargement = _telechargement(doc.get("telechargement"), base, path)

    terr = _require(doc, "territoire", dict, "", path)
    _check_keys(terr, {"nom", "communes", "crs", "code", "epci_nom", "epci_siren",
                       "date_observation"}, "territoire.", path)
    name = _require(terr, "nom", str, "territoire.", path).strip()
    if not name:
        raise ConfigError(f"{path} : « territoire.nom » est vide ; donnez le nom du territoire")
    communes = _require(terr, "communes", list, "territoire.", path)
    if not communes:
        raise ConfigError(f"{path} : « territoire.communes » est vide ; listez les codes INSEE")
    for i, code in enumerate(communes):
        if not isinstance(code, str) or not _INSEE.match(code):
            raise ConfigError(
                f"{path} : valeur invalide pour « territoire.communes[{i}] » : {code!r} ; "
                f"un code INSEE s'écrit sur 5 caractères entre guillemets (ex. \"25267\")"
            )
    crs = _check_crs(_typed(terr.get("crs", "EPSG:2154"), str, "territoire.crs", path),
                     "territoire.crs", path, legal=True)
    slug = slugify(_typed(terr.get("code", name), str, "territoire.code", path))
    epci_siren = terr.get("epci_siren")
    if epci_siren is not None and not (isinstance(epci_siren, str) and re.fullmatch(r"\d{9}",
                                                                                    epci_siren)):
        raise ConfigError(
            f"{path} : valeur invalide pour « territoire.epci_siren » : {epci_siren!r} "
            f"(9 chiffres entre guillemets)"
        )

    if "sources" not in doc and telechargement is not None:
        raise ConfigError(
            f"{path} : aucune source déclarée ; téléchargez-les d'abord : observatoire "
            f"telecharger --config {path}")
    raw_sources = _require(doc, "sources", dict, "", path)
    _check_keys(raw_sources, set(SOURCE_KINDS), "sources.", path)
    sources: dict[str, Source] = {}
    constraints: list[Source] = []
    for spec in SOURCES:
        kind = spec.name
        if kind not in raw_sources:
            if spec.required:
                raise ConfigError(
                    f"{path} : clé obligatoire « sources.{kind} » absente ; "
                    f"déclarez au moins le cadastre"
                )
            continue
        raw = raw_sources[kind]
        if spec.is_list:
            if not isinstance(raw, list):
                raise ConfigError(
                    f"{path} : « sources.{kind} » doit être une liste de tables "
                    f"([[sources.{kind}]])"
                )
            for i, item in enumerate(raw):
                constraints.append(_parse_source(kind, item, f"sources.{kind}[{i}]", base, path))
            names = [c.name for c in constraints]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ConfigError(
                    f"{path} : nom de contrainte en double dans « sources.{kind} » : "
                    f"{sorted(dup, key=str)[0]!r} ; chaque contrainte doit avoir un nom unique"
                )
        else:
            sources[kind] = _parse_source(kind, raw, f"sources.{kind}", base, path)

    outputs = _typed(doc.get("sorties", {}), dict, "sorties", path)
    _check_keys(outputs, {"dossier"}, "sorties.", path)
    if output_dir is not None:
        out = Path(output_dir)
    elif "dossier" in outputs:
        out = Path(_typed(outputs["dossier"], str, "sorties.dossier", path))
        out = out if out.is_absolute() else base / out
    else:
        out = Path("data") / "out" / slug

    options = _typed(doc.get("options", {}), dict, "options", path)
    _check_keys(options, set(_OPTIONS), "options.", path)
    for key, typ in _OPTIONS.items():
        if key in options:
            _typed(options[key], typ, f"options.{key}", path)
    date_observation = _observation_date(terr, options, path)
    algorithm = _mutabilite_tables(options.get("mutabilite", {}), base, path)

    raw_profiles = _typed(doc.get("profils", {}), dict, "profils", path)
    for pname, prof in raw_profiles.items():
        _typed(prof, dict, f"profils.{pname}", path)

    problems: dict[str, ConfigError] = {}
    settings = _settings(options, raw_profiles, problems)
    constraint_names = [str(c.name) for c in constraints]
    try:
        from observatoire.analysis.indicators import check_constraint_names

        check_constraint_names(constraint_names)
    except ConfigError as exc:
        problems["sources.contraintes"] = exc
    epci_nom = terr.get("epci_nom")
    if options.get("export_cnig") is True:
        # Without the option, a territory lacking the EPCI only gets a warning.
        for key, value in (("epci_nom", epci_nom), ("epci_siren", epci_siren)):
            if not value:
                problems["options.export_cnig"] = ConfigError(
                    f"{path.resolve()} : clé « territoire.{key} » absente : l'export CNIG Sites "
                    f"Économiques (options.export_cnig = true) l'exige ; ajoutez-la au fichier "
                    f"de territoire, ou retirez options.export_cnig")
                break

    territory = Territory(
        name=name,
        slug=slug,
        communes=tuple(communes),
        crs=crs,
        sources=MappingProxyType(sources),
        constraints=tuple(constraints),
        output_dir=out,
        options=Options(
            analysis=settings.analysis,
            vacance=settings.vacance,
            mutabilite=algorithm,
            date_observation=date_observation,
            carte=options.get("carte", True),
            rapport=options.get("rapport", True),
            atlas=options.get("atlas", True),
            export_cnig=options.get("export_cnig"),
            parcelles_par_partition=settings.parcelles_par_partition,
            noms_communes=MappingProxyType(dict(options.get("noms_communes", {}))),
            dossier_intermediaire=(path.parent / options["dossier_intermediaire"]
                                   if options.get("dossier_intermediaire") else None),
        ),
        profiles=settings.profiles,
        path=path.resolve(),
        epci_nom=epci_nom,
        epci_siren=epci_siren,
        telechargement=telechargement,
    )
    order = ("profils", "options", "sources.contraintes", "options.export_cnig")
    return territory, [(key, problems[key]) for key in order if key in problems]


def _telechargement(raw: Any, base: Path, path: Path) -> Telechargement | None:
    """Check the ``[telechargement]`` table (``None`` when absent)."""
    if raw is None:
        return None
    table = _typed(raw, dict, "telechargement", path)
    _check_keys(table, {"sources", "millesime", "cache"}, "telechargement.", path)
    sources = _typed(table.get("sources", list(ACQUISITION_SOURCES)), list,
                     "telechargement.sources", path)
    for i, name in enumerate(sources):
        if name not in ACQUISITION_SOURCES:
            raise ConfigError(
                f"{path} : valeur invalide pour « telechargement.sources[{i}] » : {name!r} ; "
                f"sources possibles : {', '.join(ACQUISITION_SOURCES)}")
    millesime = _typed(table.get("millesime", "latest"), str, "telechargement.millesime", path)
    if not _MILLESIME.fullmatch(millesime):
        raise ConfigError(
            f"{path} : valeur invalide pour « telechargement.millesime » : {millesime!r} ; "
            f"écrivez \"latest\" ou une date AAAA-MM-JJ (ex. \"2025-04-01\")")
    if millesime != "latest":
        _check_date(millesime, "telechargement.millesime", path)
    cache = Path(_typed(table.get("cache", "cache"), str, "telechargement.cache", path))
    return Telechargement(tuple(dict.fromkeys(sources)), millesime,
                          cache if cache.is_absolute() else base / cache)


@dataclass(frozen=True)
class _Settings:
    """The settings of :func:`read_territory` whose problems are collected."""

    profiles: tuple[Profile, ...]
    analysis: AnalysisOptions
    vacance: VacancyRule
    parcelles_par_partition: int


def _settings(options: Mapping[str, Any], raw_profiles: Mapping[str, Any],
              problems: dict[str, ConfigError]) -> _Settings:
    """Parse the profiles and the options the analysis reads; record each section's problem.

    A section at fault gets its defaults (the shipped profiles, the default options).
    """
    from observatoire.analysis import AnalysisOptions, road_classes
    from observatoire.analysis.zae_inventory import VacancyRule

    analysis, vacance, per_partition = AnalysisOptions(), VacancyRule(), PARCELLES_PAR_PARTITION
    parsed_analysis = None
    try:
        parsed_analysis = analysis_options(options)
        vacance = vacancy_rule(options.get("vacance"))
        per_partition = partition_size(options)
        analysis = parsed_analysis
    except ConfigError as exc:
        problems["options"] = exc
        vacance, per_partition = VacancyRule(), PARCELLES_PAR_PARTITION
    try:
        profiles = load_profiles(raw_profiles)
        if parsed_analysis is not None:  # else reported under « options »
            road_classes(parsed_analysis.classes_routes, profiles)
    except ConfigError as exc:
        problems["profils"] = exc
        profiles = load_profiles()
    return _Settings(profiles=profiles, analysis=analysis, vacance=vacance,
                     parcelles_par_partition=per_partition)


def partition_size(options: Mapping[str, Any]) -> int:
    """Return ``options.parcelles_par_partition`` (checked), or its default.

    ``options.partition`` (``auto``, ``commune``, ``aucune``), from the versions
    that built small territories in one pass, is still accepted: every territory is
    now built by partitions, a small one being a single partition.
    """
    mode = options.get("partition")
    if mode is not None:
        if mode not in PARTITION_MODES:
            raise ConfigError(f"« options.partition » : valeur invalide {mode!r} ; "
                              f"choisissez {', '.join(PARTITION_MODES)}, ou retirez la clé "
                              f"(réglez plutôt options.parcelles_par_partition)")
        log.info("options.partition = %r est sans effet : tout territoire est construit par "
                 "partitions (taille : options.parcelles_par_partition)", mode)
    size = options.get("parcelles_par_partition", PARCELLES_PAR_PARTITION)
    if isinstance(size, bool) or size < 1:
        raise ConfigError(f"« options.parcelles_par_partition » : {size!r} ; donnez un nombre "
                          f"entier de parcelles, au moins 1 (défaut {PARCELLES_PAR_PARTITION})")
    return int(size)


def analysis_options(options: Mapping[str, Any]) -> AnalysisOptions:
    """Read and check the analysis options of ``[options]``.

    Parameters
    ----------
    options
        The ``[options]`` table.

    Returns
    -------
    AnalysisOptions
        The road classes and the thresholds of the candidate sites.

    Raises
    ------
    ConfigError
        Naming the key, e.g. ``options.classes_routes.principale``.
    """
    from observatoire.analysis import SCORE_MIN_GISEMENT, SEUIL_BATI_GISEMENT, AnalysisOptions
    from observatoire.analysis.distances import ROAD_CLASSES

    classes: dict[str, tuple[str, ...]] | None = None
    raw = options.get("classes_routes")
    if raw is not None:
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError("« options.classes_routes » : table { suffixe = [classes] } "
                              "attendue, ex. { principale = [\"autoroute\", \"principale\"] }")
        classes = {}
        for key, value in raw.items():
            where = f"options.classes_routes.{key}"
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(key)):
                raise ConfigError(f"« {where} » : nom invalide ; lettres minuscules, "
                                  f"chiffres et _")
            members = [value] if isinstance(value, str) else value
            if (not isinstance(members, list) or not members
                    or any(m not in ROAD_CLASSES for m in members)):
                raise ConfigError(f"« {where} » : valeur invalide {value!r} ; liste de "
                                  f"classes parmi {', '.join(ROAD_CLASSES)}")
            classes[str(key)] = tuple(members)
    seuil = _fraction(options, "seuil_bati_gisement", SEUIL_BATI_GISEMENT)
    score_min = float(options.get("score_min_gisement", SCORE_MIN_GISEMENT))
    if not 0 <= score_min <= 100:
        raise ConfigError(f"« options.score_min_gisement » : {score_min} hors de [0, 100]")
    return AnalysisOptions(classes_routes=classes, seuil_bati_gisement=seuil,
                           score_min_gisement=score_min)


def _fraction(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"« options.{key} » : valeur invalide {value!r} ; une part entre 0 et 1")
    return float(value)


#: Shares (0–1) among the keys of ``[options.vacance]``.
_SHARES = ("part_batie_min", "part_min_zae", "tolerance_limite")


def vacancy_rule(options: Mapping[str, Any] | None = None) -> VacancyRule:
    """Build the :class:`~observatoire.analysis.zae_inventory.VacancyRule` of ``[options.vacance]``.

    Parameters
    ----------
    options
        The ``[options.vacance]`` table (keys are the attribute names of
        ``VacancyRule``), or ``None`` for the defaults.

    Returns
    -------
    VacancyRule
        The thresholds.

    Raises
    ------
    ConfigError
        Unknown key, value of the wrong type, share outside 0–1, negative distance.
    """
    import math

    from observatoire.analysis.zae_inventory import VacancyRule

    if not options:
        return VacancyRule()
    known = {f.name: f for f in fields(VacancyRule)}
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise ConfigError(
                f"clé inconnue « options.vacance.{key} » ; clés possibles : "
                f"{', '.join(sorted(known))}"
            )
        if key in ("naf_exclus", "categories_exclues"):
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(
                    f"valeur invalide pour « options.vacance.{key} » : {value!r} (liste de "
                    f"textes attendue, ex. [\"68.20B\"])"
                )
            values[key] = tuple(value)
            continue
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)):
            raise ConfigError(
                f"valeur invalide pour « options.vacance.{key} » : {value!r} (nombre attendu)"
            )
        if value < 0 or (key in _SHARES and value > 1):
            bounds = "entre 0 et 1" if key in _SHARES else "positif"
            raise ConfigError(
                f"valeur invalide pour « options.vacance.{key} » : {value!r} (nombre {bounds} "
                f"attendu)"
            )
        values[key] = float(value)
    return VacancyRule(**values)


def _observation_date(terr: dict[str, Any], options: dict[str, Any],
                      path: Path) -> dt.date | None:
    """Return the date of the observation: ``[territoire]`` or ``[options]`` ``date_observation``.

    Written as text (``"2025-01-01"``) or as a TOML date (``2025-01-01``); given in
    both tables, the two must agree.
    """
    found: dict[str, dt.date] = {}
    for table, values in (("territoire", terr), ("options", options)):
        if "date_observation" not in values:
            continue
        key = f"{table}.date_observation"
        value = _typed(values["date_observation"], (str, dt.date), key, path)
        if isinstance(value, dt.datetime):
            raise ConfigError(f"{path} : valeur invalide pour « {key} » : {value!r} (une date "
                              f"AAAA-MM-JJ, sans heure)")
        if isinstance(value, str):
            _check_date(value, key, path)
            value = dt.date.fromisoformat(value)
        found[key] = value
    if len(set(found.values())) > 1:
        raise ConfigError(f"{path} : « territoire.date_observation » "
                          f"({found['territoire.date_observation']}) et "
                          f"« options.date_observation » ({found['options.date_observation']}) "
                          f"diffèrent ; n'en gardez qu'une")
    return next(iter(found.values()), None)


def _check_date(value: str, key: str, path: Path) -> None:
    import datetime as dt

    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{path} : valeur invalide pour « {key} » : {value!r} (format attendu AAAA-MM-JJ)"
        ) from None


#: Version of the Mutafriches algorithm used when the territory file names none.
MUTABILITE_VERSION = "v1.11"
_MUTABILITE_KEYS = {"version", "tables", "actif"}
#: The Mutafriches tables shipped with the package, one folder per version.
_MUTAFRICHES_DATA = Path(__file__).resolve().parent / "data" / "mutafriches"


def shipped_mutabilite_versions() -> list[str]:
    """Versions of the Mutafriches tables shipped in ``observatoire/data/mutafriches``."""
    return sorted(d.name for d in _MUTAFRICHES_DATA.iterdir()
                  if d.is_dir() and (d / "algorithme.json").is_file())


def _mutabilite_tables(raw: Any, base: Path, path: Path) -> Algorithme | None:
    """Check ``[options.mutabilite]`` and return the parsed algorithm (``None``: disabled)."""
    import json

    from observatoire.analysis.mutabilite import load_algorithm

    key = "options.mutabilite"
    raw = _typed(raw, dict, key, path)
    _check_keys(raw, _MUTABILITE_KEYS, f"{key}.", path)
    if not _typed(raw.get("actif", True), bool, f"{key}.actif", path):
        return None
    version = raw.get("version")
    if version is not None:
        version = _typed(version, str, f"{key}.version", path)
    if "tables" in raw:
        where = f"{key}.tables"
        file = Path(_typed(raw["tables"], str, where, path)).expanduser()
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            raise ConfigError(f"{path} : « {where} » : fichier introuvable ({file}) ; indiquez "
                              f"le fichier JSON des tables de l'algorithme Mutafriches (même "
                              f"format que observatoire/data/mutafriches/v1.11/algorithme.json)")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} : « {where} » : {file} illisible ({exc})") from None
    else:
        where = f"{key}.version"
        name = version or MUTABILITE_VERSION
        shipped = shipped_mutabilite_versions()
        if name not in shipped:
            raise ConfigError(
                f"{path} : valeur invalide pour « {where} » : {name!r} n'est pas livrée avec "
                f"l'observatoire (versions livrées : {', '.join(shipped)}) ; pour une autre "
                f"version, fournissez ses tables avec « {key}.tables »")
        file = _MUTAFRICHES_DATA / name / "algorithme.json"
        text = file.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} : « {where} » : JSON invalide dans {file} ({exc}) ; "
                          f"corrigez le fichier") from None
    try:
        algorithm = load_algorithm(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path} : « {where} » ({file}) : {exc} ; corrigez les tables") from None
    if version is not None and algorithm.version != version:
        raise ConfigError(
            f"{path} : « {key}.version » vaut {version!r} mais les tables {file} sont celles "
            f"de la version {algorithm.version!r} ; accordez les deux")
    return algorithm
