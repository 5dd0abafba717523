"""The placeholder console's command handling (the terminal part is tested in the VM)."""

import io

from aether import console


def test_help_lists_every_command():
    text = console.dispatch("help", print)
    for name in ("help", "status", "poweroff", "reboot"):
        assert name in text


def test_unknown_command_is_helpful():
    text = console.dispatch("launch rockets", print)
    assert "unknown command 'launch'" in text and "help" in text


def test_arguments_are_refused_with_a_reason():
    assert "takes no arguments" in console.dispatch("status now", print)


def test_blank_lines_do_nothing():
    assert console.dispatch("   \n", print) is None


def test_status_reports_memory_in_the_documented_format():
    text = console.cmd_status(print)
    import re
    assert re.search(r"^memory: \d+\.\d MiB used of \d+\.\d MiB$", text, re.M)
    assert re.search(r"^uptime: \d+\.\d\d s$", text, re.M)
    assert re.search(r"^pid1: ", text, re.M) and re.search(r"^mounts: .*/proc", text, re.M)


def test_repl_survives_errors_and_ends_on_eof(monkeypatch):
    out = []
    monkeypatch.setitem(console.COMMANDS, "status", (lambda _o: 1 / 0, "boom"))
    assert console.repl(io.StringIO("status\nhelp\n"), out.append) == 0
    assert out[0].startswith("error: division by zero")
    assert "understands" in out[1]
