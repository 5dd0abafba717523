"""agent.ask in the real image, answered at the console (issue 12): the disk janitor example,
deployed over virtio-serial, asks before it deletes a large file in another agent's home; the
console's prompt shows the request, `requests` lists it, `approve N` (and its yes) lets it
delete; a second request answered `deny N` deletes nothing; a third is approved from the host
(`aetherctl approve N` over virtio-serial)."""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness
from aether.packages.upload import upload

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "disk_janitor"
ARGS = 'args = ["--once", "--min-size", "3k", "--min-age", "0s", "--timeout", "600"]'
HOME = "/var/lib/aether/home"


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


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
    assert "is current" in upload(c, str(package(tmp_path)))["message"]
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
