"""Reading what the endpoint answered: server error messages, context overflows, SSE events,
and a whole or streamed answer assembled into a Completion (content, tool calls with
parsed arguments, finish reason, usage).
"""

import json
import re

from .errors import EndpointError, MalformedResponse
from .wire import estimate_tokens


def _clip(data, limit=200):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text[:limit] + ("..." if len(text) > limit else "")


def server_message(answer):
    """The error message in a server's answer: {"error": {"message"}}, {"error": "..."},
    {"message"}, {"detail"}, or the text itself."""
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:1000]
        if isinstance(error, str):
            return error[:1000]
        for key in ("message", "detail"):
            if isinstance(answer.get(key), str):
                return answer[key][:1000]
        return _clip(json.dumps(answer), 500)
    return _clip(answer if isinstance(answer, str) else json.dumps(answer), 500)


_OVERFLOW_CODES = ("context_length_exceeded", "context_overflow")
_OVERFLOW_WORDS = ("context length", "context window", "context size", "exceed_context")


def context_overflow(answer, message):
    """(window, requested, prompt tokens) when the server's error says the call does not fit
    its context (OpenAI's and llama.cpp's servers' wording; numbers None when not given),
    else None."""
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    lowered = message.lower()
    if code not in _OVERFLOW_CODES and not any(w in lowered for w in _OVERFLOW_WORDS):
        return None
    numbers = [int(n) for n in re.findall(r"\d+", message)[:6]]
    window = requested = prompt = None
    if "maximum context length is" in lowered and len(numbers) >= 3:
        window, requested, prompt = numbers[0], numbers[1], numbers[2]
    elif "requested tokens" in lowered and len(numbers) >= 2:      # llama.cpp's own words
        prompt, window = numbers[0], numbers[1]
        requested = prompt
    return window, requested, prompt


def sse_events(lines):
    """(event type, data) of each server-sent event in ``lines`` (bytes, no line ends).

    Multi-line data is joined with newlines; ``:`` comment lines (keep-alives) and
    fields other than ``event`` and ``data`` are ignored.
    """
    event, data = None, []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield event or "message", "\n".join(data)


# -- answers ------------------------------------------------------------------------------------

