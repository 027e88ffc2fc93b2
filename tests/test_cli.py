"""The command line on bad inputs: one clear line, exit status 2, previous outputs untouched.

Also the territory file as data (never code) and a build without network access.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLE
from test_bad_inputs import CORPUS, TERRITORY_CORPUS, write_territory

from observatoire.cli import main

SAMPLE_SOURCES = {
    "zonage": {"chemin": str(SAMPLE / "zoning.gpkg"), "couche": "zoning2"},
    "batiments": {"chemin": str(SAMPLE / "building.gpkg")},
    "routes": {"chemin": str(SAMPLE / "road.gpkg")},
    "friches": {"chemin": str(SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson"),
                "format": "cartofriches"},
}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every published output of a folder (temporary files excluded), by name."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A complete build of the sample: the outputs a failed build must leave intact."""
    folder = tmp_path_factory.mktemp("precedent")
    out = folder / "out"
    config = write_territory(folder, SAMPLE_SOURCES, out=out)
    assert main(["-q", "build", "--config", str(config)]) == 0
    outputs = snapshot(out)
    assert "observatoire.gpkg" in outputs and "carte.html" in outputs
    return out, outputs


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *names: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("erreur :")]
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_through_the_cli(case, previous, tmp_path, capsys):
    out, before = previous
    bad = CORPUS[case]
    table = bad.build(tmp_path)
    config = write_territory(tmp_path, SAMPLE_SOURCES | {bad.kind: table}, out=out)
    code, _, err = run_cli(capsys, "build", "--config", str(config))
    assert code == 2
    assert_one_error_line(err, bad.file)
    assert snapshot(out) == before  # byte-identical


@pytest.mark.parametrize("case", sorted(TERRITORY_CORPUS))
def test_bad_territory_through_the_cli(case, previous, tmp_path, capsys):
    out, before = previous
    bad = TERRITORY_CORPUS[case]
    code, _, err = run_cli(capsys, "build", "--config", str(bad.write(tmp_path, out)))
    assert code == 2
    assert_one_error_line(err, bad.names)
    assert snapshot(out) == before  # byte-identical


@pytest.mark.parametrize(("content", "key"), [
    ("[territoire]\nnom = 'x'\ncommunes = ['25267']\nsurface = 3\n", "territoire.surface"),
    ("[territoire]\nnom = 'x'\ncommunes = [25267]\n[sources]\nparcelles = 'p.gpkg'\n",
     "territoire.communes[0]"),
    ("[territoire]\nnom = 'x'\ncommunes = ['25267']\n", "sources"),
    ("[territoire\nnom = 'x'\n", "TOML invalide"),
])
def test_bad_territory_file_through_the_cli(content, key, previous, tmp_path, capsys):
    out, before = previous
    config = tmp_path / "territoire.toml"
    config.write_text(content, encoding="utf-8")
    code, _, err = run_cli(capsys, "build", "--config", str(config), "--out", str(out))
    assert code == 2
    assert_one_error_line(err, str(config), key)
    assert snapshot(out) == before


def test_missing_territory_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "build", "--config", str(tmp_path / "absent.toml"))
    assert code == 2
    assert_one_error_line(err, "absent.toml", "introuvable")


def test_real_process_on_a_truncated_file(previous, tmp_path):
    """A real ``observatoire build`` process: status 2, one line, no traceback."""
    out, before = previous
    table = CORPUS["geojson_tronque"].build(tmp_path)
    config = write_territory(tmp_path, {"parcelles": table}, out=out)
    proc = subprocess.run([sys.executable, "-m", "observatoire", "build", "--config",
                           str(config)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env=os.environ | {"PYTHONWARNINGS": "default"})
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "cadastre-tronque.json")
    assert snapshot(out) == before


def test_help_and_no_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "build" in capsys.readouterr().out
    assert main([]) == 2


# --- the territory file is data --------------------------------------------------------------

def test_path_escaping_the_folder_is_read_as_a_bad_source(previous, tmp_path, capsys):
    """``../../etc/passwd`` is resolved against the file's folder and refused as a source."""
    out, before = previous
    depth = len(tmp_path.resolve().parts) - 1
    escape = "../" * depth + "etc/passwd"
    if not (tmp_path / escape).resolve().is_file():
        pytest.skip("pas de /etc/passwd sur cette machine")
    config = write_territory(tmp_path, {"zonage": {"chemin": escape}}, out=out)
    code, _, err = run_cli(capsys, "build", "--config", str(config))
    assert code == 2
    line = assert_one_error_line(err, "etc/passwd")
    assert "format non reconnu" in line
    assert snapshot(out) == before


@pytest.mark.parametrize("chemin", [
    "$(touch {marker})",
    "`touch {marker}`",
    "__import__('os').system('touch {marker}')",
    "/vsicurl/http://127.0.0.1:9/x.gpkg",
    "https://127.0.0.1:9/x.gpkg",
])
def test_no_code_or_url_is_ever_run(chemin, previous, tmp_path, capsys):
    out, before = previous
    marker = tmp_path / "pwned"
    config = write_territory(tmp_path, {"zonage": {"chemin": chemin.format(marker=marker)}},
                             out=out)
    code, _, err = run_cli(capsys, "build", "--config", str(config))
    assert code == 2
    assert_one_error_line(err, "introuvable")
    assert not marker.exists()
    assert snapshot(out) == before


def test_build_needs_no_network(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError(f"accès réseau tenté : {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("PROJ_NETWORK", "OFF")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    config = write_territory(tmp_path, SAMPLE_SOURCES, out=tmp_path / "out")
    code, stdout, err = run_cli(capsys, "build", "--config", str(config))
    assert code == 0, err
    assert (tmp_path / "out" / "observatoire.gpkg").is_file()
    assert "Couches" in stdout
