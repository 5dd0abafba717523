"""clock.now: the wall clock, the monotonic clock, uptime and the time zone."""

import time

from .core import args_schema, tool


def iso8601(seconds, utc):
    """``2025-01-31T12:00:00.123Z`` (utc) or ``2025-01-31T13:00:00.123+01:00`` (local)."""
    parts = time.gmtime(seconds) if utc else time.localtime(seconds)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", parts) + f".{int(seconds % 1 * 1000):03d}"
    if utc:
        return text + "Z"
    offset = parts.tm_gmtoff or 0
    sign, offset = ("+" if offset >= 0 else "-"), abs(offset)
    return f"{text}{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"


@tool("clock.now", args_schema({}))
def now(caller, args):
    """The current time: wall clock (UTC and local), monotonic clock, uptime and time zone.

    ``wall`` is seconds since the Unix epoch; ``monotonic`` and ``uptime`` never jump when
    the wall clock is set (uptime counts time suspended, monotonic does not).
    """
    wall = time.time()
    local = time.localtime(wall)
    return {"wall": round(wall, 3), "utc": iso8601(wall, True), "local": iso8601(wall, False),
            "monotonic": round(time.monotonic(), 3),
            "uptime": round(time.clock_gettime(time.CLOCK_BOOTTIME), 3),
            "timezone": {"name": local.tm_zone, "utc_offset_seconds": local.tm_gmtoff,
                         "dst": bool(local.tm_isdst > 0)}}
