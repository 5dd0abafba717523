"""Agent packages in the image: deploy over virtio-serial, the agent runs as its own uid under
Landlock reading its own package, a version that cannot import is refused while the old one
keeps running, and after a reboot the deployed agent is back at its current version.  An image
built with AGENTS (make image AGENTS=...) twice holds the same package bytes, and its agent runs
at first boot."""

import json
import os
import subprocess
import time

import pytest

import harness
from aether.abi.protocol import AbiError
from aether.packages.upload import upload

from test_durability import data_disk

AGENT = 'name = "greeter"\nversion = "{version}"\nprogram = "greeter:main"\nrestart = "on-failure"\n'
CODE = """\
import os, time
from greeting import TEXT
def main(args):
    here = os.path.dirname(os.path.abspath(__file__))
    print(f"{TEXT} {version} uid={os.getuid()} from={here}", flush=True)
    try:
        os.listdir("/var/lib/aether/system")
        print("system readable: WRONG", flush=True)
    except OSError:
        print("system closed", flush=True)
    while True:
        time.sleep(1)
"""


def package(root, version, code=CODE):
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent.toml").write_text(AGENT.format(version=version))
    (root / "greeter.py").write_text(code.replace("{version}", version))
    (root / "greeting.py").write_text('TEXT = "hello"\n')
    return root


def lines(c):
    return c.call("agent.logs", name="greeter", lines=20)["lines"]


def until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)
    return value


@pytest.mark.timeout(900)
def test_deploy_over_virtio_serial_survives_a_reboot(booter, tmp_path):
    disk = data_disk(tmp_path / "data.img")
    boot = {"disk": disk, "kernel": harness.qemu.default_kernel(), "initrd": harness.qemu.default_initrd()}
    vm = booter.boot(**boot)
    c = harness.abi_client(vm)
    c.sock.settimeout(180)
    v1 = package(tmp_path / "v1", "1.0.0")
    (v1 / "blob.bin").write_bytes(os.urandom(1300 << 10))      # three chunks over the port
    answer = upload(c, str(v1))
    assert answer["state"] == "running", answer
    out = until(lambda: [ln for ln in lines(c) if ln.startswith("hello 1.0.0")], 60)[0]
    assert "from=/var/lib/aether/agents/greeter/1.0.0" in out and "uid=0" not in out, out
    until(lambda: "system closed" in lines(c), 30)
    with pytest.raises(AbiError, match="2.0.0 failed to start.*nosuchmodule.*1.0.0 is started again"):
        upload(c, str(package(tmp_path / "v2", "2.0.0", code="import nosuchmodule\n" + CODE)))
    until(lambda: [ln for ln in lines(c) if ln.startswith("hello 1.0.0")], 60)
    c.call("sys.power", action="reboot")
    vm.wait_exit(120)                     # QEMU runs with -no-reboot: the guest's reboot ends it
    c.close()
    vm.close()

    vm = booter.boot(**boot)
    c = harness.abi_client(vm)
    until(lambda: c.call("agent.inspect", name="greeter")["state"] == "running", 120)
    until(lambda: [ln for ln in lines(c) if ln.startswith("hello 1.0.0")], 60)
    row = next(r for r in c.call("package.list") if r["name"] == "greeter")
    assert row["current"] == "1.0.0"
    assert {v["version"]: v["status"][:6] for v in row["versions"]} == {"1.0.0": "ok", "2.0.0": "failed"}
    c.close()


def build(out, agents):
    """scripts/build-image all with AGENTS into its own out directory (the kernel is cached)."""
    done = subprocess.run([str(harness.REPO / ".venv" / "bin" / "python"), "scripts/build-image", "all",
                           "--agents", " ".join(str(a) for a in agents)], cwd=harness.REPO,
                          env=dict(os.environ, AETHER_OUT=str(out)), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = json.loads((out / "images" / "manifest.json").read_text())["files"]
    return {f["path"]: f for f in files if f["path"].startswith("/usr/lib/aether/packages/")}


@pytest.mark.timeout(1200)
def test_agents_baked_into_the_image_run_at_first_boot(booter, tmp_path):
    pkg = package(tmp_path / "src", "1.0.0")
    first = build(tmp_path / "out1", [pkg])
    assert list(first) == ["/usr/lib/aether/packages/greeter-1.0.0.aether"]
    assert build(tmp_path / "out2", [pkg]) == first            # the same directory: the same bytes
    images = tmp_path / "out1" / "images"
    vm = booter.boot(disk=data_disk(tmp_path / "data.img"), kernel=images / "bzImage",
                     initrd=images / "rootfs.cpio.lz4")
    c = harness.abi_client(vm)
    until(lambda: [ln for ln in lines(c) if ln.startswith("hello 1.0.0")], 120)
    row = next(r for r in c.call("package.list") if r["name"] == "greeter")
    assert row["current"] == "1.0.0" and row["state"] == "running"
    c.close()
