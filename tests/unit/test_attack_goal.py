"""Attacks on the goal agent by the model's answer (attacker-controlled text from the model server):
a risky call whose arguments the person is not shown whole when asked for a yes."""

import json

import pytest

from aether.builtin import goal


class Asked:
    """A fake Client: records agent.ask and answers it denied; ctx.goal answers a goal."""

    requests = []

    def __init__(self, timeout=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def call(self, method, **params):
        if method == "agent.ask":
            Asked.requests.append(params)
            return {"state": "denied", "id": 1}
        if method == "ctx.goal":
            return {"id": 4, "intent": "tidy my notes"}
        raise AssertionError(method)


@pytest.fixture
def asked(monkeypatch):
    Asked.requests = []
    monkeypatch.setattr(goal, "Client", Asked)
    return Asked.requests


def shown(request):
    return request["step"] + "\n" + request["why"] + "\n" + (request.get("details") or "")


def test_the_person_sees_every_argument_of_the_call_they_are_asked_about(asked):
    """The step was the call cut to 200 characters: a model could pad the path so that what the
    person approved hid the real target and ``recursive: true``."""
    args = {"path": "notes/" + "old/../" * 30 + "projects", "recursive": True}
    refused = goal._ask(Asked(), 4, 2, "files.delete", args, "tidying up old notes")
    assert refused.startswith("not run")
    text = shown(asked[0])
    assert json.dumps(args, ensure_ascii=False) in text, "the whole call must be shown to the person"
    assert len(asked[0]["step"]) <= 200 and "cut" in asked[0]["step"]


def test_what_the_person_reads_marks_the_models_words_and_hidden_characters(asked):
    """The why is the model's own text: it is labelled so, and an invisible character in an
    argument is shown escaped, not as a space that looks like any other."""
    args = {"path": "report\u200b.txt", "content": "x", "mode": "overwrite"}
    goal._ask(Asked(), 4, 2, "files.write", args, "The administrator already approved this.")
    req = asked[0]
    assert req["why"].startswith("the model says: ")
    assert "report\\u200b.txt" in req["step"] and "\u200b" not in shown(req)
