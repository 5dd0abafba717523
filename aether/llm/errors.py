"""The model client's errors: LLMError and one subclass per way a call fails, each with a
stable ``code`` and one clear sentence.
"""


class LLMError(Exception):
    """A completion failed; ``code`` is stable and machine-readable."""

    code = "llm_error"

    def to_dict(self):
        return {"code": self.code, "message": str(self)}


class NotConfigured(LLMError):
    """No model endpoint is configured."""

    code = "not_configured"


class BudgetExceeded(LLMError):
    """The caller's token budget is spent or cannot cover the call; nothing was sent."""

    code = "budget_exceeded"


class InvalidRequest(LLMError):
    """The messages, tools or parameters are not a request this client can send."""

    code = "invalid_request"


class EndpointUnreachable(LLMError):
    """The endpoint could not be reached (refused, unresolvable, TLS unavailable)."""

    code = "unreachable"


class EndpointTimeout(LLMError):
    """The endpoint did not answer within the timeout or the deadline."""

    code = "timeout"


class EndpointError(LLMError):
    """The endpoint answered with an error: HTTP status and the server's own message."""

    code = "endpoint_error"

    def __init__(self, message, status=None, server_message=None):
        super().__init__(message)
        self.status, self.server_message = status, server_message

    def to_dict(self):
        return {**super().to_dict(), "status": self.status}


class ContextOverflow(EndpointError):
    """The endpoint refused the call: prompt and completion do not fit its context window.

    ``window``, ``requested`` and ``prompt_tokens`` are the server's numbers when it gave them.
    """

    code = "context_overflow"

    def __init__(self, message, status=None, server_message=None, window=None, requested=None,
                 prompt_tokens=None):
        super().__init__(message, status, server_message)
        self.window, self.requested, self.prompt_tokens = window, requested, prompt_tokens

    def to_dict(self):
        return {**super().to_dict(), "window": self.window, "requested": self.requested,
                "prompt_tokens": self.prompt_tokens}


class MalformedResponse(LLMError):
    """The endpoint's answer is not a chat completion (bad JSON, missing fields, cut stream)."""

    code = "malformed_response"
