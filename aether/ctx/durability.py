"""The durability check: write and acknowledge, get killed, then prove nothing acknowledged was lost.

    python3 -m aether.ctx.durability write PATH [--batch N] [--start K]
    python3 -m aether.ctx.durability check PATH ACKFILE

``write`` appends, for n = K, K+1, ..., a journal entry {"n": n} and a memory
"durability probe n" through ContextStore, N of each per transaction
(run_batch), and after every commit prints ``ACK <n>`` for each n it holds,
on stdout, flushed.  It never stops by itself: the harness kills it (kill -9
on the host, a hard stop of QEMU in the VM test, with the ACK lines read
from the serial console) at a random moment.

``check`` reopens the store (which runs SQLite's WAL recovery) and prints a
JSON verdict: every acknowledged n is present as both a journal entry and a
live memory, the journal's hash chain verifies, ``PRAGMA integrity_check`` is
ok, and the entries present form one unbroken run (an unacknowledged tail may
or may not have made it: both are allowed).  Exit status 0 when all hold.
"""

import json
import os
import sys

from .api import ContextStore

CALLER = "agent:durability"


def write(path, batch=1, start=1):
    """Write and acknowledge forever (until killed)."""
    store = ContextStore(path, quota_tokens="max", quota_items="max")
    n = start
    out = sys.stdout
    while True:
        ops = []
        for k in range(n, n + batch):
            ops.append(("append", {"caller": CALLER, "kind": "probe", "body": {"n": k}}))
            ops.append(("remember", {"caller": CALLER, "text": f"durability probe {k}", "kind": "note"}))
        results = store.run_batch(ops)
        failed = [r for ok, r in results if ok != "ok"]
        if failed:
            raise SystemExit(f"durability writer: a write was refused: {failed[0]}")
        out.write("".join(f"ACK {k}\n" for k in range(n, n + batch)))
        out.flush()
        n += batch


def acknowledged(lines):
    """The numbers in 'ACK <n>' lines (anything else, such as console noise, is ignored)."""
    found = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "ACK" and parts[1].isdigit():
            found.add(int(parts[1]))
    return found


def check(path, acked):
    """The verdict dict for the store at path and the set of acknowledged numbers."""
    store = ContextStore(path, quota_tokens="max", quota_items="max")
    try:
        rows = store.db.all("SELECT body FROM journal WHERE scope = ? AND kind = 'probe' ORDER BY seq",
                            (CALLER,))
        present = [json.loads(r[0])["n"] for r in rows]
        texts = store.db.all("SELECT text FROM memories WHERE state = 'live' AND text LIKE "
                             "'durability probe %'")
        memories = {int(r[0].rsplit(" ", 1)[1]) for r in texts}
        verdict = {
            "acknowledged": len(acked), "present": len(present),
            "lost": sorted((acked - set(present)) | (acked - memories))[:20],
            "integrity": store.db.integrity_check(),
            "chain": store.verify("shell"),
            "contiguous": present == list(range(present[0], present[0] + len(present))) if present else True,
            "memories_match": memories == set(present),
        }
    finally:
        store.close()
    verdict["ok"] = (not verdict["lost"] and verdict["integrity"] == "ok" and verdict["chain"]["ok"]
                     and verdict["contiguous"] and verdict["memories_match"])
    return verdict


def main(argv):
    if len(argv) >= 2 and argv[0] == "write":
        options = dict(zip(argv[2::2], argv[3::2]))
        write(argv[1], int(options.get("--batch", 1)), int(options.get("--start", 1)))
        return 0
    if len(argv) == 3 and argv[0] == "check":
        with open(argv[2], errors="replace") as f:
            verdict = check(argv[1], acknowledged(f))
        print(json.dumps(verdict))
        return 0 if verdict["ok"] else 1
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        os._exit(1)
