"""Times the offline planner where it runs: in the guest, as an agent.

    args: JSON {"agents": [...], "cases": [[phrase, intent, signature], ...], "rounds": N}

Plans every phrase ``rounds`` times, then prints one JSON line: per-phrase
latency percentiles (ms) and how many plans matched the expected intent and
signature, with the mismatches.  ``make bench`` spawns it with the phrasing
corpus from tests/shell/corpus.txt and reads the line from the agent's output.
"""

import json
import time

from .planner import plan


def run(agents, cases, rounds=3):
    times, wrong = [], []
    for phrase, intent, signature in cases:
        for _ in range(rounds):
            start = time.perf_counter()
            p = plan(phrase, agents)
            times.append((time.perf_counter() - start) * 1000)
        if (p.intent, p.signature()) != (intent, signature):
            wrong.append([phrase, intent, signature, p.intent, p.signature()])
    times.sort()

    def pct(q):
        return round(times[min(len(times) - 1, int(q * len(times)))], 3)
    return {"plans": len(times), "p50_ms": pct(0.50), "p95_ms": pct(0.95), "max_ms": round(times[-1], 3),
            "cases": len(cases), "correct": len(cases) - len(wrong), "wrong": wrong}


def main(args):
    spec = json.loads(args[0])
    print(json.dumps(run(spec["agents"], spec["cases"], spec.get("rounds", 3))), flush=True)
    return 125
