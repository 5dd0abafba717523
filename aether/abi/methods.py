"""What an ABI method is: Method (schema, who may call it, handler) and the access levels.

The table of every method is built in aether/abi/calls/__init__.py, from the
namespaces there; they import this module, and it imports none of them.

Access levels, checked here for every call (handlers never re-decide them):

* ``PUBLIC``: every caller, a plain local uid (``uid:N``) included.  Only calls
  that change nothing: reads of the machine's public state, and reads of the
  context store, which itself shows a caller only the scopes it may read.
* ``ANY``: every principal the machine manages -- an agent, the shell, the
  host.  A plain local uid is refused: it is read-only (docs/security.md).
* ``AGENT``: an agent, about itself (the shell and the host may name any agent).
* ``PRIVILEGED``: the shell and the host only.

Acting on an agent is allowed for the privileged and for its own ancestors:
an agent cannot act on another agent it does not own.
"""

from .protocol import InvalidParams, PermissionDenied

PUBLIC, ANY, AGENT, PRIVILEGED = "public", "any", "agent", "privileged"
LEVELS = (PUBLIC, ANY, AGENT, PRIVILEGED)


class Method:
    def __init__(self, name, handler, params, access, doc):
        if access not in LEVELS:
            raise ValueError(f"{name}: access {access!r} is not one of {', '.join(LEVELS)}")
        self.name, self.handler, self.params = name, handler, params
        self.access, self.doc = access, doc

    def admit(self, caller):
        """Raise PermissionDenied unless caller's kind may call this method at all."""
        if self.access == PUBLIC or caller.privileged:
            return
        if self.access == PRIVILEGED:
            raise PermissionDenied(f"{self.name} is for the shell and the host; "
                                   f"{caller.principal} may not call it")
        if self.access == AGENT and not caller.agent:
            raise PermissionDenied(f"{self.name} is for agents; {caller.principal} is not one")
        if not caller.agent:
            raise PermissionDenied(f"{self.name} changes the machine; {caller.principal} is a local "
                                   "user that is neither an agent nor root, and may only read "
                                   "(methods whose access is 'public'; run it as root, or as an agent)")

    def call(self, d, caller, params, conn):
        self.admit(caller)
        from ..schema import ValidationError, validate
        try:
            params = validate(self.params, params, "params")
        except ValidationError as e:
            raise InvalidParams(f"{self.name}: {e}") from None
        return self.handler(d, caller, params, conn)

    def describe(self):
        return {"name": self.name, "access": self.access, "doc": self.doc, "params": self.params}


def obj(required=(), **props):
    """A params schema: an object with these properties, nothing else."""
    return {"type": "object", "properties": props, "required": list(required),
            "additionalProperties": False}


NAME = {"type": "string", "minLength": 1, "maxLength": 32, "description": "an agent's name"}
