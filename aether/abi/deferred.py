"""A handler's answer that comes later: the one thing handlers share with the server.

A handler (aether/abi/calls/) that cannot answer at once returns a Deferred and
later calls ``resolve(result)`` or ``fail(error)``; the server (server.py) binds
it to the connection that asked.  Handlers import this module, never the server.
"""


class Deferred:
    """A handler's promise to answer later: call ``resolve(result)`` or ``fail(error)``.

    An answer given before ``bind`` is kept and handed over when it binds; only the
    first answer counts."""

    def __init__(self):
        self._done = None
        self._early = None

    def bind(self, done):
        self._done = done
        early, self._early = self._early, None
        if early is not None:
            done(*early)

    def resolve(self, result):
        self._answer(result, None)

    def fail(self, error):
        self._answer(None, error)

    def _answer(self, result, error):
        if self._done:
            self._done(result, error)
        elif self._early is None:
            self._early = (result, error)
