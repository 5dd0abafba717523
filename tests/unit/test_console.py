"""The console's own parts: the status it can tell without aetherd, and its arguments.

The shell it runs is tested in test_shell_*.py; the terminal in the VM tests."""

import re

from aether import console, localstatus


def test_local_status_reports_memory_in_the_documented_format():
    text = localstatus.text()
    assert re.search(r"^memory: \d+\.\d MiB used of \d+\.\d MiB$", text, re.M)
    assert re.search(r"^uptime: \d+\.\d\d s$", text, re.M)
    assert re.search(r"^pid1: ", text, re.M) and re.search(r"^mounts: .*/proc", text, re.M)


def test_status_fields_are_what_sys_info_adds():
    fields = localstatus.fields()
    assert set(fields) == {"pid1", "mounts", "services", "processes", "data"}
    assert "/proc" in fields["mounts"] and fields["processes"] >= 1


def test_services_line_reads_pid1s_status_file(tmp_path):
    path = tmp_path / "init.json"
    assert localstatus.services(str(path)).startswith("unknown (PID 1 has not written")
    path.write_text('{"services": [{"name": "aetherd", "state": "running", "pid": 7}]}')
    assert localstatus.services(str(path)) == "aetherd running (pid 7)"
    path.write_text("{broken")
    assert localstatus.services(str(path)).startswith(f"unknown ({path}:")


def test_main_wants_a_tty(capsys):
    assert console.main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_a_console_started_at_a_low_priority_returns_to_normal(monkeypatch):
    # PID 1 may start the consoles after the first at nice 10 (issue 14); the shell a
    # person then types in must not stay at that priority.
    calls = []
    nice = {"now": 10}
    monkeypatch.setattr(console.os, "getpriority", lambda which, who: nice["now"])
    monkeypatch.setattr(console.os, "setpriority", lambda which, who, prio: calls.append(prio))
    console.normal_priority()
    assert calls == [0]
    nice["now"] = 0
    console.normal_priority()                      # already normal: nothing to do
    assert calls == [0]


def test_normal_priority_without_the_right_to_raise_it_keeps_going(monkeypatch):
    def refuse(which, who, prio):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(console.os, "getpriority", lambda which, who: 10)
    monkeypatch.setattr(console.os, "setpriority", refuse)
    console.normal_priority()                      # host mode, not root: no exception
