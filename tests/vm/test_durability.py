"""The context store's promise, tested the hard way: a write aetherd has acknowledged
survives a power cut.

Ten times: boot with an ext4 data disk (AETHER-DATA), check that every write
acknowledged so far is there and that the database and the journal's hash
chain are intact, then write journal entries as fast as the host channel
allows, recording each acknowledgement, and SIGKILL QEMU at a random moment
(no shutdown, no sync: the guest's page cache is lost).  QEMU's default
write-back cache flushes to the image file when the guest flushes, which is
what a real disk with a volatile cache that honours FLUSH does.
"""

import random
import subprocess
import threading
import time

import pytest

import harness
from aether.abi.protocol import AbiError
from aether.client import ConnectionLost

CUTS = 10
KIND = "drill.write"


def data_disk(path, size_mib=64):
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "AETHER-DATA", str(path), f"{size_mib}M"],
                   check=True, capture_output=True)
    return path


def present(c):
    """Every write in the journal, read a page at a time (an answer is at most 1 MiB)."""
    found, after = set(), 0
    while True:
        page = c.call("ctx.journal", kind=KIND, after_seq=after, limit=1000)
        if not page:
            return found
        found |= {e["body"]["n"] for e in page}
        after = page[-1]["seq"]


def writer(c, start, acked, stop):
    n = start
    while not stop.is_set():
        try:
            c.call("ctx.append", kind=KIND, body={"n": n})
        except (ConnectionLost, OSError, AbiError):
            return
        acked.append(n)
        n += 1


@pytest.mark.timeout(900)
def test_acknowledged_writes_survive_power_cuts(booter, tmp_path):
    disk = data_disk(tmp_path / "data.img")
    rng = random.Random(2026)
    acked, next_n = [], 0
    for cut in range(CUTS + 1):
        vm = booter.boot(disk=disk, kernel=harness.qemu.default_kernel(),
                         initrd=harness.qemu.default_initrd())
        c = harness.abi_client(vm)
        info = c.call("ctx.info")
        assert info["durable"], f"the store is not on the data disk: {info}"
        have = present(c)
        lost = sorted(set(acked) - have)
        assert not lost, f"after power cut {cut}: {len(lost)} acknowledged writes lost: {lost[:10]}"
        check = c.call("ctx.check")
        assert check["integrity"] == "ok" and check["chain"]["ok"], check
        if cut == CUTS:
            break
        stop, written = threading.Event(), []
        t = threading.Thread(target=writer, args=(c, next_n, written, stop))
        t.start()
        time.sleep(rng.uniform(0.5, 3.0))
        vm.proc.kill()                 # the power cut: QEMU dies mid-write
        vm.proc.wait(10)
        stop.set()
        t.join(30)
        acked += written
        next_n += len(written) + 1000  # numbers never reused, even for unacknowledged writes
        c.close()
        vm.close()
    assert len(acked) > 50, f"too few writes to mean anything ({len(acked)})"
    print(f"\ndurability: {len(acked)} acknowledged writes over {CUTS} power cuts, none lost")
