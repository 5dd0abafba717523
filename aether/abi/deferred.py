"""A handler's answer that comes later: the one thing handlers share with the server.

A handler (aether/abi/calls/) that cannot answer at once returns a Deferred and
later calls ``resolve(result)`` or ``fail(error)``; the server (server.py) binds
it to the connection that asked.  Handlers import this module, never the server.
"""


class Deferred:
    """A handler's promise to answer later: call ``resolve(result)`` or ``fail(error)``."""

    def __init__(self):
        self._done = None

    def bind(self, done):
        self._done = done

    def resolve(self, result):
        if self._done:
            self._done(result, None)

    def fail(self, error):
        if self._done:
            self._done(None, error)
