"""Summaries from the model, written after the fact (docs/context-store.md, "Summaries from a model").

Compaction stays extractive and inline (aether/ctx/compaction.py): nothing waits
on a model and nothing is lost when one fails.  When a model endpoint is
configured (``llm.endpoint``), aetherd follows the compactions each batch
commits and asks the model, one compaction at a time, through the model broker
as background work (aether/broker/: after every interactive and agent call; a
forked worker that never touches the store), for a summary of the
compaction's originals within its token budget.  aetherd then has the store
supersede the extractive summary (``ContextStore.resummarise``: one
transaction, journalled ``ctx.resummarise``).

A failed call (unreachable, timeout, HTTP error, malformed, empty or cut-off
answer, or not one whole sentence within the budget) keeps the extractive
summary and is journalled ``ctx.resummarise.failed``; an answer that comes back
after the compaction was restored or purged, or its summary compacted,
forgotten or pinned, is dropped and journalled ``ctx.resummarise.dropped``.  At
most QUEUE_LIMIT compactions wait; more stay extractive, and so do those whose
summary text may use fewer than MIN_BUDGET tokens.  ``ctx.info`` shows
the counters and the tokens spent as ``model_compaction`` (since aetherd
started; the journal keeps each job's tokens).
"""

import time
from collections import deque

from ..ctx.errors import Conflict, ContextError, NotFound
from .calls.llm import client, submit_internal
from .protocol import AbiError

QUEUE_LIMIT = 64
MIN_BUDGET = 24          # tokens: in fewer, a model cannot do better than the extractive summary
SYSTEM_PROMPT = (
    "You condense records from an operating system's memory store into one summary that replaces "
    "them in an agent's context. Keep the facts: names, numbers with their units, dates, paths, "
    "identifiers, and who did what. Drop repetition and filler. Use only what the records say: "
    "never add, guess or generalise beyond them. Answer with the summary alone, in plain "
    "sentences, without a preamble or headings.")


def prompt(request):
    """The messages asking for a summary of a compaction's originals (a store summary_request)."""
    lines = []
    for n, item in enumerate(request["items"], 1):
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(item["created_at"]))
        tags = f" [{', '.join(item['tags'])}]" if item["tags"] else ""
        lines.append(f"{n}. ({when} UTC, {item['kind']}{tags}) {item['text']}")
    words = max(8, request["budget_tokens"] * 3 // 4)       # the estimator counts ~1.35 tokens a word
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Summarise these {len(lines)} records in at most {words} "
                                        "words.\n\n" + "\n".join(lines)}]


