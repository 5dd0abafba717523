"""A hostile agent against the file tools, the disk quota and its own confinement (issue 15).

The attacks of a second review, each through aetherd's real socket (aetherd --host, as
root here, so whatever got through would really land outside the agent's home):

* quota: a second name (hard link) deleted "frees" bytes the disk still holds; a sparse
  file overwritten "frees" its apparent size; either let the agent past limits.disk;
* links: a directory link in the home to another agent's home, a relative one climbing
  to it, a dangling link as the last component of a create, exports there;
* special files: a FIFO or a device node in the home, read or written by the tools,
  must be refused without blocking aetherd;
* the kernel: signals and ptrace on aetherd, aetherd's /proc files, its own cgroup's
  memory.max, /sys, /dev/shm, /run, an abstract unix socket.
"""

import json
import os
import socket
import stat

import pytest

from . import test_aetherd
from .conftest import sleep_until
from .test_aetherd import sh
from .test_confinement import done, needs_confinement, results
from .test_isolation_files import codes, probe

aetherd = test_aetherd.aetherd          # the fixture: aetherd --host on a temporary data location

pytestmark = pytest.mark.host
K = 1024


def write(path, content):
    return ["tool.call", {"name": "files.write", "args": {"path": path, "content": content,
                                                          "mode": "create"}}]


def test_deleting_a_second_name_frees_nothing_from_the_quota(aetherd):
    c = aetherd()

    def plant(home):
        (home / "a").write_bytes(os.urandom(200 * K))
        os.link(home / "a", home / "b")          # the agent may link its own files
    out = probe(c, aetherd, "linkhog", [
        write("c", "x" * 10 * K),                # measures the home: a (once) and c
        ["tool.call", {"name": "files.delete", "args": {"path": "b"}}],   # a still holds it all
        write("d", "x" * 150 * K)],              # 360 KiB in the home: past the 300 KiB
        plant, limits={"disk": "300K"})
    assert codes(out) == ["ok", "ok", "budget_exhausted"], out
    assert out[1][1]["freed_bytes"] == 0, out[1]
    assert not (aetherd.data / "home" / "linkhog" / "d").exists()


def test_overwriting_a_sparse_file_frees_only_the_blocks_it_held(aetherd):
    c = aetherd()

    def plant(home):
        (home / "a").write_bytes(os.urandom(200 * K))
        with open(home / "sparse", "wb") as f:
            f.truncate(1 << 30)                  # 1 GiB apparent, no blocks
    out = probe(c, aetherd, "sparsehog", [
        ["tool.call", {"name": "files.write", "args": {"path": "sparse", "content": "x",
                                                       "mode": "overwrite"}}],
        write("d", "x" * 150 * K)],              # 350 KiB in the home: past the 300 KiB
        plant, limits={"disk": "300K"})
    assert codes(out) == ["ok", "budget_exhausted"], out
    assert not (aetherd.data / "home" / "sparsehog" / "d").exists()


def test_links_to_another_agents_home_reach_nothing(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("victim", "echo my secret > secret; sleep 30"))
    victim = aetherd.data / "home" / "victim"
    sleep_until((victim / "secret").exists, 10)

    def plant(home):
        (home / "other").symlink_to(victim)                       # absolute, a directory
        (home / "up").symlink_to("../victim")                     # relative, climbing out
        (home / "new").symlink_to(victim / "planted")             # dangling: create through it
    ways = ["other/secret", "up/secret", str(victim / "secret")]
    out = probe(c, aetherd, "crosser", [
        *[["tool.call", {"name": "files.read", "args": {"path": p}}] for p in ways],
        write("new", "planted through a link"),
        write("other/planted", "planted"),
        ["tool.call", {"name": "files.write", "args": {"path": "up/deep/planted", "content": "x",
                                                       "make_parents": True}}],
        ["tool.call", {"name": "files.delete", "args": {"path": "other/secret"}}],
        ["tool.call", {"name": "files.list", "args": {"path": "up"}}],
        ["ctx.export", {"path": "other/x.json"}],
        ["ctx.export", {"path": str(victim / "x.json")}],
        ["ctx.export", {"path": str(aetherd.data / "x.json")}]], plant)
    assert codes(out) == ["permission_denied"] * 11, out
    assert set(os.listdir(victim)) - {".tmp"} == {"secret"}, os.listdir(victim)   # .tmp: its TMPDIR
    assert (victim / "secret").read_text() == "my secret\n"
    assert not (aetherd.data / "x.json").exists()