class _Assembly:
    """A completion put together from a whole answer or from streamed chunks."""

    def __init__(self, names, on_delta):
        self.names, self.on_delta = names, on_delta
        self.content, self.calls = [], {}
        self.finish_reason = self.usage = self.model = None
        self.has_content = False

    def whole(self, answer):
        if not isinstance(answer, dict):
            raise MalformedResponse(f"the answer is not a JSON object: {_clip(json.dumps(answer))}")
        if answer.get("error"):
            raise EndpointError(f"the model endpoint answered with an error: "
                                f"{server_message(answer)}", server_message=server_message(answer))
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedResponse(f"the answer has no choices: {_clip(json.dumps(answer))}")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise MalformedResponse("the answer's first choice has no message")
        self._take(message, whole=True)
        self.finish_reason = choices[0].get("finish_reason")
        self._meta(answer)

    def chunk(self, chunk):
        if not isinstance(chunk, dict):
            raise MalformedResponse(f"a stream chunk is not a JSON object: {_clip(json.dumps(chunk))}")
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise MalformedResponse("a stream chunk's choices is not a list")
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            self._take(delta, whole=False)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self._meta(chunk)

    def _meta(self, answer):
        if isinstance(answer.get("usage"), dict):
            self.usage = answer["usage"]
        if isinstance(answer.get("model"), str):
            self.model = answer["model"]

    def _take(self, part, whole):
        text = part.get("content")
        if isinstance(text, str):
            self.has_content = True
            if text:
                self.content.append(text)
                if self.on_delta is not None and not whole:
                    self.on_delta(text)
        calls = part.get("tool_calls")
        if isinstance(calls, list):
            for position, fragment in enumerate(calls):
                if isinstance(fragment, dict):
                    self._fragment(fragment, position if whole else None)

    def _fragment(self, fragment, position):
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position if position is not None else self._guess_index(fragment)
        slot = self.calls.setdefault(index, {"id": None, "name": "", "arguments": []})
        if isinstance(fragment.get("id"), str) and fragment["id"] and not slot["id"]:
            slot["id"] = fragment["id"]
        function = fragment.get("function")
        if not isinstance(function, dict):
            return
        name = function.get("name")
        if isinstance(name, str) and name and name != slot["name"]:
            slot["name"] += name  # servers that repeat the whole name are ignored above
        arguments = function.get("arguments")
        if isinstance(arguments, (dict, list)):
            arguments = json.dumps(arguments)
        if isinstance(arguments, str):
            slot["arguments"].append(arguments)

    def _guess_index(self, fragment):
        """A fragment without ``index``: a new call if it brings a new id, else the last one."""
        ident = fragment.get("id")
        if ident and all(slot["id"] != ident for slot in self.calls.values()):
            return len(self.calls)
        return max(self.calls, default=0)

    def tool_calls(self):
        calls = []
        for index in sorted(self.calls):
            slot = self.calls[index]
            raw = "".join(slot["arguments"])
            arguments, error = parse_arguments(raw)
            calls.append({"id": slot["id"] or f"call_{index}",
                          "name": self.names.get(slot["name"], slot["name"]),
                          "wire_name": slot["name"], "arguments": arguments,
                          "arguments_json": raw, "error": error})
        return calls

    def completion_estimate(self):
        text = "".join(self.content)
        for slot in self.calls.values():
            text += slot["name"] + "".join(slot["arguments"])
        return estimate_tokens(text)

    def result(self, prompt, streamed):
        calls = self.tool_calls()
        content = "".join(self.content) if self.has_content or not calls else None
        return Completion(content, calls, self.finish_reason,
                          normal_usage(self.usage, prompt, self.completion_estimate()),
                          self.model, streamed)


def parse_arguments(raw):
    """(arguments as a dict, None) or (None, what is wrong with them)."""
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except ValueError as e:
        return None, f"the arguments are not valid JSON ({e}): {_clip(raw, 120)}"
    if not isinstance(value, dict):
        return None, f"the arguments are not a JSON object: {_clip(raw, 120)}"
    return value, None


def normal_usage(usage, prompt, completion):
    """{prompt_tokens, completion_tokens, total_tokens, estimated} from the server's usage,
    or from the estimates when it sent none (or nonsense)."""
    def count(key):
        value = usage.get(key) if isinstance(usage, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    p, c, t = count("prompt_tokens"), count("completion_tokens"), count("total_tokens")
    if p is not None and c is not None:
        return {"prompt_tokens": p, "completion_tokens": c,
                "total_tokens": t if t is not None and t >= p + c else p + c, "estimated": False}
    if t is not None:
        return {"prompt_tokens": p if p is not None else min(prompt, t),
                "completion_tokens": c if c is not None else t - min(prompt, t),
                "total_tokens": t, "estimated": False}
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "estimated": True}


class Completion:
    """A model's answer: ``content`` (None when it only called tools), ``tool_calls``
    ([{id, name, wire_name, arguments, arguments_json, error}]), ``finish_reason``,
    ``usage`` ({prompt_tokens, completion_tokens, total_tokens, estimated}), ``model``."""

    __slots__ = ("content", "tool_calls", "finish_reason", "usage", "model", "streamed")

    def __init__(self, content, tool_calls, finish_reason, usage, model=None, streamed=False):
        self.content, self.tool_calls, self.finish_reason = content, tool_calls, finish_reason
        self.usage, self.model, self.streamed = usage, model, streamed

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def message(self):
        """The assistant message to append to ``messages`` before the tool results."""
        message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["wire_name"], "arguments": c["arguments_json"]}}
                for c in self.tool_calls]
        return message

    def __repr__(self):
        return (f"Completion(content={_clip(self.content or '', 60)!r}, "
                f"tool_calls={len(self.tool_calls)}, finish_reason={self.finish_reason!r})")
