"""Stage logging: every long step says what it does and how long it took."""

import contextlib
import sys
import time


class BuildError(Exception):
    """A build step failed; the message says what and how to fix it."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint

    def __str__(self):
        text = super().__str__()
        return f"{text}\n  hint: {self.hint}" if self.hint else text


def info(msg):
    print(f"[aether-build] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stage(name):
    """Print the start and the duration of one build stage."""
    info(f"{name} ...")
    start = time.monotonic()
    yield
    info(f"{name} done in {time.monotonic() - start:.1f}s")
