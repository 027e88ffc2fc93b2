"""Time ``observatoire telecharger`` on Gennes against the tests' local copy of the publishers.

Run: ``.venv/bin/python scripts/mesure_telechargement.py`` (no internet needed); with
``--toutes``, every source the local copy serves for Gennes (BD TOPO, SIRENE,
Géorisques and PatriNat as well; the BD ALTI fixture covers Strasbourg, not Gennes).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import publishers  # noqa: E402

from observatoire.acquisition.http import Client  # noqa: E402
from observatoire.acquisition.telecharger import telecharger  # noqa: E402
from observatoire.acquisition.territoire import init_territory  # noqa: E402


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    pub = publishers.Publishers(f"http://127.0.0.1:{server.server_address[1]}",
                                publishers.sample_data())
    server.RequestHandlerClass = publishers._handler(pub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp())
    sources = (["cadastre", "zonage", "friches", "bdtopo", "sirene", "georisques", "patrinat"]
               if "--toutes" in sys.argv[1:] else ["cadastre", "zonage", "friches"])
    path = init_territory(folder / "gennes", communes=[publishers.INSEE], sources=sources)
    start = time.perf_counter()
    outcome = telecharger(path, client=Client(), mirror=pub.url)
    first = time.perf_counter() - start
    start = time.perf_counter()
    telecharger(path, client=Client(), mirror=pub.url)
    second = time.perf_counter() - start
    size = sum(f.stat().st_size for f in (folder / "gennes" / "cache").rglob("*") if f.is_file())
    print(f"premier téléchargement {first:.2f} s, second (304) {second:.2f} s, "
          f"cache {size / 1e3:.0f} ko, échecs : {sorted(outcome.failed) or 'aucun'}, "
          f"sources : {', '.join(sources)}")
    server.shutdown()


if __name__ == "__main__":
    main()
