"""The error every supervisor request raises when it cannot be done."""


class AgentError(Exception):
    """A request about agents cannot be done; ``kind`` maps it to an ABI error code."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