class Resummariser:
    """Compactions waiting for a model's summary, and the one being written."""

    def __init__(self, d):
        self.d = d
        self.queue = deque()
        self.running = None          # the compaction whose summary the worker is writing
        self.seen = None             # the newest compaction looked at; None: not following
        self.model = None
        self.counts = dict.fromkeys(("jobs", "succeeded", "failed", "dropped", "tokens"), 0)

    def start(self):
        """Follow compactions from now on, if the store is open and a model is configured."""
        c = client(self.d)
        if self.d.store is not None and c.configured:
            self.seen, _ = self.d.store.compactions_since()
            self.model = c.model
            self.d.log.info(f"compaction summaries are rewritten by the model at {c.endpoint}")

    def follow(self):
        """After a batch committed: queue the compactions it made and start the next job."""
        if self.seen is None:
            return
        self.seen, made = self.d.store.compactions_since(self.seen)
        for cid in made:
            if len(self.queue) < QUEUE_LIMIT:
                self.queue.append(cid)
            else:
                self._drop(cid, f"{QUEUE_LIMIT} compactions are already waiting for the model")
        self._next()

    def report(self):
        """The counters ctx.info shows as model_compaction."""
        return {"enabled": self.seen is not None, "model": self.model, "queued": len(self.queue),
                "running": self.running, **self.counts}

    def _next(self):
        while self.running is None and self.queue and not self.d.stopping:
            cid = self.queue.popleft()
            try:
                request = self.d.store.summary_request(cid)
            except ContextError as e:
                self._drop(cid, str(e))
                continue
            if request["budget_tokens"] < MIN_BUDGET:
                self._drop(cid, f"its summary's text may use only {request['budget_tokens']} tokens, "
                                f"fewer than the {MIN_BUDGET} worth asking the model for")
                continue
            self._ask(request)

    def _ask(self, request):
        """Ask through the broker, as background work (after every interactive and agent call)."""
        c, room = client(self.d), request["budget_tokens"]
        self.running = request["compaction"]
        self.counts["jobs"] += 1
        try:      # max_tokens: room for a tokenizer that counts more than ours; the store cuts to fit
            deferred = submit_internal(self.d, prompt(request), 2 * room, temperature=0)
        except AbiError as e:
            self.running = None
            self._fail(request, e.code, str(e), 0)
            return self.d.loop.call_later(0, self._next)

        def done(value, error):
            self.running = None
            try:
                self._settle(request, c.model, _answer(value, error), None)
            finally:
                self._next()
        deferred.bind(done)

    def _settle(self, request, model, value, error=None):
        """Apply the model's answer to the store, or record why not."""
        if error is not None:                       # the worker died or overran its time
            return self._fail(request, error.code, str(error), 0)
        tokens = value["tokens"]
        self.counts["tokens"] += tokens
        if "error" in value:
            return self._fail(request, value["error"], value["message"], tokens)
        text = value["text"].strip()
        if not text:
            return self._fail(request, "empty", "the model answered with no text", tokens)
        if value["finish_reason"] == "length":
            return self._fail(request, "cut_off", f"the answer ran past {2 * request['budget_tokens']} "
                                                  "tokens and was cut off", tokens)
        name = f"model:{model or value['model'] or 'unnamed'}"
        cid = request["compaction"]
        try:
            done = self.d.store.resummarise("system", cid, request["summary_id"], text, name,
                                            model_tokens=tokens)
        except (Conflict, NotFound) as e:
            return self._drop(cid, str(e), request, tokens)
        except ContextError as e:
            return self._fail(request, e.code, str(e), tokens)
        self.counts["succeeded"] += 1
        self.d.log.info(f"compaction {cid}: summary {done['replaced_summary']} superseded by {name}'s "
                        f"(memory {done['summary']}, {done['summary_tokens']} tokens; the call used {tokens})")

    def _fail(self, request, code, message, tokens):
        cid = request["compaction"]
        self.counts["failed"] += 1
        self.d.log.warning(f"compaction {cid}: no summary from the model ({code}: {message}); "
                           "the extractive one stays")
        self.d.journal("ctx.resummarise.failed", {"compaction": cid, "summary": request["summary_id"],
                                                  "error": code, "message": message, "model_tokens": tokens},
                       scope=request["scope"])

    def _drop(self, cid, why, request=None, tokens=0):
        """Not summarised again: the compaction changed, or too many wait.  Journalled once the
        model was asked (tokens were spent); before that, only logged."""
        self.counts["dropped"] += 1
        self.d.log.info(f"compaction {cid}: no summary from the model: {why}")
        if request is not None:
            self.d.journal("ctx.resummarise.dropped", {"compaction": cid, "summary": request["summary_id"],
                                                       "reason": why, "model_tokens": tokens},
                           scope=request["scope"])


def _answer(value, error):
    """The broker's answer as {text, finish_reason, model, tokens} or {error, message, tokens}."""
    if error is not None:
        data = getattr(error, "data", None) or {}
        code = data.get("code") or getattr(error, "code", "error")
        message = data.get("message") or str(error)
        return {"error": code, "message": message, "tokens": int(data.get("charged") or 0)}
    return {"text": value.get("content") or "", "finish_reason": value.get("finish_reason"),
            "model": value.get("model"), "tokens": int((value.get("usage") or {}).get("total_tokens") or 0)}
