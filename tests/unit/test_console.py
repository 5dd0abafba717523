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
