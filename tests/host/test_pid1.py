"""PID-1 behaviour of the real init code, run on the host as a child subreaper.

These mirror the checks tini's and dumb-init's own test suites make, for a
Python PID 1: reaping, exit statuses, process-group stops, clean signal state
for children, and reporting a program that cannot start.
"""

import os
import signal
import sys
import time

import pytest

from aether import sysinfo

from .conftest import sleep_until

pytestmark = pytest.mark.host

SH = "/bin/sh"


def zombies_of(pid):
    """Zombie children of pid, read from /proc."""
    return [p for p in sysinfo.pids() if (st := sysinfo.proc_stat(p)) and st[:2] == ("Z", pid)]


def descendants(pid):
    return sysinfo.descendants(pid)


# Forks 100 children that outlive it: each waits for the parent's pipe to close,
# so all of them are orphans (re-parented to init) before any of them exits.
ORPHANER = """
import os
r, w = os.pipe()
for _ in range(100):
    if os.fork() == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
os._exit(0)
"""


def test_hundred_orphans_are_reaped_to_zero_zombies(host_init):
    init = host_init([{"name": "orphaner", "restart": "never",
                       "argv": [sys.executable, "-c", ORPHANER]}])
    init.wait_state("orphaner", "exited")
    sleep_until(lambda: init.status()["orphans_reaped"] == 100, 15)
    assert zombies_of(init.pid) == []
    assert descendants(init.pid) == []


def test_exit_statuses_are_recorded_while_the_reaper_runs(host_init):
    services = [{"name": f"exit{n}", "argv": [SH, "-c", f"exit {n}"], "restart": "never"}
                for n in range(256)]
    signals = {"HUP": 1, "INT": 2, "KILL": 9, "USR1": 10, "SEGV": 11, "TERM": 15}
    services += [{"name": f"sig{name}", "restart": "never",
                  "argv": [SH, "-c", f"kill -s {name} $$; sleep 5"]} for name in signals]
    # An orphan storm at the same time: its exits must not be mistaken for the services'.
    services.append({"name": "storm", "restart": "never",
                     "argv": [SH, "-c", "for i in $(seq 100); do (exit 7) & sleep 0 & done; exit 0"]})
    init = host_init(services)
    names = [s["name"] for s in services]
    sleep_until(lambda: all((s := init.service(n)) and s["state"] == "exited" for n in names), 60)
    for n in range(256):
        assert init.service(f"exit{n}")["last_exit"] == n
    for name, num in signals.items():
        assert init.service(f"sig{name}")["last_exit"] == 128 + num
    assert zombies_of(init.pid) == []


def group_members(pgid):
    return [p for p in sysinfo.pids() if (st := sysinfo.proc_stat(p)) and st[2] == pgid]


def test_stop_terms_the_whole_group(host_init):
    init = host_init([{"name": "tree", "stop_timeout": 5.0,
                       "argv": [SH, "-c", "sleep 1000 & sleep 1000 & wait"]}])
    pgid = init.wait_state("tree", "running")["pid"]
    sleep_until(lambda: len(group_members(pgid)) == 3, 5)
    start = time.monotonic()
    init.control("stop tree")
    init.wait_state("tree", "stopped")
    assert time.monotonic() - start < 2.0          # TERM was enough: no wait for the timeout
    sleep_until(lambda: group_members(pgid) == [], 3)


def test_stop_kills_a_group_that_ignores_term_after_the_timeout(host_init):
    init = host_init([{"name": "stubborn", "stop_timeout": 1.0,
                       "argv": [SH, "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"]}])
    pgid = init.wait_state("stubborn", "running")["pid"]
    sleep_until(lambda: len(group_members(pgid)) == 3, 5)
    start = time.monotonic()
    init.control("stop stubborn")
    time.sleep(0.5)
    assert len(group_members(pgid)) == 3           # TERM ignored by all three
    svc = init.wait_state("stubborn", "stopped", timeout=5)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 3.0
    assert svc["last_exit"] == 128 + signal.SIGKILL
    sleep_until(lambda: group_members(pgid) == [], 3)


GLIBC_RESERVED = (1 << 31) | (1 << 32)     # bits for signals 32 and 33

