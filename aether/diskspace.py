"""Disk space on the data partition: the reserve only the system may use, and what a tree holds.

One rule for the tools (aether/tools/quota.py) and the context store (aetherd hands
the store ``reserve_bytes``):

* **the reserve**: the last ``reserve_bytes(statvfs)`` bytes of a file system
  (RESERVE_SHARE of it, at least RESERVE_MIN, at most RESERVE_MAX) are written only
  by the system: aetherd itself, the shell and the host.  An agent's write that
  would leave less free is refused, so an agent filling the disk never stops the
  journal, the shell's memories or a boot record.  ext4's own root reserve (``mkfs
  -m``, 5% by default) does the same in the kernel for what an agent's processes
  write directly, since agents run as their own uids;
* **a quota**: each agent's ``limits.disk`` (manifest) bounds the bytes its home
  holds plus the bytes of its rows in the context store.

``tree_bytes(root)`` measures a home by walking it (allocated blocks, not apparent
sizes, so sparse files count what they use); the walk is bounded (SCAN_MAX entries)
and its result kept for CACHE_SECONDS, moved by the tools' own writes meanwhile.
In aetherd a walk of more than SYNC_MAX entries runs a slice per loop turn
(``use_walker``): a home of 200,000 empty files took 0.9 s to walk, which an agent
could have made aetherd spend in one piece every CACHE_SECONDS.

Leaf module (os, stat, time, aether.steps).
"""

import os
import stat
import typing

from .steps import finish
import time

RESERVE_SHARE = 0.05
RESERVE_MIN = 16 << 20
RESERVE_MAX = 1 << 30
SCAN_MAX = 200_000            # entries one measurement visits; past it the count is a floor
CACHE_SECONDS = 10.0
STEP_ENTRIES = 500            # entries a step of the walk visits (about 2 ms)
SYNC_MAX = 2_000              # with a walker: entries walked at once; a bigger tree is walked in slices

_cache: dict[str, list] = {}  # real root -> [bytes, measured at (monotonic)]
_walker: typing.Callable | None = None   # use_walker
_walking: dict[str, int] = {} # roots a walker is walking -> bytes moved meanwhile


def reserve_bytes(st):
    """The bytes kept for the system on a file system (from its os.statvfs result)."""
    total = st.f_blocks * st.f_frsize
    return int(min(RESERVE_MAX, max(RESERVE_MIN, total * RESERVE_SHARE), total // 4))


def free_bytes(st, system):
    """Bytes a writer may still use: the system all that is free, others less the reserve."""
    free = st.f_bavail * st.f_frsize
    return free if system else free - reserve_bytes(st)


def room(path, adding, system):
    """None when ``adding`` bytes fit on the file system holding ``path``; else what to say."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None                              # unknown: the write itself will say
    if st.f_blocks == 0:
        return None                              # a pseudo file system (no size to guard)
    left = free_bytes(st, system)
    if adding <= left:
        return None
    free = st.f_bavail * st.f_frsize
    if system:
        return f"the disk holding {path} has {free} bytes free, fewer than the {adding} needed"
    return (f"the disk holding {path} has {free} bytes free and the last {reserve_bytes(st)} are "
            f"kept for the system, so {adding} more bytes do not fit; delete files or forget "
            "memories you no longer need")


class Measuring(Exception):
    """What a tree holds is not known yet: its walk runs a slice at a time; ask again soon."""

    code = "disk_measuring"


def use_walker(walker):
    """Walk big trees through ``walker(root, steps, started)`` (aetherd's: ``steps`` run a slice
    per loop turn, then ``measured(root, total, started)``; it answers False when it cannot take
    the walk now) instead of in one piece; None: in one piece again."""
    global _walker
    _walker = walker
    _walking.clear()


def tree_bytes(root, now=time.monotonic):
    """Bytes the tree at ``root`` holds (cached for CACHE_SECONDS); 0 when it does not exist.

    With a walker (``use_walker``), a tree of more than SYNC_MAX entries is measured by it:
    meanwhile the last measure answers, or ``Measuring`` when there is none yet."""
    hit = _cache.get(root)
    if hit is not None and (now() - hit[1] < CACHE_SECONDS or root in _walking):
        return hit[0]
    if root not in _walking:
        started = now()
        steps = measure_steps(root)
        total = finish(steps, None if _walker is None else SYNC_MAX // STEP_ENTRIES)
        if total is not None:
            _cache[root] = [total, started]
            return total
        _walking[root] = 0                       # a big tree: the rest of the walk, a slice at a time
        if _walker is None or not _walker(root, steps, started):
            del _walking[root]                   # the walker is full: the next call tries again
            steps.close()                        # (and gives the directory it held back now)
    if hit is not None:
        return hit[0]
    raise Measuring(f"aetherd is measuring what {root} holds (more than {SYNC_MAX} entries, walked a "
                    "slice at a time so nobody waits); try again in a moment")


def measured(root, total, started):
    """A walk of ``root`` that began at ``started`` (monotonic) ended with ``total`` bytes (None:
    it failed). What ``moved`` reported while it ran is added: the walk may have passed a
    directory before a write into it (counting a write twice errs on the safe side)."""
    during = _walking.pop(root, 0)
    if total is not None:
        _cache[root] = [max(0, total + max(0, during)), started]


def moved(root, delta):
    """Move the cached measure of ``root`` by ``delta`` bytes (a write or a delete just done)."""
    hit = _cache.get(root)
    if hit is not None:
        hit[0] = max(0, hit[0] + delta)
    if root in _walking:
        _walking[root] += delta


def forget(root=None):
    """Drop the cached measure of ``root`` (all of them when None)."""
    if root is None:
        _cache.clear()
    else:
        _cache.pop(root, None)


def measure_steps(root):
    """The walk of tree_bytes, as a generator: it yields every STEP_ENTRIES entries and
    returns the bytes (allocated blocks; a file under several names counts once; it stays
    on root's file system and stops after SCAN_MAX entries, a floor then)."""
    try:
        device = os.stat(root).st_dev
    except OSError:
        return 0
    total, seen, stack, inodes = 0, 0, [root], set()
    while stack and seen < SCAN_MAX:
        here = stack.pop()
        try:
            it = os.scandir(here)
        except OSError:
            continue
        with it:
            while seen < SCAN_MAX:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError:
                    break
                seen += 1
                if seen % STEP_ENTRIES == 0:
                    yield seen
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if st.st_ino in inodes:
                        continue             # one file under several names counts once
                    inodes.add(st.st_ino)
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode) and st.st_dev == device:
                    stack.append(entry.path)
    return total
