"""The command line on bad inputs: one clear line, exit status 2, previous outputs untouched.

Also the territory file as data (never code) and a build without network access.
"""

from __future__ import annotations

import os
import re
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
            for p in sorted(folder.rglob("*")) if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


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


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- help, errors and output in French -------------------------------------------------------

#: argparse's own English words, none of which may reach a user.
ENGLISH = ("usage:", "positional arguments", "optional arguments", "options:",
           "show this help", "show program's version", "error:", "required:",
           "invalid choice", "choose from", "unrecognized arguments", "expected one argument")
COMMANDS = ("build", "validate", "fusion", "deps")


def help_text(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as info:
        main([*args, "--aide"])
    assert info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_is_all_french_with_a_description_and_an_example(command, capsys):
    args = [command] if command else []
    text = help_text(capsys, *args)
    assert text.startswith(f"utilisation : observatoire{' ' + command if command else ''} ")
    for word in ENGLISH:
        assert word not in text.lower(), (command, word)
    assert "afficher cette aide et quitter" in text
    assert "options :" in text
    # A description: the paragraph after the usage, a sentence of the command's own.
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 10 and description.rstrip().endswith("."), description
    # An example to copy.
    example = text.split("exemple")[-1]
    assert f"  observatoire {command}".rstrip() in example


def test_help_long_option_and_subcommand_list(capsys):
    text = help_text(capsys)
    assert "commandes :" in text
    for command in COMMANDS:
        assert f"    {command} " in text
    with pytest.raises(SystemExit):
        main(["--help"])  # kept for habit
    assert capsys.readouterr().out == text


@pytest.mark.parametrize("command", ["build", "validate", "deps"])
def test_config_is_required_and_the_error_names_the_file(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"utilisation : observatoire {command} ")
    line = assert_one_error_line(err, f"observatoire {command}", "--config est obligatoire",
                                 "fichier de territoire TOML", "data/sample/territoire.toml")
    assert line == (f"erreur : observatoire {command} : --config est obligatoire : fichier de "
                    "territoire TOML, par exemple data/sample/territoire.toml (l'exemple "
                    "livré)")


@pytest.mark.slow
def test_build_without_config_in_a_real_process():
    """The sample is never rebuilt silently: ``observatoire build`` alone is an error."""
    proc = subprocess.run([sys.executable, "-m", "observatoire", "build"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_error_line(proc.stderr, "--config est obligatoire", "data/sample/territoire.toml")


@pytest.mark.parametrize(("args", "message"), [
    (["build", "--config", "t.toml", "--executeur", "toutes"],
     "erreur : observatoire build : argument --executeur : choix invalide : 'toutes' (choix "
     "possibles : 'serie', 'processus', 'dask')"),
    (["build", "--config", "t.toml", "--parcelles-par-partition", "0"],
     "erreur : observatoire build : argument --parcelles-par-partition : '0' : donnez un "
     "nombre entier, au moins 1"),
    (["construire"], "erreur : observatoire : argument COMMANDE : choix invalide : "
                     "'construire' (choix possibles : 'init', 'telecharger', 'build', "
                     "'validate', 'fusion', 'deps', 'evolution')"),
    (["validate", "--config", "t.toml", "--vite"],
     "erreur : observatoire : argument(s) non reconnu(s) : --vite"),
    (["build", "--config"], "erreur : observatoire build : argument --config : une valeur est "
                            "attendue"),
    (["fusion", "a.gpkg"], "erreur : observatoire fusion : -o/--out est obligatoire : "
                           "GeoPackage fusionné à produire (remplacé seulement si la fusion "
                           "réussit)"),
])
def test_usage_errors_in_french(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert assert_one_error_line(err) == message
    for word in ENGLISH:
        assert word not in err


def test_unknown_argparse_message_is_left_as_is():
    from observatoire.cli import french_message

    assert french_message("argument -x: expected 2 arguments") == \
        "argument -x : 2 valeurs attendues"
    assert french_message("quelque chose d'autre") == "quelque chose d'autre"


def test_output_lines_sum_up_the_consultation_files(tmp_path):
    from observatoire.cli import output_lines

    out = tmp_path / "out"
    files = [out / "observatoire.gpkg", out / "meilleurs_sites.csv"]
    files += [out / "consultation" / f"Z{i}.{ext}" for i in range(200) for ext in ("xlsx", "csv")]
    files += [out / "carte.html"]
    lines = output_lines(files, out)
    assert lines == [str(out / "observatoire.gpkg"), str(out / "meilleurs_sites.csv"),
                     f"Consultation : 200 fichiers XLSX et 200 CSV dans {out / 'consultation'}/",
                     str(out / "carte.html")]
    one = output_lines([out / "consultation" / "Z.xlsx", out / "consultation" / "Z.csv"], out)
    assert one == [f"Consultation : 1 fichier XLSX et 1 CSV dans {out / 'consultation'}/"]
    assert output_lines([out / "carte.html"], out) == [str(out / "carte.html")]


def test_output_lines_sum_up_the_atlas_and_the_cnig_csv_files(tmp_path):
    from observatoire.cli import output_lines

    out = tmp_path / "out"
    files = [out / "cnig" / "sites_economiques.gpkg"]
    files += [out / "cnig" / f"{c}.csv" for c in ("site_eco", "terrain_eco", "pole_eco")]
    files += [out / "atlas" / f"Z{i}.{ext}" for i in range(3) for ext in ("html", "pdf")]
    files += [out / "atlas" / "couverture.html", out / "rapport.html"]
    assert output_lines(files, out) == [
        str(out / "cnig" / "sites_economiques.gpkg"),
        f"Export CNIG en CSV (data.gouv.fr) : 3 fichiers dans {out / 'cnig'}/",
        f"Atlas des ZAE : 4 fiches HTML et 3 PDF dans {out / 'atlas'}/",
        str(out / "rapport.html")]


@pytest.fixture(scope="module")
def verbose_build(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """``observatoire -v build`` of the sample, in a real process (its own logging)."""
    out = tmp_path_factory.mktemp("bavard")
    proc = subprocess.run([sys.executable, "-m", "observatoire", "-v", "build", "--config",
                           str(ROOT / "data" / "sample" / "territoire.toml"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc, out


@pytest.mark.slow
def test_verbose_shows_the_observatoire_only(verbose_build):
    proc, _ = verbose_build
    lines = proc.stderr.splitlines()
    assert any(line.startswith("détail (observatoire.") for line in lines)
    assert any(line.startswith("info (observatoire.") for line in lines)
    for name in ("matplotlib", "PIL", "fontTools", "urllib3", "pyogrio", "asyncio"):
        assert not [line for line in lines if f"({name}" in line], name
    # Every line is one of the observatoire's, in French.
    assert all(re.match(r"(détail|info|avertissement) \(observatoire[.\w]*\) : ", line)
               or line.startswith("avertissement : ") for line in lines), lines


@pytest.mark.slow
def test_one_line_for_the_consultation_files(verbose_build):
    proc, out = verbose_build
    outputs = proc.stdout.split("Sorties :\n")[1].split("Terminé")[0].splitlines()
    written = sorted((out / "consultation").iterdir())
    assert len(written) == 2  # the sample's one ZAE: its XLSX and its CSV
    assert [line for line in outputs if "onsultation" in line] == [
        f"  Consultation : 1 fichier XLSX et 1 CSV dans {out / 'consultation'}/"]
    assert not [line for line in outputs if line.endswith((".xlsx", ".csv"))
                and "meilleurs_sites" not in line]
    # GeoPackage, history, CSV, consultation, CNIG and its CSV files, atlas, map, report
    assert len(outputs) == 9
    assert f"  Historique des observations : {out / 'historique'}/" in outputs
