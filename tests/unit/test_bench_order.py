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


def test_the_python_floor_holds_the_interpreter_its_libraries_and_start_modules(tmp_path):
    tree = tmp_path / "tree"
    for d in ("usr/bin", "usr/lib/x86_64-linux-gnu", "usr/lib64",
              "usr/lib/python3.11/encodings", "usr/lib/python3.11/lib-dynload"):
        (tree / d).mkdir(parents=True)
    py = Path("/usr/bin/python3.11").resolve()
    (tree / "usr/bin/python3.11").write_bytes(py.read_bytes())
    libs = Path("/lib/x86_64-linux-gnu")
    for so in ("libc.so.6", "libm.so.6", "libz.so.1", "libexpat.so.1", "ld-linux-x86-64.so.2"):
        (tree / "usr/lib/x86_64-linux-gnu" / so).write_bytes((libs / so).resolve().read_bytes())
    (tree / "usr/lib64/ld-linux-x86-64.so.2").symlink_to(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (tree / "lib").symlink_to("usr/lib")
    (tree / "lib64").symlink_to("usr/lib64")
    for name in ("os.pyc", "encodings/__init__.pyc", "encodings/aliases.pyc",
                 "encodings/utf_8.pyc", "encodings/latin_1.pyc"):
        (tree / "usr/lib/python3.11" / name).write_bytes(b"pyc")
    paths = {e.path: e for e in bench.python_floor_entries(tree)}
    assert "usr/bin/python3.11" in paths and "bin/busybox" in paths
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in paths
    assert "usr/lib/python3.11/encodings/utf_8.pyc" in paths
    assert "usr/lib/python3.11/encodings/latin_1.pyc" not in paths   # only what its start reads
    assert paths["init"].data.startswith(b"#!/usr/bin/python3.11 -IS\n")
    assert b"python-ready uptime=" in paths["init"].data


def test_the_python_floor_refuses_a_tree_without_its_start_modules(tmp_path):
    import pytest
    (tmp_path / "usr/bin").mkdir(parents=True)
    with pytest.raises(bench.qemu.QemuError, match="python3.11 is missing"):
        bench.python_floor_entries(tmp_path)
