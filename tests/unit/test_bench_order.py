"""scripts/bench: the boot order is rotated each round, and --versus-disk boots the candidate."""

import importlib.machinery
import importlib.util
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_bench():
    loader = importlib.machinery.SourceFileLoader("aether_bench", str(REPO / "scripts" / "bench"))
    spec = importlib.util.spec_from_loader("aether_bench", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench = load_bench()


def test_every_kind_boots_in_every_position_over_a_full_rotation():
    kinds = ["aether", "versus", "floor", "disk-bios", "disk-uefi"]
    positions = Counter()
    for round_index in range(len(kinds)):
        order = bench.rotated(kinds, round_index)
        assert sorted(order) == sorted(kinds)
        positions.update((kind, i) for i, kind in enumerate(order))
    assert set(positions.values()) == {1} and len(positions) == len(kinds) ** 2


def test_a_versus_disk_boots_the_candidate_through_its_firmware(tmp_path):
    candidate = tmp_path / "candidate.img"
    candidate.write_bytes(b"\0" * 4096)
    (tmp_path / "logs").mkdir()
    opts = bench.vm_options("versus-disk-uefi", None, None, candidate, tmp_path / "logs")
    assert opts["firmware"] == "uefi" and opts["disk"].read_bytes() == candidate.read_bytes()
    assert bench.vm_options("disk-bios", None, None, candidate, tmp_path / "logs")["firmware"] == "bios"


def test_versus_disk_implies_the_disk_boots():
    args = bench.parse_args(["--versus-disk", "/tmp/x.img"])
    assert args.disk is True
