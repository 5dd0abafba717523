"""Disk space at the tools: a confined caller's quota, and the data disk's reserve.

A confined caller (an agent) writes under two rules, checked before any byte is
written (aether/diskspace.py holds the numbers):

* its ``disk_quota`` (``Caller.disk_quota``: the manifest's ``limits.disk`` less
  what its rows in the context store hold): the bytes its data directory holds
  after the write may not pass it (``quota_exceeded``);
* the reserve: a write that would leave less free space on the disk than the
  system's reserve is refused (``unavailable``), so one agent filling the disk
  never stops the context store, the shell or the other agents' records.

The privileged write without either rule: the disk's own limits apply.
"""

from .. import diskspace
from .core import ToolError, Unavailable


class QuotaExceeded(ToolError):
    """The write would take the caller past its disk quota."""

    code = "quota_exceeded"


def check(caller, root, adding, freeing=0):
    """Refuse a write of ``adding`` bytes (``freeing`` bytes go at the same time)."""
    if caller.privileged or adding <= 0:
        return
    problem = diskspace.room(root, adding, system=False)
    if problem is not None:
        raise Unavailable(f"{caller.principal} may not write {adding} bytes: {problem}",
                          rule="disk_reserve")
    limit = caller.disk_quota
    if limit is None:
        return
    try:
        used = diskspace.tree_bytes(root)
    except diskspace.Measuring as e:
        raise Unavailable(f"{caller.principal} may not write yet: {e}", rule="disk_quota") from None
    if used + adding - freeing > limit:
        raise QuotaExceeded(
            f"{caller.principal} may not write {adding} bytes: its data directory holds {used} "
            f"bytes and its disk quota allows {limit} in all; delete files it no longer needs "
            "(files.delete), or ask for a larger limits.disk in its manifest",
            used=used, limit=limit, adding=adding, rule="disk_quota")


def wrote(caller, root, delta):
    """Account ``delta`` bytes just written (negative: freed) to the caller's tree."""
    if not caller.privileged:
        diskspace.moved(root, delta)
