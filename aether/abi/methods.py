"""The ABI's method table: name -> Method (schema, who may call it, handler).

Access levels: ``ANY`` (every caller), ``AGENT`` (an agent, about itself: the
shell and the host may name any agent), ``PRIVILEGED`` (the shell and the
host only).  Acting on an agent is allowed for the privileged and for its own
ancestors: an agent cannot act on another agent it does not own.
"""

from .protocol import InvalidParams, PermissionDenied

ANY, AGENT, PRIVILEGED = "any", "agent", "privileged"


class Method:
    def __init__(self, name, handler, params, access, doc):
        self.name, self.handler, self.params = name, handler, params
        self.access, self.doc = access, doc

    def call(self, d, caller, params, conn):
        if self.access == PRIVILEGED and not caller.privileged:
            raise PermissionDenied(f"{self.name} is for the shell and the host; "
                                   f"{caller.principal} may not call it")
        if self.access == AGENT and not (caller.agent or caller.privileged):
            raise PermissionDenied(f"{self.name} is for agents; {caller.principal} is not one")
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


def table():
    """Every method, by name."""
    from .calls import agent, ctx, llm, sys, tool
    methods = {}
    for module in (sys, agent, tool, llm, ctx):
        for m in module.METHODS:
            methods[m.name] = m
    return methods
