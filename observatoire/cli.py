"""Command line: ``init``, ``telecharger``, ``build``, ``validate``, ``fusion``, ``deps``.

The only module that configures logging output, progress bars, prints and chooses
exit codes. A user error (bad territory file, unreadable source, bad arguments)
prints one French line and exits with status 2; no traceback. Everything argparse
writes is French too: usage, help, group titles and its error messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from observatoire import __version__
from observatoire.config import ACQUISITION_SOURCES
from observatoire.errors import ConfigError, ObservatoireError

EXAMPLE_CONFIG = "data/sample/territoire.toml"
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
CONFIG_HELP = f"fichier de territoire TOML, par exemple {EXAMPLE_CONFIG} (l'exemple livré)"

#: argparse's own English messages (its gettext message ids) and their French wording;
#: the placeholders are filled in the same order.
ARGPARSE_FRENCH = {
    "argument %(argument_name)s: %(message)s": "argument %s : %s",
    "unrecognized arguments: %s": "argument(s) non reconnu(s) : %s",
    "invalid choice: %(value)r (choose from %(choices)s)":
        "choix invalide : %s (choix possibles : %s)",
    "invalid %(type)s value: %(value)r": "valeur invalide (%s) : %s",
    "expected one argument": "une valeur est attendue",
    "expected at most one argument": "une valeur au plus est attendue",
    "expected at least one argument": "une valeur au moins est attendue",
    "expected %s argument": "%s valeur attendue",
    "expected %s arguments": "%s valeurs attendues",
    "ambiguous option: %(option)s could match %(matches)s":
        "option ambiguë : %s peut désigner %s",
    "ignored explicit argument %r": "valeur %s ignorée",
    "not allowed with argument %s": "incompatible avec l'argument %s",
    "one of the arguments %s is required": "l'un des arguments %s est obligatoire",
    "unknown parser %(parser_name)r (choices: %(choices)s)":
        "commande inconnue : %s (choix possibles : %s)",
}
_PLACEHOLDER = re.compile(r"%\\\(\w+\\\)[sr]|%[sr]")
_REQUIRED = re.compile(r"the following arguments are required: (.+)", re.DOTALL)


def french_message(message: str) -> str:
    """Return an error message of argparse in French (unchanged when it is not known)."""
    for english, french in ARGPARSE_FRENCH.items():
        found = re.fullmatch(_PLACEHOLDER.sub("(.+?)", re.escape(english)), message, re.DOTALL)
        if found:
            return french % tuple(french_message(part) for part in found.groups())
    return message


#: French punctuation kept with its word when the help is wrapped (a no-break space).
_NO_BREAK = str.maketrans({" ": "\u00a0"})


def _no_break(text: str) -> str:
    return re.sub(r"« | [:;»?!]", lambda m: m.group(0).translate(_NO_BREAK), text)


class _HelpFormatter(argparse.HelpFormatter):
    """Help in French: « utilisation : », « options : », no line starting with a colon.

    Each line of a description is wrapped alone; indented lines (examples) are kept
    as they are.
    """

    def add_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                  groups: Iterable[argparse._MutuallyExclusiveGroup],
                  prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "utilisation : " if prefix is None else prefix)

    def start_section(self, heading: str | None) -> None:
        # argparse writes « heading: »; French puts a space before the colon.
        super().start_section(f"{heading} " if heading else heading)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(_no_break(text), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            kept = line.startswith(" ") or not line
            lines.append(indent + line if kept
                         else super()._fill_text(_no_break(line), width, indent))
        return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """An argument parser that speaks French: usage, help, group titles and errors.

    argparse writes its own words in English (« usage: », « options », « show this
    help message and exit », its error messages): they are replaced here, and
    ``-h``/``--aide`` (``--help`` kept for habit) shows the help.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "arguments"
        self._optionals.title = "options"
        self.add_argument("-h", "--aide", "--help", action="help", default=argparse.SUPPRESS,
                          help="afficher cette aide et quitter")

    def error(self, message: str) -> NoReturn:
        """Print the usage and one French error line; exit with status 2."""
        missing = _REQUIRED.fullmatch(message)
        if missing:
            helps = {"/".join(a.option_strings) or str(a.metavar or a.dest): a.help
                     for a in self._actions}
            message = " ; ".join(f"{name} est obligatoire" + (f" : {helps[name]}"
                                                               if helps.get(name) else "")
                                 for name in missing.group(1).split(", "))
        else:
            message = french_message(message)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER_ERROR, f"erreur : {self.prog} : {message}\n")


