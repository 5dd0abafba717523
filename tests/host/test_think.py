"""llm.think through a real aetherd on the host, against tests/fake_openai.py: the agent sends only
what is new, the window is assembled by aetherd, both turns are recorded and chained."""

import pytest

from tests.fake_openai import Reply

from .test_broker import aetherd, model  # noqa: F401 - fixtures

pytestmark = pytest.mark.host


def test_think_sends_the_assembled_window_and_records_both_turns(aetherd, model):  # noqa: F811
    d = aetherd()
    c = d.connect()
    model.queue(Reply("The fern needs water on Tuesdays."), Reply("On Tuesdays."))
    first = c.think("remember: the fern needs water on Tuesdays", rules="Answer briefly.")
    assert first["content"] == "The fern needs water on Tuesdays."
    assert first["thread"]["input_turn"] == 1 and first["thread"]["answer_turn"] == 2
    second = c.think("when does the fern need water?")
    sent = model.requests[-1].json["messages"]
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("Answer briefly.")
    assert [m["content"] for m in sent[1:]] == ["remember: the fern needs water on Tuesdays",
                                                 "The fern needs water on Tuesdays.",
                                                 "when does the fern need water?"]
    assert second["window"]["recent"] == 2 and second["thread"]["answer_turn"] == 4
    page = c.call("ctx.thread", thread="main", verify=True)
    assert [t["role"] for t in page["turns"]] == ["input", "answer", "input", "answer"] and page["chain"]["ok"]
    explained = c.call("ctx.thread", thread="main", turn=3)
    assert [t["n"] for t in explained["window"]["turns"]] == [1, 2]
    assert c.call("sys.info")["llm"]["think"]["by_principal"]


def test_tool_results_follow_the_call_that_asked_for_them(aetherd, model):  # noqa: F811
    d = aetherd()
    c = d.connect()
    model.queue(Reply(content=None, tool_calls=[{"id": "call_1", "name": "sys_info", "arguments": "{}"}]),
                Reply("Done."))
    tools = c.call("tool.list")[:3]
    asked = c.think("how much memory is free?", tools=tools)
    call = asked["tool_calls"][0]
    done = c.think(tool_results=[{"id": call["id"], "content": "512 MiB free"}], tools=tools)
    assert done["content"] == "Done."
    sent = model.requests[-1].json["messages"]
    assert sent[-2]["role"] == "assistant" and sent[-2]["tool_calls"][0]["id"] == call["id"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call["id"], "content": "512 MiB free"}
    turns = c.call("ctx.thread", thread="main")["turns"]
    assert turns[1]["body"]["tool_calls"][0]["id"] == call["id"]
    assert turns[2]["body"]["tool_results"][0]["content"] == "512 MiB free"
