"""sysmon: samples CPU, memory, pressure and disk at an interval, records them, and
raises an alert event when a threshold is crossed (and another when it clears).

    args: [--interval SECONDS] [--memory PERCENT] [--cpu PERCENT] [--disk PERCENT]
          [--pressure AVG10]

Samples go to its output (``agent.logs sysmon``) as one JSON line each; the
context store's journal will take them once it lands.  Alerts are edge
triggered: one when a reading goes above its threshold, one when it is back.
"""

import json
import time

from ..client import Client
from . import metrics

DEFAULTS = {"interval": 5.0, "memory": 90.0, "cpu": 95.0, "disk": 90.0, "pressure": 20.0}


def parse(args):
    opts = dict(DEFAULTS)
    it = iter(args)
    for arg in it:
        key = arg.lstrip("-")
        if key not in opts:
            raise SystemExit(f"sysmon: unknown option {arg!r} (known: {', '.join('--' + k for k in opts)})")
        try:
            opts[key] = float(next(it))
        except (StopIteration, ValueError):
            raise SystemExit(f"sysmon: {arg} needs a number") from None
    return opts


def thresholds(opts, values):
    checks = {"memory.used_percent": opts["memory"], "cpu.percent": opts["cpu"]}
    for name in values:
        if name.startswith("disk.") and name.endswith(".used_percent"):
            checks[name] = opts["disk"]
        elif name.startswith("pressure."):
            checks[name] = opts["pressure"]
    return checks


def main(args):
    opts = parse(args)
    above = set()
    with Client() as c:
        before = metrics.cpu_times()
        while True:
            time.sleep(opts["interval"])
            after = metrics.cpu_times()
            values = metrics.flatten(c.call("sys.info"), metrics.cpu_percent(before, after))
            before = after
            print(json.dumps({"time": round(time.time(), 1), **values}), flush=True)
            for name, limit in thresholds(opts, values).items():
                value = values.get(name)
                if value is None:
                    continue
                if value > limit and name not in above:
                    above.add(name)
                    c.call("sys.alert", level="warning", message=f"{name} is {value} (above {limit:g})",
                           data={"metric": name, "value": value, "threshold": limit})
                elif value <= limit and name in above:
                    above.discard(name)
                    c.call("sys.alert", level="info", message=f"{name} is back to {value} (limit {limit:g})",
                           data={"metric": name, "value": value, "threshold": limit})
