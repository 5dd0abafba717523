"""The shell's line editor on a real pseudo-terminal: keys in, line out, terminal mode restored."""

import os
import pty
import termios
import threading
import time

import pytest

from aether.shell.lineedit import LineEditor


@pytest.fixture
def term():
    master, slave = pty.openpty()
    shown = []
    yield master, slave, shown
    os.close(master)
    os.close(slave)


def raw_mode(fd, timeout=5):
    """Wait until the editor has put the terminal in raw mode (keys typed before are cooked)."""
    deadline = time.monotonic() + timeout
    while termios.tcgetattr(fd)[3] & termios.ICANON:
        assert time.monotonic() < deadline, "the editor never switched the terminal to raw mode"
        time.sleep(0.005)


def read_with(term, keys, history=(), prompt="> "):
    master, slave, shown = term
    editor = LineEditor(slave, shown.append, history)
    before = termios.tcgetattr(slave)
    result = {}

    def run():
        try:
            result["line"] = editor.read(prompt)
        except KeyboardInterrupt:
            result["line"] = KeyboardInterrupt
    t = threading.Thread(target=run)
    t.start()
    raw_mode(slave)
    os.write(master, keys.encode())
    t.join(5)
    assert not t.is_alive(), "the editor did not finish the line"
    assert termios.tcgetattr(slave) == before, "the terminal mode was not restored"
    return result["line"], "".join(shown), editor


def test_plain_typing_echoes_just_the_characters(term):
    line, shown, _ = read_with(term, "list agents\r")
    assert line == "list agents"
    assert shown == "> list agents\n"


def test_cr_lf_is_one_enter_not_two(term):
    line, _, editor = read_with(term, "status\r\nhelp\r")
    assert line == "status"
    assert editor.read("> ") == "help"          # the LF behind the CR was not an empty line


def test_cursor_keys_edit_in_the_middle(term):
    line, _, _ = read_with(term, "stop smon\x1b[D\x1b[D\x1b[Dys\r")     # left x3, insert "ys"
    assert line == "stop sysmon"


def test_home_end_and_cutting(term):
    assert read_with(term, "world\x01hello \x05!\r")[0] == "hello world!"
    assert read_with(term, "garbage\x15status\r")[0] == "status"          # Ctrl-U
    assert read_with(term, "stop the sysmon\x17watch\r")[0] == "stop the watch"   # Ctrl-W
    assert read_with(term, "status now\x01\x06\x06\x06\x06\x06\x06\x0b\r")[0] == "status"   # Ctrl-K


def test_backspace_and_delete(term):
    assert read_with(term, "statuss\x7f\r")[0] == "status"
    assert read_with(term, "xstatus\x01\x1b[3~\r")[0] == "status"


def test_history_up_and_down_keeps_the_draft(term):
    line, _, editor = read_with(term, "dra\x1b[A\x1b[A\x1b[B\x1b[B\r", history=["first", "second"])
    assert line == "dra"
    assert read_with(term, "\x1b[A\x1b[A\r", history=["first", "second"])[0] == "first"


def test_entered_lines_join_the_history_once(term):
    line, _, editor = read_with(term, "status\rstatus\r")
    editor.read("> ")
    assert editor.history == ["status"]


def test_ctrl_c_raises_and_ctrl_d_on_an_empty_line_ends(term):
    line, shown, _ = read_with(term, "stat\x03")
    assert line is KeyboardInterrupt and shown.endswith("^C\n")
    assert read_with(term, "\x04")[0] is None


def test_utf8_split_across_reads_is_one_character(term):
    master, slave, shown = term
    editor = LineEditor(slave, shown.append)
    data = "remember café\r".encode()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("line", editor.read("> ")))
    t.start()
    raw_mode(slave)
    cut = data.index(b"\xa9")                        # the second byte of é
    os.write(master, data[:cut])
    os.write(master, data[cut:])
    t.join(5)
    assert result["line"] == "remember café"
