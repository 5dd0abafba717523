"""agent.ask in the real image, answered at the console (issue 12): the disk janitor example,
deployed over virtio-serial, asks before it deletes a large file in another agent's home; the
console's prompt shows the request, `requests` lists it, `approve N` (and its yes) lets it
delete; a second request answered `deny N` deletes nothing; a third is approved from the host
(`aetherctl approve N` over virtio-serial)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from aether.packages.upload import upload

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "disk_janitor"
JANITOR_GRANTS = ("root", "unconfined")      # it reads every home: deployed only when allowed
ARGS = 'args = ["--once", "--min-size", "3k", "--min-age", "0s", "--timeout", "600"]'
HOME = "/var/lib/aether/home"


wait = harness.wait


def package(tmp_path):
    """The example as shipped, except that it looks once, at files of any age from 1 KiB."""
    copy = tmp_path / "disk_janitor"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    manifest = (copy / "agent.toml").read_text()
    (copy / "agent.toml").write_text(re.sub(r"(?m)^args = .*$", ARGS, manifest))
    return copy


def plant(c, name):
    c.call("tool.call", name="files.write", args={"path": f"{HOME}/victim/{name}", "content": "x" * 4096})


def exists(c, name):
    listing = c.call("tool.call", name="files.list", args={"path": f"{HOME}/victim"})
    return name in str(listing)


def pending(c):
    return c.call("agent.requests")["pending"]


@pytest.mark.timeout(900)
def test_a_request_approved_and_one_denied_at_the_console(booter, tmp_path):
    vm = booter.boot(memory=1024)
    c = harness.abi_client(vm)
    c.call("agent.spawn", manifest={"name": "victim", "program": "aether.builtin.drill:main", "args": ["idle"]})
    wait(lambda: c.call("agent.inspect", name="victim")["state"] == "running", 60, "the victim agent")
    plant(c, "big-1.bin")
    assert "is current" in upload(c, str(package(tmp_path)), allow=JANITOR_GRANTS)["message"]
    first = wait(lambda: pending(c), 120, "the janitor's first request")[0]
    assert first["step"].startswith("delete ") and "victim/big-1.bin" in first["details"]

    shown = vm.command("status", timeout=60)              # its output ends with the next prompt's state
    assert "requests: 1 waiting" in shown and shown.rstrip().endswith("]") and "[1 request, " in shown
    listed = vm.command("requests", timeout=60)
    assert f"{first['id']}. disk-janitor asks: delete " in listed and "victim/big-1.bin" in listed
    assert exists(c, "big-1.bin")                          # nothing is deleted before the yes
    vm.send_confirmed(f"approve {first['id']}", timeout=60)
    vm.expect(rf"request {first['id']} of disk-janitor \(delete .*\): approved", 60)
    wait(lambda: not exists(c, "big-1.bin"), 120, "the approved deletion")

    plant(c, "big-2.bin")
    wait(lambda: c.call("agent.inspect", name="disk-janitor")["state"] == "exited", 120, "the janitor's first run")
    c.call("agent.start", name="disk-janitor")
    second = wait(lambda: pending(c), 120, "the janitor's second request")[0]
    vm.send_line(f"deny {second['id']}")                 # agents' log lines may reprint the prompt: expect the answer
    vm.expect(rf"request {second['id']} of disk-janitor \(delete .*\): denied", 60)
    wait(lambda: c.call("agent.inspect", name="disk-janitor")["state"] == "exited", 120, "the janitor's second run")
    assert exists(c, "big-2.bin")                          # denied: nothing deleted
    logs = c.call("agent.logs", name="disk-janitor")["lines"]
    assert any("denied: nothing deleted" in line for line in logs), logs

    # the third, from the host: aetherctl approve N over the virtio-serial channel
    plant(c, "big-3.bin")
    c.call("agent.start", name="disk-janitor")
    third = wait(lambda: pending(c), 120, "the janitor's third request")[0]
    c.close()                                  # the host channel takes one connection at a time
    out = subprocess.run([sys.executable, "-m", "aether.ctl", "--socket", str(vm.ctl_socket), "approve",
                          str(third["id"]), "from", "the", "host"], capture_output=True, text=True, timeout=60,
                         cwd=harness.REPO)
    assert out.returncode == 0 and "approved (from the host)" in out.stdout, out.stdout + out.stderr
    c = harness.abi_client(vm)
    wait(lambda: not exists(c, "big-3.bin"), 120, "the deletion approved from the host")
    journal = c.call("ctx.journal", scope="agent:disk-janitor", kind="agent.answer")
    assert [(e["body"]["state"], e["body"]["by"]) for e in journal] == \
        [("approved", "shell"), ("denied", "shell"), ("approved", "host")]
    assert {e["actor"] for e in journal} == {"system"}
    c.close()


ATTACKER = '''\
import json, os
from aether import sdk
from aether.client import Client


def outcome(client, method, params):
    try:
        client.call(method, **params)
        return "allowed"
    except sdk.AbiError as e:
        return e.code


def main(args):
    def step(agent):
        victim = int(args[0])
        mine = agent.ask_later("let me in", "I approve myself", timeout=600)
        tried = {label: outcome(agent.client, m, p) for label, m, p in (
            ("approve mine", "agent.approve", {"id": mine}), ("deny mine", "agent.deny", {"id": mine}),
            ("approve theirs", "agent.approve", {"id": victim}), ("deny theirs", "agent.deny", {"id": victim}),
            ("list", "agent.requests", {}), ("read theirs", "agent.answer_of", {"id": victim}))}
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                     # leave the session and the process group, and ask anew
            os.setsid()
            with Client() as c:
                out = {"who": c.call("abi.hello")["you"]["principal"],
                       "approve": outcome(c, "agent.approve", {"id": mine})}
            os.write(w, json.dumps(out).encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        tried["setsid"] = json.loads(os.read(r, 65536))
        print("RESULT " + json.dumps(tried, sort_keys=True), flush=True)
        agent.sleep(600)
        return sdk.DONE
    return sdk.run(step, args=args)
'''


@pytest.mark.timeout(600)
def test_an_agent_in_the_image_cannot_answer_requests(booter, tmp_path):
    """The attack from a real, confined agent: approve its own request and another's, deny,
    list, read another's; and from a child that left its session (the cgroup still says who)."""
    vm = booter.boot(memory=1024)
    c = harness.abi_client(vm)
    c.call("agent.spawn", manifest={"name": "victim", "program": "aether.builtin.drill:main", "args": ["idle"]})
    wait(lambda: c.call("agent.inspect", name="victim")["state"] == "running", 60, "the victim agent")
    plant(c, "big.bin")
    upload(c, str(package(tmp_path)), allow=JANITOR_GRANTS)
    victim = wait(lambda: pending(c), 120, "the janitor's request")[0]["id"]
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    (attacker / "agent.toml").write_text(f'name = "attacker"\nversion = "1.0.0"\nprogram = "attack:main"\n'
                                         f'args = ["{victim}"]\nrestart = "never"\n')
    (attacker / "attack.py").write_text(ATTACKER)
    upload(c, str(attacker))
    line = wait(lambda: next((x for x in c.call("agent.logs", name="attacker")["lines"] if x.startswith("RESULT ")),
                             None), 120, "the attacker's report")
    tried = json.loads(line[len("RESULT "):])
    assert tried == {"approve mine": "permission_denied", "deny mine": "permission_denied",
                     "approve theirs": "permission_denied", "deny theirs": "permission_denied",
                     "list": "permission_denied", "read theirs": "not_found",
                     "setsid": {"who": "agent:attacker", "approve": "permission_denied"}}, tried
    states = {r["agent"]: r["state"] for r in pending(c)}
    assert states == {"disk-janitor": "pending", "attacker": "pending"}
    assert exists(c, "big.bin")
    c.close()
