"""The token estimator: deterministic, documented rules, replaceable."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aether.ctx import InvalidArgument
from aether.ctx.tokens import DEFAULT, ITEM_OVERHEAD, HeuristicEstimator, check, item_tokens

from ctx_helpers import open_store


@pytest.mark.parametrize("text, tokens", [
    ("", 0), ("a", 1), ("hello", 2), ("hello world", 3), ("information", 3), ("12345", 3),
    ("x=1", 3), ("é", 1), ("日本語", 3), ("😀", 2), ("a\n\nb", 3), ("a  b", 2),
])
def test_known_values(text, tokens):
    assert DEFAULT.count(text) == tokens


def test_prose_matches_the_rule_of_thumb():
    prose = ("The resource that makes AI systems useful is invisible to a traditional OS. Here the OS "
             "keeps it, accounts for it and hands it out. Existing systems show the gaps: some keep "
             "their context snapshots only in memory, others silently wipe history when they summarise.")
    words = len(prose.split())
    n = DEFAULT.count(prose)
    assert 1.2 <= n / words <= 1.5
    assert 3.5 <= len(prose) / n <= 4.5


@given(st.text(max_size=300))
def test_deterministic_and_non_negative(text):
    a, b = HeuristicEstimator().count(text), DEFAULT.count(text)
    assert a == b >= 0


@given(st.text(max_size=100), st.text(max_size=100))
def test_concatenation_costs_about_the_sum(a, b):
    joined = DEFAULT.count(a + " " + b)
    assert joined <= DEFAULT.count(a) + DEFAULT.count(b) + 2


def test_item_tokens_add_framing():
    assert item_tokens(DEFAULT, "hello") == DEFAULT.count("hello") + ITEM_OVERHEAD


class Words:
    name = "words-v1"

    def count(self, text):
        return len(text.split())


def test_a_replacement_estimator_recounts_the_store(tmp_path):
    s = open_store(tmp_path / "c.db")
    mid = s.remember("agent:a", "one two three four five six")["id"]
    heuristic = s.recall("agent:a", mid)["tokens"]
    s.close()
    s = open_store(tmp_path / "c.db", estimator=Words())
    assert s.recall("agent:a", mid)["tokens"] == 6 + ITEM_OVERHEAD != heuristic
    assert s.usage("agent:a", "agent:a")["live"]["tokens"] == 6 + ITEM_OVERHEAD
    assert s.info()["estimator"] == "words-v1"
    s.close()


def test_bad_estimators_are_refused():
    class Nameless:
        def count(self, text):
            return 1

    class Negative:
        name = "neg"

        def count(self, text):
            return -1
    with pytest.raises(InvalidArgument, match="needs a non-empty str attribute 'name'"):
        check(Nameless())
    with pytest.raises(InvalidArgument, match="returned -1"):
        check(Negative())
