"""Regenerate the table of French communes and EPCI shipped in ``observatoire/data/decoupage``.

The table is derived, without any hand edit, from the npm package
``@etalab/decoupage-administratif`` (Etalab / DINUM, data under the Licence Ouverte
2.0: the INSEE's Code officiel géographique, the DGCL's list of EPCI à fiscalité
propre). The package's tarball is fetched with ``npm pack`` (or given with
``--tgz``) and its ``data/communes.json``, ``data/epci.json`` and
``data/departements.json`` are read from it directly.

Files written (deterministic: the same package gives the same bytes):

- ``communes.csv.gz``: one row per code, ``;``-separated, UTF-8, columns
  ``code;type;nom;departement;commune;epci``:

  - ``type`` is ``commune-actuelle``, ``arrondissement-municipal``,
    ``commune-deleguee``, ``commune-associee`` (as the package says) or
    ``ancien-code``: a code listed in a current commune's ``anciensCodes`` that
    no other row holds (a commune merged without a commune déléguée); its
    ``nom`` is that of the commune holding it today;
  - ``commune`` is the current commune holding the row (empty for a current
    commune): the ``commune`` of an arrondissement, the ``chefLieu`` of a
    commune déléguée or associée, the holder of an old code;
  - ``epci`` is the SIREN of the current commune's EPCI à fiscalité propre
    (empty for the other rows, and for the few communes outside any EPCI);
  - a code may appear twice (a commune nouvelle and its commune déléguée of the
    same code): rows are sorted by code, then in the order of the types above;

- ``epci.csv``: ``siren;nom;type`` (CC, CA, CU, METRO, MET69);
- ``departements.csv``: ``code;nom;region;zone`` (metro, drom, com);
- ``source.json``: the package's name and version, the tarball's SHA-256, the
  licence, the row counts.

Usage::

    python scripts/decoupage_administratif.py                 # npm pack of VERSION
    python scripts/decoupage_administratif.py --version 6.0.0
    python scripts/decoupage_administratif.py --tgz etalab-decoupage-administratif-6.0.0.tgz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@etalab/decoupage-administratif"
#: The package version read by default (its README: 6.0.0 is the 2026 vintage).
VERSION = "6.0.0"
OUT = Path(__file__).resolve().parents[1] / "observatoire" / "data" / "decoupage"
TYPES = ("commune-actuelle", "arrondissement-municipal", "commune-deleguee",
         "commune-associee", "ancien-code")


def npm_pack(version: str, folder: Path) -> Path:
    """Fetch the package's tarball with ``npm pack`` into ``folder``."""
    done = subprocess.run(["npm", "pack", f"{PACKAGE}@{version}", "--silent"], cwd=folder,
                          check=True, capture_output=True, text=True)
    return folder / done.stdout.strip().splitlines()[-1]


def read_package(tgz: Path) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """Return package.json, communes, EPCI and départements from the tarball."""
    with tarfile.open(tgz, "r:gz") as tar:
        def load(name: str) -> object:
            member = tar.extractfile(f"package/{name}")
            assert member is not None, name
            return json.load(member)

        return (load("package.json"), load("data/communes.json"),  # type: ignore[return-value]
                load("data/epci.json"), load("data/departements.json"))


def commune_rows(communes: list[dict], epci: list[dict]) -> list[dict]:
    """One row per (code, type), with the holding commune and the EPCI."""
    epci_of = {m["code"]: e["code"] for e in epci for m in e["membres"]}
    rows = []
    for c in communes:
        kind = c["type"]
        if kind not in TYPES:
            raise ValueError(f"type de commune inattendu : {kind!r} ({c['code']})")
        holder = "" if kind == "commune-actuelle" else c.get("commune") or c.get("chefLieu", "")
        rows.append({"code": c["code"], "type": kind, "nom": c["nom"],
                     "departement": c["departement"], "commune": holder,
                     "epci": epci_of.get(c["code"], "") if kind == "commune-actuelle" else ""})
    held = {r["code"] for r in rows}
    for c in communes:
        if c["type"] != "commune-actuelle":
            continue
        for old in c.get("anciensCodes", []):
            if old not in held:
                rows.append({"code": old, "type": "ancien-code", "nom": c["nom"],
                             "departement": c["departement"], "commune": c["code"],
                             "epci": ""})
                held.add(old)
    rows.sort(key=lambda r: (r["code"], TYPES.index(r["type"])))
    return rows


def write_csv(rows: list[dict], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=";", lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=VERSION, help=f"version du paquet ({VERSION})")
    parser.add_argument("--tgz", type=Path, help="archive du paquet déjà téléchargée")
    parser.add_argument("--out", type=Path, default=OUT, help=f"dossier écrit ({OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz or npm_pack(args.version, Path(tmp))
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        package, communes, epci, departements = read_package(tgz)
    rows = commune_rows(communes, epci)
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_csv(rows, ["code", "type", "nom", "departement", "commune", "epci"])
    # No timestamp nor file name in the gzip header: the same package, the same bytes.
    (args.out / "communes.csv.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    (args.out / "epci.csv").write_bytes(write_csv(
        [{"siren": e["code"], "nom": e["nom"], "type": e["type"]}
         for e in sorted(epci, key=lambda e: e["code"])], ["siren", "nom", "type"]))
    (args.out / "departements.csv").write_bytes(write_csv(
        sorted(departements, key=lambda d: d["code"]), ["code", "nom", "region", "zone"]))
    counts = {kind: sum(r["type"] == kind for r in rows) for kind in TYPES}
    source = {
        "paquet": package["name"],
        "version": package["version"],
        "archive_sha256": digest,
        "depot": package.get("repository"),
        "licence_donnees": "Licence Ouverte / Open Licence 2.0 (Etalab)",
        "sources": "INSEE, Code officiel géographique ; DGCL, liste et composition des EPCI "
                   "à fiscalité propre",
        "lignes": counts,
        "epci": len(epci),
        "departements": len(departements),
    }
    (args.out / "source.json").write_text(json.dumps(source, ensure_ascii=False, indent=2)
                                          + "\n", encoding="utf-8")
    print(f"{args.out} : {len(rows)} codes ({counts}), {len(epci)} EPCI, "
          f"{len(departements)} départements ; {package['name']} {package['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
