"""Every phrasing in tests/shell/corpus.txt gets the plan it must get; every intent is documented."""

import re
from pathlib import Path

from aether.shell import planbench
from aether.shell.intents import INTENTS
from aether.shell.planner import help_text, plan
from tests.shell import corpus

DOCS = Path(__file__).resolve().parents[2] / "docs" / "shell.md"


def test_the_corpus_is_big_and_covers_every_intent():
    cases = corpus.load()
    assert len(cases) >= 300
    covered = {intent for _n, _p, intent, _s in cases}
    missing = set(INTENTS) - covered
    assert not missing, f"intents with no phrasing in the corpus: {sorted(missing)}"


def test_every_phrasing_gets_its_plan():
    wrong = []
    for n, phrase, intent, signature in corpus.load():
        p = plan(phrase, corpus.AGENTS)
        if (p.intent, p.signature()) != (intent, signature):
            wrong.append(f"line {n}: {phrase!r}\n    want {intent} | {signature}\n    got  {p.intent} | "
                         f"{p.signature()}")
    assert not wrong, f"{len(wrong)} phrasings planned wrong:\n" + "\n".join(wrong)


def test_the_guest_benchmark_counts_the_same_way():
    cases = [[p, i, s] for _n, p, i, s in corpus.load()[:40]]
    result = planbench.run(corpus.AGENTS, cases, rounds=1)
    assert result["cases"] == 40 and result["correct"] == 40 - len(result["wrong"])
    assert result["plans"] == 40 and 0 < result["p50_ms"] <= result["p95_ms"] <= result["max_ms"]
    broken = planbench.run(corpus.AGENTS, [["stop sysmon", "agent.start", "agent.start name=sysmon"]], 1)
    assert broken["correct"] == 0 and broken["wrong"][0][3:] == ["agent.stop", "agent.stop name=sysmon"]


def test_every_intent_has_help_and_examples_and_is_in_the_docs():
    docs = DOCS.read_text()
    for name, entry in INTENTS.items():
        assert entry.help and entry.examples, f"{name} has no help text or examples"
        assert re.search(rf"`{re.escape(name)}`", docs), f"docs/shell.md does not mention `{name}`"
        assert entry.examples[0] in docs, f"docs/shell.md lacks {name}'s first example {entry.examples[0]!r}"
        assert entry.examples[0] in help_text(), f"help does not show {name}"
        assert plan(entry.examples[0], ["sysmon", "watch"]).intent == name, \
            f"{name}'s own example {entry.examples[0]!r} is not planned as {name}"
