"""Every real topology in ../shared/data imports, or fails with one clear line; the traffic files load.

Counts measured here are quoted in docs/formats.md; run with ``-s`` to see them.
"""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.loader import load_topology
from netscaffold.formats.summary import summarize
from netscaffold.formats.traffic import read_traffic, traffic_summary

ZOO_FILES = 276
SNDLIB_FILES = 25


def _extract(archive: Path, target: Path) -> list[Path]:
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return sorted(p for p in target.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def zoo_files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = _extract(shared_data / "topologies/topology_zoo_graphml.tar.gz", tmp_path_factory.mktemp("zoo"))
    return [p for p in files if p.suffix == ".graphml"]


@pytest.fixture(scope="module")
def sndlib_files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = _extract(shared_data / "topologies/sndlib_networks_xml.tar.gz", tmp_path_factory.mktemp("sndlib"))
    return [p for p in files if p.suffix == ".xml"]


def _import_all(files: list[Path]) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """Summaries of the files that import; one-line errors of those that do not."""
    imported: dict[str, dict[str, object]] = {}
    failed: dict[str, str] = {}
    for path in files:
        try:
            imported[path.name] = summarize(load_topology(path))
        except TopologyError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert path.name in message, message
            failed[path.name] = message
    return imported, failed


def _report(title: str, imported: dict[str, dict[str, object]], failed: dict[str, str]) -> None:
    defaulted = sum(1 for s in imported.values() if s["defaulted_capacities"])
    merged = sum(1 for s in imported.values() if s["merged_parallel_links"])
    print(f"\n{title}: {len(imported)} imported, {len(failed)} failed; "
          f"{defaulted} with defaulted capacities, {merged} with merged parallel links")  # fmt: skip
    for name, message in sorted(failed.items()):
        print(f"  FAILED {name}: {message}")


@pytest.mark.slow
def test_topology_zoo(zoo_files: list[Path], record_property: pytest.RecordProperty) -> None:
    assert len(zoo_files) == ZOO_FILES
    imported, failed = _import_all(zoo_files)
    _report("Topology Zoo", imported, failed)
    record_property("zoo_imported", len(imported))
    assert len(imported) >= 0.9 * ZOO_FILES
    assert len(imported) + len(failed) == ZOO_FILES
    # A missing speed is a defaulted capacity, not a failure; most Zoo maps lack some speeds.
    assert sum(1 for s in imported.values() if s["defaulted_capacities"]) > ZOO_FILES // 2
    kinds = Counter(k for s in imported.values() for k, n in s["kinds"].items() if n)  # type: ignore[attr-defined]
    assert set(kinds) == {"router"}


def test_sndlib_networks(sndlib_files: list[Path], record_property: pytest.RecordProperty) -> None:
    assert len(sndlib_files) == SNDLIB_FILES
    imported, failed = _import_all(sndlib_files)
    _report("SNDlib", imported, failed)
    record_property("sndlib_imported", len(imported))
    assert len(imported) + len(failed) == SNDLIB_FILES
    abilene = imported["abilene.xml"]
    assert (abilene["nodes"], abilene["links"]) == (12, 30)
    # giul39 lists every link in both orientations: each is one direction, nothing doubles.
    assert imported["giul39.xml"]["merged_parallel_links"] == 0


def test_rocketfuel_maps(shared_data: Path) -> None:
    expected = {"Ebone.txt": (23, 76), "Sprintlink.txt": (44, 166), "Tiscali.txt": (49, 172)}
    imported, failed = _import_all(sorted((shared_data / "topologies/rocketfuel_cfrrl").glob("*.txt")))
    _report("Rocketfuel", imported, failed)
    assert {name: (s["nodes"], s["links"]) for name, s in imported.items()} == expected


def test_abilene_links_match_the_traffic_matrix_axes(shared_data: Path) -> None:
    topology = load_topology(shared_data / "abilene/abilene_links.csv")
    summary = summarize(topology)
    assert (summary["nodes"], summary["links"], summary["components"]) == (12, 30, 1)
    assert summary["capacity_bps"]["min"] == 2.48e9  # OC-48 on ATLAng-IPLSng
    series = read_traffic(shared_data / "abilene/abilene_tm_5min.npz").series
    assert tuple(topology.nodes) == series.nodes


def test_shared_traffic_matrices(shared_data: Path) -> None:
    abilene = traffic_summary(read_traffic(shared_data / "abilene/abilene_tm_5min.npz"))
    assert abilene["shape"] == [4896, 12, 12]
    assert (abilene["interval_s"], abilene["unit"], abilene["segments"]) == (300.0, "Mbit/s", 2)
    assert abilene["gaps"][0]["after_step"] == 4031
    germany = read_traffic(shared_data / "germany50/germany50_tm_1day.npz").series
    assert germany.tm.shape == (28, 50, 50)
    assert germany.interval_s == 86400.0
    assert germany.timestamps is not None
    assert germany.timestamps.dtype == np.dtype("datetime64[D]")
