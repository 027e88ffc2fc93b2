"""Partitioned analysis: the same indicators and scores serially, by partition, and on Dask."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from geopandas.testing import assert_geodataframe_equal

from observatoire.analysis import analyse
from observatoire.config import load_territory
from observatoire.errors import ConfigError
from observatoire.executor import SerialExecutor, make_executor
from observatoire.ingest import ingest


@pytest.fixture(scope="module")
def sample_layers():
    return ingest(load_territory("data/sample/territoire.toml"))


class CountingExecutor(SerialExecutor):
    """A serial executor that records how many partitions it ran."""

    def __init__(self) -> None:
        self.calls = 0

    def map(self, fn, items):
        items = list(items)
        self.calls += len(items)
        return super().map(fn, items)


def _assert_same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert_geodataframe_equal(a, b, check_like=False)


def test_partitions_give_the_whole_run_values(sample_layers):
    whole = analyse(sample_layers)
    counting = CountingExecutor()
    # Gennes is one commune: partition by cadastral section to cut it in 14 pieces.
    parts = analyse(sample_layers, executor=counting, partition_by="section")
    assert counting.calls == sample_layers.parcelles["section"].nunique() > 5
    _assert_same(whole.parcelles, parts.parcelles)
    _assert_same(whole.gisements, parts.gisements)
    _assert_same(whole.unites_foncieres, parts.unites_foncieres)
    assert whole.available == parts.available


def test_dask_local_cluster_gives_the_serial_values(sample_layers):
    pytest.importorskip("distributed", reason="dask.distributed n'est pas installé")
    serial = analyse(sample_layers, executor=SerialExecutor(), partition_by="section")
    with make_executor("dask") as executor:
        distributed = analyse(sample_layers, executor=executor, partition_by="section")
    _assert_same(serial.parcelles, distributed.parcelles)
    pd.testing.assert_frame_equal(serial.meilleurs_sites, distributed.meilleurs_sites)


def test_unknown_executor_and_stray_scheduler_are_refused():
    with pytest.raises(ConfigError, match="exécuteur inconnu"):
        make_executor("spark")
    with pytest.raises(ConfigError, match="--scheduler"):
        make_executor("serie", scheduler="tcp://127.0.0.1:8786")