def test_fifos_and_devices_in_a_home_are_refused_and_aetherd_answers(aetherd):
    c = aetherd()

    def plant(home):
        os.mkfifo(home / "fifo")
        os.mknod(home / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    out = probe(c, aetherd, "piper", [
        ["tool.call", {"name": "files.read", "args": {"path": "fifo"}}],
        ["tool.call", {"name": "files.write", "args": {"path": "fifo", "content": "x",
                                                       "mode": "append"}}],
        ["tool.call", {"name": "files.write", "args": {"path": "fifo", "content": "x",
                                                       "mode": "overwrite"}}],
        ["tool.call", {"name": "files.read", "args": {"path": "zero"}}],
        ["tool.call", {"name": "files.write", "args": {"path": "zero", "content": "x",
                                                       "mode": "overwrite"}}],
        ["sys.info", {}]], plant)
    assert codes(out) == ["permission_denied"] * 5 + ["ok"], out
    assert "fifo" in out[0][1] and "char device" in out[3][1]
    home = aetherd.data / "home" / "piper"
    assert stat.S_ISFIFO(os.lstat(home / "fifo").st_mode)        # not replaced by a file
    assert stat.S_ISCHR(os.lstat(home / "zero").st_mode)


def test_an_agent_cannot_signal_trace_or_read_aetherd_nor_raise_its_cgroup(aetherd):
    needs_confinement()
    c = aetherd()
    name = f"aether-attack-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + name)
    listener.listen(4)
    listener.settimeout(0.2)
    pid = aetherd.proc.pid
    c.call("agent.spawn", manifest={"name": "kprobe", "restart": "never",
                                    "program": "tests.host.attack_entries:kernel_probe",
                                    "args": [str(pid), name]})
    done(c, "kprobe")
    got, lines = results(c, "kprobe")
    assert "done" in got, lines
    holes = {k: v for k, v in got.items() if v["outcome"] == "allowed"}
    assert not holes, json.dumps(holes, indent=1)
    with pytest.raises(OSError):
        listener.accept()                       # nothing reached the host's abstract socket
    assert aetherd.proc.poll() is None and c.call("sys.info") is not None
    listener.close()


def test_an_agent_granted_net_still_reaches_no_abstract_socket_nor_signals_aetherd(aetherd):
    """net puts the agent in the host's network namespace, where the host's abstract unix
    sockets live: only Landlock's scopes (ABI v6, Linux 6.12) keep them closed."""
    needs_confinement()
    from aether.agent import confine
    if confine.landlock_abi()[0] < 6:
        pytest.skip("Landlock below ABI v6 has no scopes (signals, abstract sockets)")
    c = aetherd()
    name = f"aether-attack-net-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + name)
    listener.listen(4)
    listener.settimeout(0.2)
    c.call("agent.spawn", manifest={"name": "kprobenet", "restart": "never", "grant": ["net"],
                                    "program": "tests.host.attack_entries:kernel_probe",
                                    "args": [str(aetherd.proc.pid), name]})
    done(c, "kprobenet")
    got, lines = results(c, "kprobenet")
    assert "done" in got, lines
    for what in ("abstract unix socket", "signal 0 to aetherd", "SIGSTOP to aetherd"):
        assert got[what]["outcome"] == "blocked", got[what]
    with pytest.raises(OSError):
        listener.accept()
    listener.close()
