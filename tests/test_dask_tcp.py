"""A Dask cluster over TCP (scheduler and two worker processes): small tasks, same layers.

The workers read their partitions from the staging store; a task carries paths and
identifiers, and the shared context is sent once to each worker. The size of every
task the scheduler receives is read there, by a scheduler plugin.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
from conftest import load_script
from test_partitions import _cut_sample, _territory

from observatoire.config import load_territory
from observatoire.executor import SerialExecutor, make_executor
from observatoire.pipeline import build, staging

distributed = pytest.importorskip("distributed", reason="dask.distributed n'est pas installé")

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
MIB = 2**20


mesure = load_script("mesure_dask")


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    with mesure.local_tcp_cluster() as (address, client):
        assert address.startswith("tcp://127.0.0.1:")
        yield address, client


@pytest.mark.slow
def test_tcp_cluster_gives_the_serial_layers_with_small_tasks(cluster, tmp_path, caplog):
    address, client = cluster
    _cut_sample(tmp_path)
    toml = _territory(tmp_path, "serie", 1)  # one commune per partition: two partitions
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(staging, "STAGE_BYTES", 1)  # one parcel file per staging group
        serial = build(load_territory(toml), executor=SerialExecutor())
        mesure.graph_sizes(client)
        with make_executor("dask", scheduler=address) as executor, \
                caplog.at_level("WARNING"):
            assert executor.reads_staging
            cluster_run = build(load_territory(toml, output_dir=tmp_path / "dask"),
                                executor=executor)
    assert cluster_run.checksums == serial.checksums
    assert cluster_run.layer_counts == serial.layer_counts
    # The duplicate merged by a worker is counted in the sources' report all the same.
    sources = [pyogrio.read_dataframe(r.gpkg, layer="sources").drop(columns="date_lecture")
               for r in (serial, cluster_run)]
    pd.testing.assert_frame_equal(*sources)
    assert "double" in sources[1].set_index("type_source").loc["parcelles", "reparations"]
    sizes = mesure.graph_sizes(client)
    # The shared context (scattered: no task) and one task per partition at least.
    assert len(sizes) >= 2
    assert max(sizes) < MIB, f"tâche de {max(sizes)} octets"
    print("plus grande tâche :", max(sizes), "octets sur", len(sizes))
    said = ("distributed", "observatoire.executor")
    assert not [r for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith(said)]
    # The measure sees a big task: a frame inside the graph would be caught.
    client.submit(len, b"x" * (2 * MIB), pure=False).result()
    assert max(mesure.graph_sizes(client)) > 2 * MIB


@pytest.mark.slow
def test_command_line_on_a_tcp_cluster(cluster, tmp_path, capsys):
    from observatoire.cli import main

    address, client = cluster
    shared = tmp_path / "partage"
    args = ["build", "--config", str(SAMPLE / "territoire.toml"), "--parcelles-par-partition",
            "1"]
    assert main([*args, "--out", str(tmp_path / "serie"), "--executeur", "serie"]) == 0
    serial = capsys.readouterr()
    mesure.graph_sizes(client)
    assert main([*args, "--out", str(tmp_path / "dask"), "--executeur", "dask",
                 "--scheduler", address, "--dossier-intermediaire", str(shared)]) == 0
    run = capsys.readouterr()
    assert max(mesure.graph_sizes(client)) < MIB
    # The staging store was made in the folder given, and removed after the build.
    assert shared.is_dir() and not list(shared.iterdir())
    for text in (run.out, run.err):
        assert "Sending large graph" not in text and "Warning" not in text
    # The same layers, counts and checksums printed.
    layers = [re.findall(r"^ +(\w+) +(\d+) +([0-9a-f]{16,})$", r.out, re.M)
              for r in (serial, run)]
    assert len(layers[0]) >= 5 and layers[0] == layers[1]


def test_staging_folder_on_a_shared_path(tmp_path, monkeypatch):
    toml = SAMPLE / "territoire.toml"
    territory = load_territory(toml, output_dir=tmp_path / "sorties")
    assert staging.staging_parent(territory) == tmp_path / "sorties"
    monkeypatch.setenv(staging.STAGING_ENV, str(tmp_path / "env"))
    assert staging.staging_parent(territory) == tmp_path / "env"
    text = toml.read_text(encoding="utf-8") + '\n[options]\ndossier_intermediaire = "partage"\n'
    (tmp_path / "t.toml").write_text(text.replace('chemin = "', f'chemin = "{SAMPLE}/'),
                                     encoding="utf-8")
    own = load_territory(tmp_path / "t.toml", output_dir=tmp_path / "sorties")
    # The option wins over the environment, resolved against the territory file's folder.
    assert staging.staging_parent(own) == tmp_path / "partage"
    with staging.staging_folder(own) as folder:
        assert Path(folder).parent == tmp_path / "partage"
        assert Path(folder).name.startswith(staging.STAGING_PREFIX)
    assert not list((tmp_path / "partage").iterdir())


@pytest.mark.slow
def test_a_large_graph_is_said_in_french(cluster, caplog):
    from observatoire.executor import _library_warnings

    _, client = cluster
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none escapes to the user
        with caplog.at_level("WARNING", logger="observatoire.executor"), _library_warnings():
            assert client.submit(len, b"x" * (2 * MIB), pure=False).result() == 2 * MIB
    said = [r.getMessage() for r in caplog.records if r.name == "observatoire.executor"]
    assert len(said) == 1, said
    assert said[0].startswith("Dask : une tâche de 2.00 MiB envoyée à l'ordonnanceur "
                              "(au-delà de 1MiB)")
    mesure.graph_sizes(client)


def test_a_worker_without_the_staging_folder_says_how_to_share_it(tmp_path):
    import numpy as np

    from observatoire.errors import SourceError
    from observatoire.pipeline.partitions import GroupFiles, GroupShared, _read_group

    missing = GroupFiles(files=[[tmp_path / "absent" / "25267-000000.parquet"]],
                         batiments=None, touching=np.zeros(0, "S14"))
    shared = GroupShared(ctx=None, settings=None)  # type: ignore[arg-type]
    with pytest.raises(SourceError, match=r"absent : dossier intermédiaire illisible .*"
                                          r"--dossier-intermediaire"):
        _read_group(missing, shared)
