"""Agent programs for the broker's host tests (run as forked agents: ``program =
"tests.host.broker_entries:NAME"``)."""

import json
import threading


def concurrent(args):
    """args[0]: where to write [[code, result or message, tag]], args[1]: JSON
    {"calls": [{"tag", "params"}], "timeout"}: every call at once, each on its own connection."""
    from aether.abi.protocol import AbiError
    from aether.client import Client
    spec = json.loads(args[1])
    out = [None] * len(spec["calls"])
    start = threading.Barrier(len(spec["calls"]))

    def one(i, call):
        try:
            with Client(timeout=spec.get("timeout", 60)) as c:
                start.wait()
                out[i] = ["ok", c.call("llm.complete", **call["params"]), call.get("tag")]
        except AbiError as e:
            out[i] = [e.code, str(e), call.get("tag")]
        except Exception as e:  # noqa: BLE001 - recorded for the test
            out[i] = ["exception", repr(e), call.get("tag")]
    threads = [threading.Thread(target=one, args=(i, call)) for i, call in enumerate(spec["calls"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(args[0], "w") as f:
        json.dump(out, f)
    return 0


def repeat(args):
    """args[0]: a file whose existence says stop, args[1]: JSON llm.complete params: ask
    again and again (one call outstanding at a time), until told to stop or refused."""
    import os
    from aether.abi.protocol import AbiError
    from aether.client import Client
    params = json.loads(args[1])
    done = 0
    with Client(timeout=300) as c:
        while not os.path.exists(args[0]):
            try:
                c.call("llm.complete", **params)
            except AbiError as e:
                print(f"refused after {done} calls: {e}", flush=True)
                return 1
            done += 1
    print(f"{done} calls", flush=True)
    return 0
