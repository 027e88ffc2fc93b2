"""Command line: ``observatoire build``, ``validate``, ``fusion``.

The only module that configures logging output, prints and chooses exit codes.
A user error (bad territory file, unreadable source) prints one French line and
exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from observatoire import __version__
from observatoire.errors import ConfigError, ObservatoireError

DEFAULT_CONFIG = Path("data/sample/territoire.toml")
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="observatoire",
        description="Observatoire du foncier économique : construit, à partir des données "
                    "ouvertes d'un territoire, un GeoPackage, une carte et un rapport.",
    )
    parser.add_argument("--version", action="version", version=f"observatoire {__version__}")
    # -v/-q are accepted before or after the command (observatoire -q build, build -q).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="messages détaillés (et trace complète d'une erreur interne)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="n'afficher que les erreurs")
    parser.add_argument("-v", "--verbose", action="store_true", help="messages détaillés")
    parser.add_argument("-q", "--quiet", action="store_true", help="n'afficher que les erreurs")
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE")

    b = sub.add_parser("build", parents=[common], help="construire l'observatoire d'un territoire",
                       description="Lit les sources, calcule les indicateurs et les scores, "
                                   "écrit le GeoPackage, la carte et le rapport.")
    b.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help=f"fichier de territoire TOML (défaut : {DEFAULT_CONFIG})")
    b.add_argument("--partition", choices=("auto", "commune", "aucune"), default=None,
                   help="construire par partitions de communes (mémoire bornée) ou en une "
                        "passe ; remplace options.partition (défaut : auto, par partitions "
                        "au-delà de 16 Mo de fichiers de parcelles)")
    b.add_argument("--executeur", choices=("serie", "processus", "dask"), default=None,
                   help="calculer indicateurs et scores partition par partition : en série, "
                        "dans des processus de cette machine (un par cœur, moins un), ou sur "
                        "un cluster Dask (défaut : une construction par partitions calcule "
                        "dans un second processus quand la machine a deux cœurs ou plus)")
    b.add_argument("--scheduler", default=None, metavar="tcp://HÔTE:PORT",
                   help="ordonnanceur Dask à utiliser (défaut avec --executeur dask : un "
                        "cluster local)")
    b.add_argument("--out", type=Path, default=None,
                   help="dossier de sortie (défaut : sorties.dossier du fichier, sinon "
                        "data/out/<territoire>)")

    v = sub.add_parser("validate", parents=[common],
                       help="vérifier un fichier de territoire et ses sources sans rien construire")
    v.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help=f"fichier de territoire TOML (défaut : {DEFAULT_CONFIG})")

    f = sub.add_parser("fusion", parents=[common],
                       help="fusionner les observatoires de plusieurs départements",
                       description="Ajoute bout à bout les couches de plusieurs "
                                   "observatoire.gpkg (un par département) dans un seul "
                                   "GeoPackage, sans les entités de contexte lues en double "
                                   "dans les marges de 5 km ; la fusion est notée dans la "
                                   "table « fusion ».")
    f.add_argument("entrees", nargs="+", type=Path, metavar="OBSERVATOIRE.gpkg",
                   help="GeoPackages produits par « observatoire build »")
    f.add_argument("-o", "--out", type=Path, required=True,
                   help="GeoPackage fusionné à produire (remplacé seulement si la fusion "
                        "réussit)")

    d = sub.add_parser("deps", parents=[common],
                       help="lister les fichiers d'entrée d'un territoire (pour make)")
    d.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    return parser


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
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.WARNING
    handler = logging.StreamHandler()
    handler.setFormatter(_FrenchFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    if not getattr(args, "verbose", False):
        # dask.distributed logs every worker start and stop at INFO.
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if args.command == "build":
            return _build(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "deps":
            return _deps(args)
        if args.command == "fusion":
            return _fusion(args)
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


def _build(args: argparse.Namespace) -> int:
    from observatoire.build import build
    from observatoire.config import load_territory

    territory = load_territory(args.config, output_dir=args.out)
    if args.partition is not None:
        territory = dataclasses.replace(
            territory, options={**territory.options, "partition": args.partition})
    quiet = args.quiet
    start = time.perf_counter()

    def progress(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

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
        for path in result.outputs:
            print(f"  {_display(path)}")
        print(f"Terminé en {time.perf_counter() - start:.1f} s.")
    return 0


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
