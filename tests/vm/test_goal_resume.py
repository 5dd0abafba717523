"""A goal cut by a power cut resumes on the flashed disk (issue 11).

The disk image boots through the firmware with QEMU's user network; the model is
tests/fake_openai.py on the host (10.0.2.2 from the guest), named in the data
partition's /var/lib/aether/config (the flashed disk's kernel command line is its
own).  A goal agent spawned through the ABI works a 5-step goal; while its think
after step 3 waits for the model, QEMU is killed (no shutdown, no sync).  On the
next boot the agent comes back by its restart policy and carries on: its thread
continues from the last committed turn, every tool call is in the journal exactly
once, and the goal reaches ``done``.
"""

import json
import re

import pytest

import harness
from tests.fake_openai import FakeOpenAI, Reply

STEPS = 5
GOAL = "list your directory five times, then report"
GUEST_HOST = "10.0.2.2"            # the host's 127.0.0.1, seen from QEMU's user network


def step(k):
    return Reply(content=None, tool_calls=[{"id": f"call_{k}", "name": "files_list",
                                            "arguments": json.dumps({"path": "."})}])


def tool_entries(c):
    return [e for e in c.call("ctx.journal", kind="tool.call", limit=1000) if e["actor"] == "agent:worker"]


def boot(booter, disk):
    vm = booter.boot(disk=disk, firmware="bios", net=True)
    return vm, harness.abi_client(vm)


wait = harness.wait


@pytest.mark.timeout(900)
def test_a_goal_cut_by_a_power_cut_resumes_on_the_flashed_disk(booter, disk_copy):
    with FakeOpenAI() as model:
        vm, c = boot(booter, disk_copy)
        config = (f"llm.endpoint = http://{GUEST_HOST}:{model.port}/v1\nllm.model = fake\nllm.timeout = 120\n")
        c.call("tool.call", name="files.write", args={"path": "/var/lib/aether/config", "content": config,
                                                      "mode": "overwrite"})
        c.close()
        vm.send_confirmed("poweroff")
        assert vm.wait_exit(harness.SHUTDOWN_TIMEOUT * 2) == 0

        # boot 2: the goal runs three steps; its fourth think is held, and the power is cut
        model.queue(step(1), step(2), step(3), Reply("never heard", delay=600))
        vm, c = boot(booter, disk_copy)
        assert c.call("sys.info")["llm"]["configured"], "the data partition's config was not read"
        c.call("agent.spawn", manifest={"name": "worker", "goal": GOAL, "program": "aether.builtin.goal:main",
                                        "restart": "on-failure"})
        wait(lambda: len(model.requests) >= 4, 300, "the goal's fourth think")
        assert len(tool_entries(c)) == 3
        vm.proc.kill()                                  # the power cut
        vm.proc.wait(10)
        c.close()

        # boot 3: the agent comes back and finishes
        model.queue(step(4), step(5), Reply("Listed it five times."))
        vm, c = boot(booter, disk_copy)
        goal = wait(lambda: next((g for g in c.call("ctx.goals", scope="agent:worker")
                                  if g["intent"] == GOAL and g["status"] in ("done", "failed")), None),
                    400, "the goal to finish after the power cut")
        assert goal["status"] == "done" and goal["outcome"] == "Listed it five times.", goal
        calls = tool_entries(c)
        assert len(calls) == STEPS and len({e["body"]["call_id"] for e in calls}) == STEPS
        thread_id = int(calls[0]["body"]["call_id"].split(":")[0])
        page = c.call("ctx.thread", thread_id=thread_id, verify=True)
        assert page["chain"]["ok"]
        assert sum(1 for t in page["turns"] if t["role"] == "input" and t["body"].get("tool_results")) == STEPS
        assert re.search(r"resuming goal \d+", json.dumps(c.call("agent.logs", name="worker")))
        c.close()