def _positive(value: str) -> int:
    """Parse a whole number of at least 1 (argparse type; its error is in French)."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} : donnez un nombre entier, au moins 1")
    return n


def _parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="observatoire",
        description="Observatoire du foncier économique : construit, à partir des données "
                    "ouvertes d'un territoire, un GeoPackage, une carte et un rapport.",
        epilog="exemples :\n"
               "  observatoire init --epci 242500361 --dossier besancon\n"
               "  observatoire telecharger --config besancon/territoire.toml\n"
               f"  observatoire build --config {EXAMPLE_CONFIG}\n"
               "  observatoire validate --config mon_territoire.toml\n"
               "  observatoire build --aide        (l'aide d'une commande)",
    )
    parser.add_argument("--version", action="version", version=f"observatoire {__version__}",
                        help="afficher la version et quitter")
    # -v/-q are accepted before or after the command (observatoire -q build, build -q).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="messages détaillés (et trace complète d'une erreur interne)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="n'afficher que les erreurs")
    # The territory file, first argument of every subcommand that reads one.
    territory = argparse.ArgumentParser(add_help=False)
    territory.add_argument("--config", type=Path, required=True, metavar="TERRITOIRE.toml",
                           help=CONFIG_HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="messages détaillés")
    parser.add_argument("-q", "--quiet", action="store_true", help="n'afficher que les erreurs")
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE", title="commandes")

    i = sub.add_parser("init", parents=[common],
                       help="créer le dossier d'un territoire (EPCI ou communes)",
                       description="Écrit DOSSIER/territoire.toml : les communes membres et leurs "
                                   "noms (table du découpage administratif livrée), le nom et "
                                   "le SIREN de l'EPCI, la projection légale du département "
                                   "(outre-mer compris) et les sources à télécharger. Un code "
                                   "inconnu est refusé avec les codes les plus proches.",
                       epilog="exemples :\n"
                              "  observatoire init --epci 242500361 --dossier besancon\n"
                              "  observatoire init --communes 25267 25056 --dossier gennes")
    who = i.add_mutually_exclusive_group(required=True)
    who.add_argument("--epci", metavar="SIREN",
                     help="SIREN de l'EPCI à fiscalité propre (ses communes membres)")
    who.add_argument("--communes", nargs="+", metavar="INSEE",
                     help="codes INSEE des communes du territoire")
    i.add_argument("--dossier", type=Path, default=None, metavar="DOSSIER",
                   help="dossier du territoire à créer (défaut : le nom du territoire)")
    i.add_argument("--sources", nargs="+", default=None, metavar="SOURCE",
                   help=f"sources à télécharger parmi {', '.join(ACQUISITION_SOURCES)} "
                        f"(défaut : {', '.join(DEFAULT_SOURCES)})")

    t = sub.add_parser("telecharger", parents=[common, territory],
                       help="télécharger les données ouvertes d'un territoire",
                       description="Télécharge, pour les communes du territoire, le cadastre "
                                   "Etalab, le zonage des PLU/PLUi (Géoportail de l'Urbanisme), "
                                   "les friches (Cartofriches), la BD TOPO (bâtiments, routes, "
                                   "voies ferrées, postes électriques, mairies, découpés au "
                                   "territoire plus 5 km), le MNT BD ALTI 25 m, les "
                                   "établissements SIRENE géolocalisés, les contraintes de "
                                   "Géorisques (zones inondables des TRI, secteurs "
                                   "d'information sur les sols) et de PatriNat (Natura 2000, "
                                   "ZNIEFF) dans un cache daté, puis les "
                                   "déclare dans le fichier de territoire (entre ses lignes de "
                                   "marque) : « observatoire build » s'exécute ensuite sans "
                                   "retouche. Un fichier inchangé n'est pas retéléchargé. Une "
                                   "source en échec est nommée avec son URL et son statut HTTP, "
                                   "les autres sont gardées ; code de sortie : 0 si tout est "
                                   "téléchargé, sinon 64 + 1 (cadastre), 2 (zonage), 4 (friches), "
                                   "8 (BD TOPO), 16 (BD ALTI), 32 (SIRENE, Géorisques, "
                                   "PatriNat) additionnés.",
                       epilog="exemples :\n"
                              "  observatoire telecharger --config besancon/territoire.toml\n"
                              "  observatoire telecharger --config t.toml --millesime 2025-04-01 "
                              "--sources cadastre\n"
                              "  observatoire telecharger --config t.toml --verifier")
    t.add_argument("--millesime", default=None, metavar="latest|AAAA-MM-JJ",
                   help="millésime du cadastre (défaut : telechargement.millesime du fichier)")
    t.add_argument("--sources", nargs="+", default=None, metavar="SOURCE",
                   help="sources à télécharger (défaut : telechargement.sources du fichier)")
    t.add_argument("--hors-ligne", action="store_true",
                   help="n'utiliser que le cache, sans accès au réseau")
    t.add_argument("--verifier", action="store_true",
                   help="dire, sans rien télécharger, si un millésime plus récent est publié")
    t.add_argument("--delai", type=float, default=60.0, metavar="SECONDES",
                   help="délai d'attente d'une réponse avant un nouvel essai (défaut : 60)")

    b = sub.add_parser("build", parents=[common, territory],
                       help="construire l'observatoire d'un territoire",
                       description="Lit les sources, calcule les indicateurs et les scores, "
                                   "écrit le GeoPackage, la carte, le rapport et les exports ; "
                                   "les sorties précédentes ne sont remplacées qu'une fois "
                                   "toutes les nouvelles écrites.",
                       epilog="exemples :\n"
                              f"  observatoire build --config {EXAMPLE_CONFIG}\n"
                              "  observatoire build --config dep25.toml --executeur processus "
                              "--out /srv/observatoire/25")
    b.add_argument("--parcelles-par-partition", type=_positive, default=None, metavar="N",
                   help="parcelles analysées ensemble (communes voisines regroupées jusqu'à N "
                        "parcelles, une commune n'est jamais coupée) ; remplace "
                        "options.parcelles_par_partition (défaut : 40 000 ; un petit "
                        "territoire est une seule partition)")
    b.add_argument("--executeur", choices=("serie", "processus", "dask"), default=None,
                   help="analyser les partitions en série, dans des processus de cette "
                        "machine (un par cœur, moins un), ou sur un cluster Dask (défaut : "
                        "dans un second processus quand les fichiers de parcelles dépassent "
                        "16 Mo et que la machine a deux cœurs ou plus, en série sinon)")
    b.add_argument("--scheduler", default=None, metavar="tcp://HÔTE:PORT",
                   help="ordonnanceur Dask à utiliser (défaut avec --executeur dask : un "
                        "cluster local) ; ses workers lisent leurs partitions dans le dossier "
                        "intermédiaire, qui doit leur être accessible")
    b.add_argument("--dossier-intermediaire", type=Path, default=None, metavar="DOSSIER",
                   help="dossier des parcelles intermédiaires (GeoParquet par commune) ; "
                        "remplace options.dossier_intermediaire et la variable "
                        "OBSERVATOIRE_DOSSIER_INTERMEDIAIRE (défaut : le dossier de sortie) ; "
                        "sur un cluster de plusieurs machines, un chemin partagé monté au "
                        "même endroit sur chacune")
    b.add_argument("--out", type=Path, default=None, metavar="DOSSIER",
                   help="dossier de sortie (défaut : sorties.dossier du fichier, sinon "
                        "data/out/<territoire>)")

    sub.add_parser("validate", parents=[common, territory],
                   help="vérifier un fichier de territoire et ses sources sans rien construire",
                   description="Lit le fichier de territoire et chacune de ses sources comme "
                               "la construction les lirait, sans rien écrire : une ligne par "
                               "source (LU, RÉPARÉ, ou REFUSÉ avec la raison et la "
                               "correction). Code de sortie 0 si la construction peut se "
                               "faire, 2 sinon.",
                   epilog="exemples :\n"
                          f"  observatoire validate --config {EXAMPLE_CONFIG}\n"
                          "  observatoire validate --config mon_territoire.toml")

    f = sub.add_parser("fusion", parents=[common],
                       help="fusionner les observatoires de plusieurs départements",
                       description="Ajoute bout à bout les couches de plusieurs "
                                   "observatoire.gpkg (un par département) dans un seul "
                                   "GeoPackage, sans les entités de contexte lues en double "
                                   "dans les marges de 5 km ; la fusion est notée dans la "
                                   "table « fusion ».",
                       epilog="exemple :\n"
                              "  observatoire fusion -o france.gpkg dep-*/observatoire.gpkg")
    f.add_argument("entrees", nargs="+", type=Path, metavar="OBSERVATOIRE.gpkg",
                   help="GeoPackages produits par « observatoire build »")
    f.add_argument("-o", "--out", type=Path, required=True, metavar="FUSION.gpkg",
                   help="GeoPackage fusionné à produire (remplacé seulement si la fusion "
                        "réussit)")

    sub.add_parser("deps", parents=[common, territory],
                   help="lister les fichiers d'entrée d'un territoire (pour make)",
                   description="Écrit le chemin de chaque fichier source du territoire, un "
                               "par ligne : le Makefile reconstruit quand l'un d'eux change.",
                   epilog="exemple :\n"
                          f"  observatoire deps --config {EXAMPLE_CONFIG}")

    e = sub.add_parser("evolution", parents=[common, territory],
                       help="comparer deux observations de l'historique",
                       description="Compare deux observations de l'historique (dossier "
                                   "« historique » à côté de observatoire.gpkg, une observation "
                                   "par construction) : parcelles divisées, fusionnées, "
                                   "renumérotées, nouvellement bâties, gisements gagnés, perdus "
                                   "ou réduits, changements de classe ; foncier consommé et "
                                   "vacance par ZAE ; friches nouvelles, disparues ou de statut "
                                   "modifié. Écrit les couches evolution_parcelles, "
                                   "evolution_zae, evolution_friches et evolution_gisements "
                                   "dans le GeoPackage, et evolution.csv.",
                       epilog="exemples :\n"
                              f"  observatoire evolution --config {EXAMPLE_CONFIG}\n"
                              "  observatoire evolution --config mon_territoire.toml "
                              "--depuis 2023-01-01 --jusqua 2025-01-01")
    e.add_argument("--depuis", type=_date, default=None, metavar="AAAA-MM-JJ",
                   help="date de l'observation de départ (défaut : celle qui précède --jusqua)")
    e.add_argument("--jusqua", type=_date, default=None, metavar="AAAA-MM-JJ",
                   help="date de l'observation d'arrivée (défaut : la dernière)")
    e.add_argument("--out", type=Path, default=None, metavar="DOSSIER",
                   help="dossier de l'observatoire (défaut : sorties.dossier du fichier, "
                        "sinon data/out/<territoire>)")
    return parser


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"date invalide « {text} » : écrivez-la AAAA-MM-JJ, par exemple 2025-01-01"
        ) from None


class _FrenchFormatter(logging.Formatter):
    """Log lines as « avertissement : … » (the module name only in verbose mode)."""

    LEVELS = {"DEBUG": "détail", "INFO": "info", "WARNING": "avertissement",
              "ERROR": "erreur", "CRITICAL": "erreur"}

    def format(self, record: logging.LogRecord) -> str:
        level = self.LEVELS.get(record.levelname, record.levelname.lower())
        where = f" ({record.name})" if record.levelno < logging.WARNING else ""
        return f"{level}{where} : {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    handler = logging.StreamHandler()
    handler.setFormatter(_FrenchFormatter())
    # Other libraries say only their warnings: at DEBUG, matplotlib, PIL, fontTools,
    # urllib3 or pyogrio write hundreds of lines of their own a build. -v details the
    # observatoire's own stages.
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    if args.verbose and not args.quiet:
        logging.getLogger("observatoire").setLevel(logging.DEBUG)
    else:
        # dask.distributed logs every worker start and stop at INFO.
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "telecharger":
            return _telecharger(args)
        if args.command == "build":
            return _build(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "deps":
            return _deps(args)
        if args.command == "fusion":
            return _fusion(args)
        if args.command == "evolution":
            return _evolution(args)
    except ObservatoireError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # disk full, permission denied outside the readers
        place = f"{exc.filename} : " if exc.filename else ""
        print(f"erreur : {place}{exc.strerror or exc} ; les sorties précédentes sont intactes",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrompu : les sorties précédentes sont intactes", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line; the traceback with --verbose
        if args.verbose:
            raise
        message = " ".join(str(exc).split())[:300]
        print(f"erreur interne : {type(exc).__name__} : {message} ; relancez avec -v et "
              f"signalez-la", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return EXIT_USER_ERROR


DEFAULT_SOURCES = ("cadastre", "zonage", "friches")


def _init(args: argparse.Namespace) -> int:
    from observatoire.acquisition.territoire import init_territory, resolve_communes
    from observatoire.config import slugify

    name, rows, _ = resolve_communes(epci=args.epci, communes=args.communes or ())
    folder = args.dossier if args.dossier is not None else Path(slugify(name))
    path = init_territory(folder, epci=args.epci, communes=args.communes or (),
                          sources=args.sources or DEFAULT_SOURCES)
    if not args.quiet:
        print(f"Territoire « {name} » ({len(rows)} commune(s)) écrit : {_display(path)}")
        print(f"Suite : observatoire telecharger --config {_display(path)}")
    return 0


class _ByteBars:
    """A bar per download on a terminal: bytes, rate and time remaining (tqdm)."""

    def __call__(self, label: str, total: int | None) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, desc=f"  {label}", unit="o", unit_scale=True,
                    unit_divisor=1024, leave=False, dynamic_ncols=True, file=sys.stderr,
                    mininterval=0.5)


def _telecharger(args: argparse.Namespace) -> int:
    from observatoire.acquisition.http import Client, no_progress
    from observatoire.acquisition.telecharger import telecharger, verifier

    quiet = args.quiet
    bars = sys.stderr.isatty() and not quiet
    client = Client(timeout=args.delai, progress=_ByteBars() if bars else no_progress)
    if args.verifier:
        if args.hors_ligne:
            raise ConfigError("--verifier interroge les producteurs : il ne va pas avec "
                              "--hors-ligne")
        newer = False
        for line in verifier(args.config, client=client):
            state = ("plus récent publié" if line.newer else
                     "à jour" if line.published else "inconnu")
            newer |= line.newer
            print(f"  {line.source:<12} en cache : {line.cached or 'aucun':<10}  publié : "
                  f"{line.published or '—':<10}  {state}"
                  + (f" ({line.note})" if line.note else ""))
        return 0
    start = time.perf_counter()
    outcome = telecharger(args.config, sources=args.sources, millesime=args.millesime,
                          offline=args.hors_ligne, client=client)
    if not quiet:
        for name, items in outcome.fetched.items():
            for item in items:
                size = sum(p.stat().st_size for p in item.paths)
                print(f"  {name:<12} {item.kind:<12} {len(item.paths):>4} fichier(s) "
                      f"{size / 1e6:>9.1f} Mo  millésime {item.date}")
        if outcome.written:
            print(f"Sources déclarées dans {_display(args.config)} : "
                  f"{', '.join(outcome.written)}")
    for name, exc in outcome.failed.items():
        status = f"HTTP {exc.status}" if exc.status else "sans réponse"
        print(f"échec : {name} ({status}) : {exc}", file=sys.stderr)
    if not quiet:
        print(f"Terminé en {time.perf_counter() - start:.1f} s.")
    if outcome.failed:
        print(f"sources en échec : {', '.join(outcome.failed)} ; les autres sont gardées "
              f"(code de sortie {outcome.exit_status})", file=sys.stderr)
    return outcome.exit_status


def _build(args: argparse.Namespace) -> int:
    from observatoire.config import load_territory
    from observatoire.pipeline import build

    territory = load_territory(args.config, output_dir=args.out)
    if args.parcelles_par_partition is not None:
        territory = dataclasses.replace(territory, options=dataclasses.replace(
            territory.options, parcelles_par_partition=args.parcelles_par_partition))
    if args.dossier_intermediaire is not None:
        territory = dataclasses.replace(territory, options=dataclasses.replace(
            territory.options, dossier_intermediaire=args.dossier_intermediaire.resolve()))
    quiet = args.quiet
    progress = Progress(quiet=quiet, bars=sys.stderr.isatty())
    start = progress.start

    progress(f"Territoire : {territory.name} ({len(territory.communes)} commune(s), "
             f"{territory.crs})")
    try:
        if args.executeur is None and args.scheduler is not None:
            raise ConfigError("--scheduler ne sert qu'avec --executeur dask")
        if args.executeur is None:
            result = build(territory, progress=progress)
        else:
            from observatoire.executor import make_executor

            with make_executor(args.executeur, scheduler=args.scheduler) as executor:
                result = build(territory, progress=progress, executor=executor)
    except ObservatoireError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        print(f"échec : aucune sortie produite ; les sorties précédentes dans "
              f"{territory.output_dir} sont intactes", file=sys.stderr)
        return EXIT_USER_ERROR
    if not quiet:
        for r in result.reports:
            repairs = ", ".join(f"{k} : {v}" for k, v in sorted(r.repairs.items()))
            print(f"  source {r.kind:<18} {r.features_kept:>8} entités gardées / "
                  f"{r.features_read} lues" + (f" — {repairs}" if repairs else ""))
        print("Couches (entités, empreinte du contenu) :")
        for name, n in result.layer_counts.items():
            print(f"  {name:<20} {n:>8}  {result.checksums[name]}")
        print("Sorties :")
        for line in output_lines(result.outputs, territory.output_dir):
            print(f"  {line}")
        print(f"Terminé en {time.perf_counter() - start:.1f} s.")
    return 0


class Progress:
    """The build's progress: a timed line per stage; a bar over the long loops on a terminal.

    Parameters
    ----------
    quiet
        Print nothing.
    bars
        Draw a bar (tqdm, on standard error) over the loops the build counts
        (:func:`observatoire.progress.track`): when standard error is a terminal.
        The stage lines are the same either way.
    stream
        Where the bars go.
    """

    def __init__(self, *, quiet: bool, bars: bool, stream: Any = None) -> None:
        self.quiet = quiet
        self.bars = bars and not quiet
        self.stream = stream
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Print ``message`` after the time elapsed since the start."""
        if self.quiet:
            return
        line = f"[{time.perf_counter() - self.start:6.1f} s] {message}"
        if self.bars:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)  # above a bar being drawn
            sys.stdout.flush()
        else:
            print(line, flush=True)

    def track(self, items: Iterable[Any], *, total: int, label: str) -> Iterable[Any]:
        """Return ``items``, drawn as a bar while they are consumed when bars are on."""
        return self._bar(items, total, label) if self.bars else items

    def _bar(self, items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        # Warnings logged during the loop are written above the bar, not through it.
        with logging_redirect_tqdm(), tqdm(
                items, total=total, desc=f"  {label}", leave=False, dynamic_ncols=True,
                file=self.stream or sys.stderr, mininterval=0.5,
                bar_format="{desc} : {n_fmt}/{total_fmt} |{bar}| {elapsed} écoulé, "
                           "reste {remaining}") as bar:
            yield from bar


def _evolution(args: argparse.Namespace) -> int:
    from observatoire.config import load_territory
    from observatoire.observation.run import evolve

    territory = load_territory(args.config, output_dir=args.out)
    result, outputs = evolve(territory, depuis=args.depuis, jusqua=args.jusqua)
    if not args.quiet:
        print(f"Évolution du {result.depuis.strftime('%d/%m/%Y')} au "
              f"{result.jusqua.strftime('%d/%m/%Y')} :")
        for label, n in result.counts().items():
            print(f"  {label:<32} {n:>10}".replace(".", ","))
        print("Sorties :")
        for line in output_lines(outputs, territory.output_dir):
            print(f"  {line}")
    return 0


def output_lines(outputs: Sequence[Path], output_dir: Path) -> list[str]:
    """One line per output, but one for each group of files made per ZAE or per class.

    A département has hundreds of ZAE: their consultation files are summed up as
    « Consultation : 12 fichiers XLSX et 12 CSV dans …/consultation/ », their
    atlas sheets as « Atlas des ZAE : 13 fiches HTML et 13 PDF dans …/atlas/ »
    (cover included), and the CSV files of the CNIG export as one line, each
    where the first of its files was.
    """
    def consultation(n: Counter[str]) -> str:
        return (f"Consultation : {_count(n['.xlsx'], 'fichier XLSX', 'fichiers XLSX')} et "
                f"{n['.csv']} CSV")

    def atlas(n: Counter[str]) -> str:
        return (f"Atlas des ZAE : {_count(n['.html'], 'fiche HTML', 'fiches HTML')} et "
                f"{n['.pdf']} PDF")

    def cnig_csv(n: Counter[str]) -> str:
        return f"Export CNIG en CSV (data.gouv.fr) : {_count(n['.csv'], 'fichier', 'fichiers')}"

    def group(path: Path) -> tuple[Path, Any] | None:
        if path.parent == output_dir / "consultation":
            return path.parent, consultation
        if path.parent == output_dir / "atlas":
            return path.parent, atlas
        if path.parent == output_dir / "cnig" and path.suffix == ".csv":
            return path.parent, cnig_csv
        return None

    lines: list[str] = []
    done: set[Path] = set()
    for path in outputs:
        found = group(path)
        if path.name == "observations.json":  # the history's commit
            lines.append(f"Historique des observations : {_display(path.parent)}/")
        elif found is None:
            lines.append(_display(path))
        elif found[0] not in done:
            folder, describe = found
            done.add(folder)
            counts = Counter(p.suffix for p in outputs if group(p) == found)
            lines.append(f"{describe(counts)} dans {_display(folder)}/")
    return lines


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _fusion(args: argparse.Namespace) -> int:
    from observatoire.fusion import merge_geopackages

    quiet = args.quiet
    start = time.perf_counter()

    def progress(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    try:
        result = merge_geopackages(args.entrees, args.out, progress=progress)
    except ObservatoireError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        print(f"échec : {args.out} n'a pas été modifié", file=sys.stderr)
        return EXIT_USER_ERROR
    if not quiet:
        print("Couches (entités, retirées car lues en double, empreinte du contenu) :")
        for name, n in result.layer_counts.items():
            dropped = result.duplicates.get(name, 0) + result.other_territory.get(name, 0)
            print(f"  {name:<20} {n:>9} {dropped:>9}  {result.checksums[name]}")
        print(f"Sortie : {_display(result.gpkg)}")
        print(f"Terminé en {time.perf_counter() - start:.1f} s.")
    return 0


def _display(path: Path) -> str:
    """Show a path relative to the working folder when it is inside it."""
    full = path.resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


def _validate(args: argparse.Namespace) -> int:
    from observatoire.validate import validate_territory

    ok, lines = validate_territory(args.config)
    for line in lines:
        print(line)
    return 0 if ok else EXIT_USER_ERROR


def _deps(args: argparse.Namespace) -> int:
    from observatoire.config import load_territory
    from observatoire.ingest import source_paths

    territory = load_territory(args.config)
    for p in source_paths(territory):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
