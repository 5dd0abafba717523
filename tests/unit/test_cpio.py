"""The newc writer: round trip, order, alignment, determinism, and what GNU cpio reads."""

import io
import random
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aetherbuild import cpio
from aetherbuild.log import BuildError

MTIME = 1700000000

ENTRIES = [
    cpio.Entry("dev", cpio.DIR, 0o755),
    cpio.Entry("dev/console", cpio.CHAR, 0o600, major=5, minor=1),
    cpio.Entry("dev/null", cpio.CHAR, 0o666, major=1, minor=3),
    cpio.Entry("tmp", cpio.DIR, 0o1777),
    cpio.Entry("usr", cpio.DIR, 0o755),
    cpio.Entry("usr/bin", cpio.DIR, 0o755),
    cpio.Entry("usr/bin/python3.11", cpio.FILE, 0o755, data=b"\x7fELF" + bytes(range(256)) * 3),
    cpio.Entry("usr/bin/python3", cpio.SYMLINK, 0o777, target="python3.11"),
    cpio.Entry("usr/empty", cpio.FILE, 0o644, data=b""),
    cpio.Entry("lib", cpio.SYMLINK, 0o777, target="usr/lib"),
]


def archive(entries, mtime=MTIME):
    out = io.BytesIO()
    size = cpio.write(entries, mtime, out)
    assert size == len(out.getvalue())
    return out.getvalue()


def test_round_trip_keeps_every_field(newc):
    members = {m.name: m for m in newc(archive(ENTRIES))}
    assert set(members) == {e.path for e in ENTRIES}
    for e in ENTRIES:
        m = members[e.path]
        assert m.mode == cpio.TYPE_BITS[e.kind] | e.mode
        assert (m.uid, m.gid, m.mtime) == (0, 0, MTIME)
        assert m.data == e.payload()
        assert (m.rdevmajor, m.rdevminor) == (e.major, e.minor)
        assert m.nlink == (2 if e.kind == cpio.DIR else 1)
    assert members["usr/bin/python3"].data == b"python3.11"


def test_members_are_sorted_with_parents_first_and_numbered_in_order(newc):
    shuffled = ENTRIES[:]
    random.Random(1).shuffle(shuffled)
    members = newc(archive(shuffled))
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert [m.ino for m in members] == list(range(1, len(members) + 1))
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert not parent or parent in names[:i]


def test_two_writes_are_byte_identical_whatever_the_input_order():
    shuffled = list(reversed(ENTRIES))
    assert archive(ENTRIES) == archive(shuffled)


def test_every_record_is_4_byte_aligned():
    data = archive(ENTRIES)
    assert len(data) % 4 == 0
    assert data.count(b"070701") >= len(ENTRIES) + 1


def gnu_cpio(*args, data):
    return subprocess.run(["cpio", *args, "--quiet"], input=data, capture_output=True,
                          check=True).stdout.decode().splitlines()


def test_gnu_cpio_reads_the_archive():
    data = archive(ENTRIES)
    assert gnu_cpio("-it", data=data) == sorted((e.path for e in ENTRIES),
                                                key=lambda p: p.split("/"))
    listing = gnu_cpio("-itv", data=data)
    console = next(line for line in listing if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console
    assert any(line.endswith("usr/bin/python3 -> python3.11") for line in listing)


@pytest.mark.parametrize("entries, message", [
    ([cpio.Entry("usr/bin/x", cpio.FILE, 0o644)], "no entry for its directory usr/bin"),
    ([cpio.Entry("a", cpio.DIR, 0o755)] * 2, "appears twice"),
    ([cpio.Entry("/abs", cpio.DIR, 0o755)], "not a clean relative path"),
    ([cpio.Entry("a/../b", cpio.DIR, 0o755)], "not a clean relative path"),
    ([cpio.Entry("fifo", "fifo", 0o644)], "unknown kind"),
])
def test_bad_entries_are_refused(entries, message):
    with pytest.raises(BuildError, match=message):
        archive(entries)


def test_lz4_output_is_deterministic_and_in_the_legacy_format_the_kernel_reads(tmp_path):
    raw = tmp_path / "a.cpio"
    raw.write_bytes(archive(ENTRIES))
    first, second = tmp_path / "1.lz4", tmp_path / "2.lz4"
    cpio.compress(raw, first)
    cpio.compress(raw, second)
    assert first.read_bytes() == second.read_bytes()
    # lib/decompress_unlz4.c reads only the legacy format, not an lz4 frame (04 22 4d 18)
    assert first.read_bytes()[:4] == cpio.LZ4_LEGACY_MAGIC == b"\x02\x21\x4c\x18"
    back = subprocess.run(["lz4", "-dc", str(first)], capture_output=True, check=True).stdout
    assert back == raw.read_bytes() == cpio.decompress(first)


def test_a_corrupt_archive_is_reported(tmp_path):
    bad = tmp_path / "bad.lz4"
    bad.write_bytes(cpio.LZ4_LEGACY_MAGIC + b"\xff" * 64)
    with pytest.raises(BuildError, match="lz4 could not decompress"):
        cpio.decompress(bad)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=20) \
    .filter(lambda n: n not in (".", ".."))


@settings(max_examples=50, deadline=None)
@given(files=st.dictionaries(names, st.binary(max_size=300), max_size=20),
       mtime=st.integers(min_value=0, max_value=2**32 - 1))
def test_any_flat_tree_round_trips(newc, files, mtime):
    entries = [cpio.Entry("d", cpio.DIR, 0o755)]
    entries += [cpio.Entry(f"d/{n}", cpio.FILE, 0o644, data=d) for n, d in files.items()]
    members = newc(archive(entries, mtime))
    assert {m.name: m.data for m in members if m.name != "d"} == \
        {f"d/{n}": d for n, d in files.items()}
    assert all(m.mtime == mtime for m in members)
