"""Agents written with aether.sdk, for tests/host/test_sdk.py.

``ticker`` is the ten-line agent of the SDK's docs; the others each exercise one part
(asking a person, attacking the answers, children) and report what happened as log lines.
"""

import json

from aether import sdk


def tick(agent):                                    # the ten-line agent
    seen = agent.state.setdefault("seen", 0) + 1
    agent.state["seen"] = seen
    load = agent.call("sys.info")["load"][0]
    agent.log(f"tick {seen}: load {load}")
    if seen % 3 == 0:
        agent.remember(f"load was {load} at tick {seen}", kind="observation")


def ticker(args):
    return sdk.run(tick, every=float(args[0]) if args else 0.3, args=args)


def asker(args):
    """args: STEP [TIMEOUT]: ask once, log the answer, and create the file only on a yes."""
    def step(agent):
        answer = agent.ask(args[0], "the test wants to know", details="one file in my home",
                           timeout=float(args[1]) if len(args) > 1 else 60)
        agent.log(f"answer {answer.id}: {answer.state} by {answer.by} note {answer.note}")
        if answer:
            open("done-" + str(answer.id), "w").close()
        return sdk.DONE
    return sdk.run(step, args=args)


def attacker(args):
    """Ask, then try to approve the request itself, list every request, read another's."""
    def step(agent):
        mine = agent.call("agent.ask", step="let me in", why="I approve myself", wait=False)["id"]
        for method, params in (("agent.approve", {"id": mine}), ("agent.deny", {"id": mine}),
                               ("agent.approve", {"id": int(args[0])}), ("agent.requests", {}),
                               ("agent.answer_of", {"id": int(args[0])})):
            try:
                agent.call(method, **params)
                agent.log(f"attack {method} {params['id'] if params else ''}: allowed")
            except sdk.AbiError as e:
                agent.log(f"attack {method}: {e.code}")
        agent.log(f"mine {json.dumps(agent.call('agent.answer_of', id=mine))}")
        agent.sleep(60)
        return sdk.DONE
    return sdk.run(step, args=args)


def parent(args):
    """Spawn a child that exits 3, wait for it, log how it ended."""
    def step(agent):
        agent.spawn("sdk-child", "/bin/sh", ["-c", "echo child ran; exit 3"])
        done = agent.wait_for("sdk-child", timeout=20)
        agent.log(f"child {done['state']} {done['last_exit']}")
        return sdk.DONE
    return sdk.run(step, args=args)


def poller(args):
    """Ask without waiting, then poll every 0.2 s until a person answers; log what came."""
    def step(agent):
        rid = agent.ask_later(args[0], "the test polls for it", timeout=60)
        agent.log(f"asked {rid}")
        while True:
            answer = agent.answer_of(rid)
            if answer.state != "pending":
                break
            agent.sleep(0.2)
        agent.log(f"polled answer {rid}: {answer.state} by {answer.by}")
        return sdk.DONE
    return sdk.run(step, args=args)


def talker(args):
    """Say one thing three ways: agent.log, print, logging."""
    import logging

    def step(agent):
        agent.log("via log")
        print("via print")
        logging.getLogger("talker").warning("via logging")
        agent.sleep(30)
    return sdk.run(step, args=args)
