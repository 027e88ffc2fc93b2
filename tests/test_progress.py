"""Progress of a build: the long loops are counted; bars only on a terminal."""

from __future__ import annotations

import dataclasses
import io

import pytest
from conftest import SAMPLE

from observatoire.cli import Progress
from observatoire.config import load_territory
from observatoire.executor import SerialExecutor
from observatoire.pipeline import batiments, build
from observatoire.progress import track


class Recorder:
    """A progress callback that counts loops: what the command line's bars are given."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.loops: list[tuple[str, int, list[object]]] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)

    def track(self, items, *, total, label):  # type: ignore[no-untyped-def]
        seen: list[object] = []
        self.loops.append((label, total, seen))
        for item in items:
            seen.append(item)
            yield item


def test_a_plain_callback_gets_the_items_unchanged():
    items = iter([1, 2, 3])
    assert track(None, items, total=3, label="x") is items
    assert track(print, items, total=3, label="x") is items


def test_a_counting_callback_sees_every_item_in_order():
    recorder = Recorder()
    assert list(track(recorder, "abc", total=3, label="lettres")) == ["a", "b", "c"]
    assert recorder.loops == [("lettres", 3, ["a", "b", "c"])]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal(capsys):
    stream = Terminal()
    progress = Progress(quiet=False, bars=True, stream=stream)
    progress("Étape")
    assert list(progress.track(range(4), total=4, label="tuiles de bâtiments")) == [0, 1, 2, 3]
    drawn = stream.getvalue()
    assert "tuiles de bâtiments : 0/4" in drawn
    assert "écoulé" in drawn and "it/s" not in drawn
    out = capsys.readouterr().out
    assert out.endswith("] Étape\n") and out.startswith("[")


@pytest.mark.parametrize(("quiet", "bars"), [(False, False), (True, True)])
def test_no_bar_off_a_terminal_or_when_quiet(quiet, bars, capsys):
    stream = Terminal()
    progress = Progress(quiet=quiet, bars=bars, stream=stream)
    items = [1, 2]
    assert progress.track(items, total=2, label="x") is items
    progress("Étape")
    assert stream.getvalue() == ""
    out = capsys.readouterr().out
    assert out == "" if quiet else out.endswith("] Étape\n")


@pytest.mark.slow
def test_the_build_counts_its_long_loops(tmp_path, monkeypatch):
    """Each loop is given with its true length; counting it changes no result."""
    territory = load_territory(SAMPLE / "territoire.toml", output_dir=tmp_path / "a")
    territory = dataclasses.replace(
        territory, options=dataclasses.replace(territory.options, parcelles_par_partition=1))
    monkeypatch.setattr(batiments, "TILE_SIZE", 1000.0)
    recorder = Recorder()
    counted = build(territory, progress=recorder, executor=SerialExecutor())
    assert [label for label, _, _ in recorder.loops] == [
        "fichiers de parcelles", "tuiles de bâtiments", "communes", "groupes de communes",
        "zones (fichiers de consultation)"]
    for label, total, seen in recorder.loops:
        assert len(seen) == total, label
    totals = {label: total for label, total, _ in recorder.loops}
    assert totals["tuiles de bâtiments"] > 4  # the sample's buildings span several km
    assert totals["groupes de communes"] == totals["communes"] == 1  # one commune: Gennes
    assert totals["zones (fichiers de consultation)"] == 1
    plain = build(dataclasses.replace(territory, output_dir=tmp_path / "b"),
                  progress=lambda message: None, executor=SerialExecutor())
    assert counted.checksums == plain.checksums
