"""watch: notifies (an alert event) when a condition over the machine's state becomes true.

    args: CONDITION [--interval SECONDS] [--once]

A condition compares one reading with a number, and conditions join with
``and`` / ``or`` (no parentheses; ``and`` binds tighter):

    memory.used_percent > 80
    load.1 >= 2 and pressure.cpu > 10

Readings are those of aether.builtin.metrics.  Edge triggered: it notifies
when the condition turns true, and again only after it has been false.
``--once`` exits (status 125, "done") after the first notification.
"""

import time

from ..client import Client
from . import metrics

OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
       "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


class ConditionError(ValueError):
    """A condition cannot be parsed; the message says what was expected."""


def parse_condition(text):
    """[[(name, op, number), ...], ...]: a list of and-groups joined by or."""
    words = text.replace(">=", " >= ").replace("<=", " <= ").replace("==", " == ") \
                .replace("!=", " != ").split()
    words = [w for part in words for w in _split_single(part)]
    groups, group, i = [], [], 0
    while i < len(words):
        if i + 3 > len(words):
            raise ConditionError(f"incomplete comparison at {' '.join(words[i:])!r}: "
                                 "expected READING OP NUMBER, e.g. memory.used_percent > 80")
        name, op, number = words[i:i + 3]
        if op not in OPS:
            raise ConditionError(f"{op!r} is not a comparison; use one of {' '.join(OPS)}")
        try:
            value = float(number.rstrip("%"))
        except ValueError:
            raise ConditionError(f"{number!r} is not a number") from None
        group.append((name, op, value))
        i += 3
        if i < len(words):
            joiner = words[i].lower()
            if joiner not in ("and", "or"):
                raise ConditionError(f"expected 'and' or 'or', got {words[i]!r}")
            if joiner == "or":
                groups.append(group)
                group = []
            i += 1
            if i >= len(words):
                raise ConditionError(f"the condition ends with {joiner!r}")
    if group:
        groups.append(group)
    if not groups:
        raise ConditionError("empty condition; e.g. memory.used_percent > 80")
    return groups


def _split_single(word):
    for op in (">", "<"):
        if op in word and word not in (">=", "<=", ">", "<") and "=" not in word:
            left, _, right = word.partition(op)
            return [w for w in (left, op, right) if w]
    return [word]


def holds(groups, values):
    """True if any and-group holds; a reading that does not exist makes its comparison false."""
    return any(all(name in values and OPS[op](values[name], number) for name, op, number in group)
               for group in groups)


def main(args):
    if not args:
        raise SystemExit("watch: give a condition, e.g. 'memory.used_percent > 80'")
    interval, once, words = 5.0, False, []
    it = iter(args)
    for arg in it:
        if arg == "--interval":
            interval = float(next(it, "5"))
        elif arg == "--once":
            once = True
        else:
            words.append(arg)
    text = " ".join(words)
    try:
        groups = parse_condition(text)
    except ConditionError as e:
        raise SystemExit(f"watch: {e}") from None
    was = False
    with Client() as c:
        before = metrics.cpu_times()
        while True:
            time.sleep(interval)
            after = metrics.cpu_times()
            values = metrics.flatten(c.call("sys.info"), metrics.cpu_percent(before, after))
            before = after
            now = holds(groups, values)
            if now and not was:
                shown = {name: values.get(name) for group in groups for name, _, _ in group}
                c.call("sys.alert", level="warning", message=f"condition true: {text}",
                       data={"condition": text, "readings": shown})
                print(f"condition true: {text} {shown}", flush=True)
                if once:
                    return 125
            was = now
