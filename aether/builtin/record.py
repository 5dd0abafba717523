"""record: writes a reading into the agent's context every so often.

    args: READING [READING ...] [--every SECONDS]

Readings are those of aether.builtin.metrics (load.1, memory.used_percent,
cpu.percent, ...).  Each sample is one ``observation`` memory in the agent's
own scope, tagged ``record`` and with the reading's name, so "what was the
load this morning" is a search; the scope's quota and compaction keep it
bounded.  The intent shell starts it for "every 5 minutes record the load".
"""

import time

from ..client import Client
from . import metrics

MIN_INTERVAL = 1.0


def parse(args):
    readings, every, it = [], 60.0, iter(args)
    for arg in it:
        if arg == "--every":
            try:
                every = float(next(it, ""))
            except ValueError:
                raise SystemExit("record: --every takes a number of seconds, e.g. --every 300") from None
        else:
            readings.append(arg)
    if not readings:
        raise SystemExit("record: name a reading, e.g. load.1 or memory.used_percent")
    if every < MIN_INTERVAL:
        raise SystemExit(f"record: --every {every:g} is too often; at least {MIN_INTERVAL:g} s")
    return readings, every


def sample(c, readings, before):
    after = metrics.cpu_times()
    values = metrics.flatten(c.call("sys.info"), metrics.cpu_percent(before, after))
    missing = [r for r in readings if r not in values]
    if missing:
        raise SystemExit(f"record: no reading named {', '.join(missing)}; "
                         f"known: {', '.join(sorted(values))}")
    return after, {r: values[r] for r in readings}


def main(args):
    readings, every = parse(args)
    with Client() as c:
        before = metrics.cpu_times()
        while True:
            time.sleep(every)
            before, values = sample(c, readings, before)
            text = ", ".join(f"{k} = {v:g}" for k, v in values.items())
            c.call("ctx.remember", text=f"recorded at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} "
                                        f"UTC: {text}",
                   kind="observation", tags=["record", *readings], importance=0.2)
            print(text, flush=True)
