"""Line editing on a terminal, without readline (not in the image).

Emacs-style keys: arrows, Home/End, Ctrl-A/E/B/F, Backspace/Delete,
Ctrl-U/K/W (cut to start, to end, a word), Ctrl-L (redraw), Up/Down
(history), Ctrl-C (raises KeyboardInterrupt), Ctrl-D on an empty line (end of
input: returns None).  Typing at the end of the line echoes just the
character, so a serial log reads like the keys typed.

The terminal is raw only while a line is read; between lines it is back in
its own mode (with ISIG), so Ctrl-C while a plan runs is a real SIGINT.
"""

import codecs
import os
import termios

KEYS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left", "\x1bOA": "up",
        "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left", "\x1b[H": "home", "\x1b[F": "end",
        "\x1bOH": "home", "\x1bOF": "end", "\x1b[1~": "home", "\x1b[4~": "end", "\x1b[3~": "delete",
        "\x1b[7~": "home", "\x1b[8~": "end"}
CONTROL = {"\x01": "home", "\x05": "end", "\x02": "left", "\x06": "right", "\x7f": "backspace",
           "\x08": "backspace", "\x0b": "kill_end", "\x15": "kill_start", "\x17": "kill_word",
           "\x0c": "redraw", "\x10": "up", "\x0e": "down", "\r": "enter", "\n": "enter",
           "\x03": "interrupt", "\x04": "eof"}


class LineEditor:
    def __init__(self, fd, write, history=(), keep=500):
        self.fd, self.write = fd, write
        self.history = list(history)[-keep:]
        self.keep = keep
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.pending = ""
        self.last_enter = None          # "\r" after CR: an LF right behind it belongs to it

    def read(self, prompt, remember=True):
        """One line (without newline), or None at end of input."""
        saved = termios.tcgetattr(self.fd)
        raw = list(saved)
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        raw[0] &= ~(termios.IXON | termios.ICRNL)
        raw[6] = list(saved[6])
        raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self.fd, termios.TCSADRAIN, raw)
        try:
            line = self._edit(prompt)
        finally:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
        if line and remember and (not self.history or self.history[-1] != line):
            self.history = (self.history + [line])[-self.keep:]
        return line

    def _keys(self):
        while True:
            while self.pending:
                key, self.pending = _split_key(self.pending)
                if key is None:
                    break
                yield key
            data = os.read(self.fd, 256)
            if not data:
                yield "eof"
                continue
            self.pending += self.decoder.decode(data)

    def _edit(self, prompt):
        buf, pos = [], 0
        browsing, draft = len(self.history), ""
        self.write(prompt)

        def redraw():
            tail = len(buf) - pos
            self.write("\r" + prompt + "".join(buf) + "\x1b[K" + (f"\x1b[{tail}D" if tail else ""))

        for key in self._keys():
            if key == "\n" and self.last_enter == "\r" and not buf:
                self.last_enter = None
                continue
            action = KEYS.get(key) or CONTROL.get(key)
            self.last_enter = key if action == "enter" else None
            if action == "enter":
                self.write("\n")                       # OPOST is left on: the tty adds the CR
                return "".join(buf)
            if action == "interrupt":
                self.write("^C\n")
                raise KeyboardInterrupt
            if action == "eof":
                if not buf:
                    self.write("\n")
                    return None
                action = "delete"
            if action is None:
                if key.startswith("\x1b") or (len(key) == 1 and ord(key) < 32):
                    continue                             # an unknown key: ignore it
                buf[pos:pos] = list(key)
                pos += len(key)
                if pos == len(buf):
                    self.write(key)
                else:
                    redraw()
                continue
            if action in ("up", "down"):
                if browsing == len(self.history):
                    draft = "".join(buf)
                browsing = max(0, browsing - 1) if action == "up" else min(len(self.history), browsing + 1)
                text = self.history[browsing] if browsing < len(self.history) else draft
                buf, pos = list(text), len(text)
            elif action == "left":
                pos = max(0, pos - 1)
            elif action == "right":
                pos = min(len(buf), pos + 1)
            elif action == "home":
                pos = 0
            elif action == "end":
                pos = len(buf)
            elif action == "backspace":
                if pos:
                    del buf[pos - 1]
                    pos -= 1
            elif action == "delete":
                if pos < len(buf):
                    del buf[pos]
            elif action == "kill_end":
                del buf[pos:]
            elif action == "kill_start":
                del buf[:pos]
                pos = 0
            elif action == "kill_word":
                start = pos
                while start and buf[start - 1] == " ":
                    start -= 1
                while start and buf[start - 1] != " ":
                    start -= 1
                del buf[start:pos]
                pos = start
            elif action == "redraw":
                self.write("\x1b[H\x1b[2J")
            redraw()
        return None


def _split_key(text):
    """(first key, rest), or (None, text) when an escape sequence is not complete yet."""
    if not text.startswith("\x1b"):
        return text[0], text[1:]
    if len(text) == 1:
        return None, text
    if text[1] in "[O":
        i = 2
        while i < len(text) and (text[i].isdigit() or text[i] == ";"):
            i += 1
        if i >= len(text):
            return None, text
        return text[:i + 1], text[i + 1:]
    return text[:2], text[2:]                           # Alt-key: dropped by the caller
