"""The exploration notebook runs, against a GeoPackage built in a temporary folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from publication_fixtures import analysed, sample_layers, without_analysis, write_gpkg

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "exploration.ipynb"


def run(notebook: Path, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(text)


def test_notebook_filters_sites_by_surface_and_score(tmp_path, monkeypatch):
    layers, territory, reports = sample_layers(tmp_path / "source")
    territory = replace(territory, output_dir=tmp_path / "out")
    gpkg = write_gpkg(analysed(layers), territory, reports)
    monkeypatch.setenv("OBSERVATOIRE_GPKG", str(gpkg))
    monkeypatch.setenv("OBSERVATOIRE_SURFACE_MIN_HA", "1")
    monkeypatch.setenv("OBSERVATOIRE_SCORE_MIN", "40")
    nb = run(NOTEBOOK, tmp_path)
    text = outputs(nb)
    assert f"GeoPackage : {gpkg}" in text
    assert "828 parcelles" in text
    assert "Profils de score : industrie, logistique" in text
    # Sites of the fixture: G1 21.3 ha, score 40.3; G2 6.2 ha, 40.0; G3 5.1 ha, 10.0.
    assert "2 site(s) retenu(s) sur 3" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2


def test_notebook_without_analysis(tmp_path, monkeypatch):
    layers, territory, reports = sample_layers(tmp_path / "source")
    territory = replace(territory, output_dir=tmp_path / "out")
    gpkg = write_gpkg(without_analysis(layers), territory, reports, finalize=False)
    monkeypatch.setenv("OBSERVATOIRE_GPKG", str(gpkg))
    monkeypatch.setenv("OBSERVATOIRE_SURFACE_MIN_HA", "5")
    nb = run(NOTEBOOK, tmp_path)
    text = outputs(nb)
    assert "Profils de score : aucun (analyse non faite)" in text
    big = int((layers["parcelles"]["surface_m2"] >= 50_000).sum())
    assert f"{big} site(s) retenu(s) sur 828" in text


def test_notebook_imports_only_observatoire_geopandas_matplotlib():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    imports = [line for cell in nb.cells if cell.cell_type == "code"
               for line in cell.source.splitlines() if line.startswith(("import ", "from "))]
    modules = {line.split()[1].split(".")[0] for line in imports}
    assert modules == {"os", "pathlib", "geopandas", "matplotlib", "observatoire"}
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
