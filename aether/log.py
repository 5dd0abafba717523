"""The log of a long-lived daemon, PID 1 (aether/pid1/init.py) and aetherd alike:
lines on the console, and a ring of recent lines in memory.

Written with os.write on a raw descriptor (the console), so a slow or gone
console never raises into the process that logs.
"""

import os
import time
from _collections import deque  # the C module itself: the collections package costs PID 1 ~19 ms before its first prompt under TCG

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Log:
    def __init__(self, prefix="aether-init", fd=2, level="info", ring=1000):
        self.prefix = prefix
        self.fd = fd
        self.level = LEVELS[level]
        self.recent: deque[tuple] = deque(maxlen=ring)
        self.new_line = False    # start the next console line on a line of its own

    def set_level(self, name):
        self.level = LEVELS[name]

    def break_next_line(self):
        """The next line goes out after a newline: PID 1 asks for this once the consoles
        are started, so that a line logged after a console's prompt does not run on from it."""
        self.new_line = True

    def _emit(self, level, msg):
        self.recent.append((time.monotonic(), level, msg))
        if LEVELS[level] < self.level:
            return
        tag = "" if level == "info" else f"{level.upper()}: "
        line = f"{self.prefix}: {tag}{msg}\n".encode("utf-8", "replace")
        if self.new_line:
            self.new_line = False
            line = b"\n" + line
        try:
            os.write(self.fd, line)
        except OSError:
            pass

    def debug(self, msg):
        self._emit("debug", msg)

    def info(self, msg):
        self._emit("info", msg)

    def warning(self, msg):
        self._emit("warning", msg)

    def error(self, msg):
        self._emit("error", msg)

    def exception(self, what, exc):
        """Log an exception with its traceback, without importing traceback eagerly."""
        import traceback
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.error(f"{what}: {exc!r}")
        for line in text.rstrip().splitlines():
            self._emit("error", "  " + line)