WRAPPER = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT})
for sig in (signal.SIGHUP, signal.SIGTTOU, signal.SIGPIPE, signal.SIGUSR2):
    signal.signal(sig, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_children_start_with_empty_mask_and_default_dispositions(host_init, tmp_path):
    out = tmp_path / "child-status"
    init = host_init([{"name": "probe", "restart": "never",
                       "argv": [SH, "-c", f"exec cat /proc/self/status > {out}"]}],
                     wrapper=[sys.executable, "-c", WRAPPER])
    init.wait_state("probe", "exited")
    fields = dict(line.split(":\t", 1) for line in out.read_text().splitlines() if ":\t" in line)
    assert int(fields["SigBlk"], 16) == 0
    # glibc's posix_spawn itself sets its two reserved signals (32 SIGCANCEL, 33 SIGSETXID)
    # to SIG_IGN in the child; every glibc program installs its own handlers for them at
    # start.  Every signal a program can name is at its default.
    assert int(fields["SigIgn"], 16) & ~GLIBC_RESERVED == 0
    # ...and init itself still answers SIGTERM although its parent blocked it.
    init.proc.send_signal(signal.SIGTERM)
    assert init.proc.wait(10) == 0


def test_missing_program_is_reported_not_looped(host_init):
    init = host_init([{"name": "ghost", "argv": ["/nonexistent/agent"]}])
    svc = init.wait_state("ghost", "failed")
    assert svc["last_error"] == "cannot start /nonexistent/agent: No such file or directory"
    time.sleep(1.0)
    assert init.service("ghost")["starts"] == 0
    assert "ghost: failed: cannot start /nonexistent/agent" in init.log()


def test_crash_loop_backs_off_then_fails(host_init):
    init = host_init([{"name": "crashy", "argv": [SH, "-c", "exit 3"], "backoff_initial": 0.05,
                       "intensity": 3, "period": 30}])
    svc = init.wait_state("crashy", "failed", timeout=10)
    assert svc["starts"] == 4 and svc["last_exit"] == 3
    assert "restarting in 0.05s" in init.log() and "restarting in 0.2s" in init.log()


def test_sigterm_stops_everything_and_leaves_no_process(host_init):
    init = host_init([{"name": "a", "argv": [SH, "-c", "sleep 1000"]},
                      {"name": "b", "argv": [SH, "-c", "trap '' TERM; sleep 1000"],
                       "stop_timeout": 0.5}])
    init.wait_state("a", "running")
    init.wait_state("b", "running")
    sleep_until(lambda: len(descendants(init.pid)) >= 4, 5)
    kids = descendants(init.pid)
    init.proc.send_signal(signal.SIGTERM)
    assert init.proc.wait(15) == 0
    for pid in kids:
        assert not os.path.exists(f"/proc/{pid}") or zombies_of(init.pid) == []
    assert "poweroff: stopping services" in init.log()


def test_service_output_reaches_the_log(host_init):
    init = host_init([{"name": "talker", "restart": "never",
                       "argv": [SH, "-c", "echo hello from talker; echo oops >&2"]}])
    init.wait_state("talker", "exited")
    sleep_until(lambda: "talker| oops" in init.log(), 5)
    assert "talker| hello from talker" in init.log()


def test_control_fifo_rejects_bad_commands_and_keeps_working(host_init):
    init = host_init([{"name": "s", "argv": [SH, "-c", "sleep 1000"]}])
    init.wait_state("s", "running")
    init.control("explode now")
    init.control("stop nosuch")
    init.control("restart s")
    sleep_until(lambda: init.service("s")["starts"] == 2, 5)
    log = init.log()
    assert "unknown command 'explode now'" in log and "no service named 'nosuch'" in log


def test_forked_entry_starts_clean_and_reports_its_exit(host_init, tmp_path):
    out = tmp_path / "forked"
    init = host_init([{"name": "forked", "restart": "never", "entry": "tests.host.entries:report",
                       "argv": ["report", str(out), "7"]},
                      {"name": "crasher", "restart": "never", "entry": "tests.host.entries:crash",
                       "argv": ["crash"]}])
    svc = init.wait_state("forked", "exited")
    assert svc["last_exit"] == 7
    blocked, ignored, own_group, fds = out.read_text().split(" ", 3)
    assert int(blocked, 16) == 0
    # exactly what a fresh interpreter ignores: SIGPIPE (13) and SIGXFSZ (25)
    assert int(ignored, 16) & ~GLIBC_RESERVED == (1 << 12) | (1 << 24)
    assert own_group == "True"
    assert fds.strip() == "[0, 1, 2, 3]"      # stdio, plus the one open()ed by listdir
    assert init.wait_state("crasher", "exited")["last_exit"] == 1
    sleep_until(lambda: "RuntimeError: entry crashed on purpose" in init.log(), 5)
