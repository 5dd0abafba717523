"""The model client: chat completions from one OpenAI-compatible endpoint.

Any server that speaks ``POST {endpoint}/chat/completions`` (llama.cpp, Ollama, vLLM,
a hosted API) configured by ``aether.llm.*``.  ``Client.complete`` sends the messages
(and tool specs), reads a JSON answer or an SSE stream, and returns a Completion:
content, tool calls with parsed arguments (malformed arguments are reported on the
call, never raised), finish reason and token usage.  Errors are LLMError subclasses
with one clear sentence each; the API key is sent as ``Authorization: Bearer <key>``,
and is never logged, returned, or shown: reprs and error texts redact it.

Endpoint: ``http://host:8080/v1`` -> ``http://host:8080/v1/chat/completions``; an
endpoint with no path gets ``/v1``; one already ending in ``/chat/completions`` is
used as it is.

Time: ``timeout`` bounds every wait (connecting, the first byte, each streamed piece);
``deadline`` bounds the whole call.  A call blocks its thread for at most ``deadline``
seconds plus name resolution.  A Client holds only its configuration: one Client may
serve many threads at once (each call has its own connection).

Budget (``budget=``, e.g. a TokenBudget): before anything is sent, the call needs
``prompt estimate + max_tokens`` tokens.  It is refused with BudgetExceeded when the
budget's ``remaining`` is zero or less than that; otherwise that much is reserved.
Afterwards the reservation is charged with the tokens used (the server's usage, or
the estimate below), or released when the server did no work (nothing could be sent,
or it answered an HTTP error).  A timeout, a broken stream or a malformed answer after
the request went out is charged the prompt estimate plus what was received.

Estimated usage (when the server reports none; ``usage.estimated`` is then true): one
token per 4 characters, rounded up, of the JSON text of the messages and tool specs
(prompt) and of the content and tool calls received (completion).  JSON text over-
counts a little, which errs on the side of the budget.

Where things live (``from aether import llm`` and ``llm.Client``, ``llm.TokenBudget``... as before):

``errors``  LLMError and its subclasses, one per way a call fails
``budget``  TokenBudget, Reservation, refusal
``wire``    what is sent: limits, token estimates, the URL, tool specs and schemas, messages
``client``  Client and one call's exchange with the endpoint (timeouts, deadline, budget)
``answer``  what comes back: SSE events, server errors, the Completion
"""

from .errors import (LLMError, NotConfigured, BudgetExceeded, InvalidRequest, EndpointUnreachable,
                     EndpointTimeout, EndpointError, ContextOverflow, MalformedResponse)
from .budget import TokenBudget, Reservation, refusal
from .wire import (DEFAULT_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_MAX_TOKENS, MAX_REQUEST, MAX_RESPONSE,
                   MAX_LINE, ROLES, REDACTED, estimate_tokens, estimate_prompt, chat_url, tool_specs,
                   WIRE_BOUND_MAX, BOUND_KEYS, WIRE_SCHEMA_DEPTH, wire_schema, wire_messages, check_messages)
from .answer import server_message, context_overflow, sse_events, parse_arguments, normal_usage, Completion
from .client import Client

__all__ = [
    "BOUND_KEYS", "BudgetExceeded", "Client", "Completion", "ContextOverflow", "DEFAULT_DEADLINE",
    "DEFAULT_MAX_TOKENS", "DEFAULT_TIMEOUT", "EndpointError", "EndpointTimeout", "EndpointUnreachable",
    "InvalidRequest", "LLMError", "MAX_LINE", "MAX_REQUEST", "MAX_RESPONSE", "MalformedResponse",
    "NotConfigured", "REDACTED", "ROLES", "Reservation", "TokenBudget", "WIRE_BOUND_MAX",
    "WIRE_SCHEMA_DEPTH", "chat_url", "check_messages", "context_overflow", "estimate_prompt",
    "estimate_tokens", "normal_usage", "parse_arguments", "refusal", "server_message", "sse_events",
    "tool_specs", "wire_messages", "wire_schema",
]
