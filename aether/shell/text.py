"""What a typed line says, before any intent is chosen: words and slots.

An Utterance keeps the line's words (lower case, contractions spelt out) and
the things worth lifting out of it whatever the intent turns out to be:
quoted text, paths, URLs, sizes, percentages, durations, numbers, times
("since boot", "yesterday", "in the last 2 hours") and agent names the
machine knows.  Intents then ask questions of it (``u.has("stop", "kill")``).
"""

import re

CONTRACTIONS = {"what's": "what is", "whats": "what is", "how's": "how is", "it's": "it is",
                "i'm": "i am", "don't": "do not", "doesn't": "does not", "didn't": "did not",
                "isn't": "is not", "aren't": "are not", "can't": "can not", "cannot": "can not",
                "won't": "will not", "i'd": "i would", "let's": "let us", "who's": "who is",
                "that's": "that is", "there's": "there is", "where's": "where is"}

QUOTED = re.compile(r"\"([^\"]*)\"|“([^”]*)”|(?:(?<=\s)|^)'([^']*)'(?=[\s.,;:!?]|$)")
URL = re.compile(r"\bhttps?://[^\s\"'<>]+", re.I)
PATH = re.compile(r"(?:(?<=[\s(\"'=])|^)(~?/[^\s,;\"'()]*)")
WORD = re.compile(r"[a-z0-9][a-z0-9_\-.]*[a-z0-9]|[a-z0-9]")
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                "seven": 7, "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20,
                "thirty": 30, "half": 0.5}
NUM = r"(\d+(?:\.\d+)?|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
                "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
                "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
                "d": 86400, "day": 86400, "days": 86400, "week": 604800, "weeks": 604800}
DURATION = re.compile(r"\b" + NUM + r"\s*(" + "|".join(sorted(UNIT_SECONDS, key=len, reverse=True)) + r")\b")
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|per\s?cent\b)")
SIZE_UNITS = {"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
              "mib": 1 << 20, "meg": 1 << 20, "megs": 1 << 20, "megabytes": 1 << 20,
              "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "gig": 1 << 30, "gigs": 1 << 30,
              "gigabytes": 1 << 30}
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(" + "|".join(sorted(SIZE_UNITS, key=len, reverse=True)) + r")\b")
INTEGER = re.compile(r"(?<![\w.])#?(\d+)(?![\w.%])")


class When:
    """A point in time named relative to now or to boot; the runner resolves it."""

    def __init__(self, base, offset=0.0, label=""):
        self.base, self.offset, self.label = base, float(offset), label   # base: "boot" | "now" | "today"

    def resolve(self, now, boot):
        if self.base == "boot":
            return boot + self.offset
        if self.base == "today":
            return now - (now % 86400) + self.offset    # UTC midnight
        return now + self.offset

    def __eq__(self, other):
        return isinstance(other, When) and (self.base, self.offset) == (other.base, other.offset)

    def __repr__(self):
        if self.base == "now":
            return f"@{self.offset:+g}s"
        return f"@{self.base}" + (f"{self.offset:+g}s" if self.offset else "")

    def __str__(self):
        return self.label or repr(self)


class Utterance:
    """One typed line, taken apart."""

    def __init__(self, line, agents=()):
        self.line = line.strip()
        rest = self.line
        self.quoted = [next(g for g in m.groups() if g is not None) for m in QUOTED.finditer(rest)]
        rest = QUOTED.sub(" ", rest)
        self.urls = URL.findall(rest)
        rest = URL.sub(" ", rest)
        self.paths = [p.rstrip(".?!:") for p in PATH.findall(rest)]
        rest = PATH.sub(" ", rest)
        self.rest = rest
        lowered = rest.lower().replace("’", "'")
        for short, long in CONTRACTIONS.items():
            lowered = re.sub(rf"\b{re.escape(short)}(?=\W|$)", long, lowered)
        self.lowered = lowered
        self.words = WORD.findall(lowered.replace("'s ", " ").replace("'", " "))
        self.set = set(self.words)
        self.percents = [float(x) for x in PERCENT.findall(lowered)]
        self.sizes = [int(float(n) * SIZE_UNITS[u]) for n, u in SIZE.findall(lowered)]
        self.durations = [_number(n) * UNIT_SECONDS[u] for n, u in DURATION.findall(lowered)]
        self.integers = [int(x) for x in INTEGER.findall(PERCENT.sub(" ", SIZE.sub(" ", lowered)))]
        known = {a.lower() for a in agents}
        self.agents = [w for w in dict.fromkeys(self.words)
                       if w in known and (w not in COMMAND_WORDS or self._explicit(w))]
        self.named = self._named_agent()
        if set(self.agents) & COMMAND_WORDS:  # "stop agent reboot": the name is not also the verb
            self.words = [w for w in self.words if w not in COMMAND_WORDS or w not in self.agents]
            self.set = set(self.words)

    # -- questions intents ask

    def has(self, *words):
        """Any of these words (a phrase of several words must appear in order)."""
        return any(self.phrase(w) if " " in w else w in self.set for w in words)

    def all(self, *words):
        return all(self.has(w) for w in words)

    def phrase(self, text):
        return re.search(rf"(?:^|\s){re.escape(text)}(?=\s|$)", " ".join(self.words)) is not None

    def count(self, *words):
        return sum(1 for w in words if self.has(w))

    def after(self, *markers):
        """The original text after the first of these markers found (in the order given; case kept), or ''."""
        for marker in markers:
            m = re.search(rf"(?i)(?:^|\b){re.escape(marker)}(?:\b|(?<=\W))[\s:,]*", self.line)
            if m:
                return self.line[m.end():].strip()
        return ""

    @property
    def agent(self):
        """The agent the line is about: a known one it names, else one it calls an agent."""
        return self.agents[0] if self.agents else self.named

    def _explicit(self, name):
        """The line names ``name`` as an agent: 'agent NAME', 'NAME agent', 'called NAME'."""
        text = " ".join(self.words)
        n = re.escape(name)
        return re.search(rf"\b(?:agent|called|named)\s+{n}\b|\b{n}'?s?\s+agent\b", text) is not None

    def _named_agent(self):
        """A name given as 'agent NAME', 'NAME agent' or 'called NAME' (the agent may not exist)."""
        text = " ".join(self.words)
        for pattern in (r"(?=\b(?:agent|called|named)\s+([a-z][a-z0-9-]{0,31})\b)",
                        r"\b([a-z][a-z0-9-]{0,31})\s+agent\b"):
            for m in re.finditer(pattern, text):
                if m.group(1) not in NOT_NAMES:
                    return m.group(1)
        return None

    def since(self):
        """A time the line asks about ('since boot', 'yesterday', 'in the last hour'), or None."""
        low = " ".join(self.words)
        if re.search(r"\b(since|after)\s+(the\s+)?(last\s+)?(boot|booted|start|startup|started|reboot|power on)", low) \
                or "since boot" in low or "this boot" in low:
            return When("boot", 0, "since boot")
        if "yesterday" in self.set:
            return When("today", -86400, "since yesterday")
        if re.search(r"\btoday\b|\bthis morning\b", low):
            return When("today", 0, "today")
        m = re.search(r"\b(?:last|past|previous)\s+" + NUM + r"?\s*(second|seconds|minute|minutes|hour|"
                      r"hours|day|days|week|weeks|min|mins|h)\b", low)
        if m:
            n = _number(m.group(1)) if m.group(1) else 1
            seconds = n * UNIT_SECONDS[m.group(2)]
            return When("now", -seconds, f"in the last {_plain(m.group(1) or '', m.group(2))}")
        m = re.search(r"\b" + NUM + r"\s*(seconds|minutes|hours|days|second|minute|hour|day|mins|min)\s+ago\b", low)
        if m:
            seconds = _number(m.group(1)) * UNIT_SECONDS[m.group(2)]
            return When("now", -seconds, f"since {m.group(1)} {m.group(2)} ago")
        return None


# The shell's own command words: an agent with one of these names is reached only when the
# line calls it an agent ("inspect the status agent", "stop agent reboot"), so "status",
# "reboot" or "explain" always mean the command (tests check every one-word example is here).
COMMAND_WORDS = frozenset({"status", "explain", "reboot", "poweroff", "help", "undo", "history", "uptime",
                           "alerts", "agents", "ps", "overview", "dashboard", "sitrep", "shutdown", "halt",
                           "processes", "requests", "approve", "deny"})

NOT_NAMES = {"even", "also", "just", "only", "too", "ones", "still", "first", "here", "there", "else",
             "please", "now", "really", "ever", "stopped", "running", "failed", "exited",
             "the", "an", "a", "this", "that", "new", "my", "each", "every", "which", "what", "one", "some",
             "any", "your", "its", "is", "to", "for", "of", "and", "all", "whose", "called", "named", "with",
             "table", "list", "logs", "log", "output", "state", "status", "goal", "up", "down", "again",
             "who", "was", "has", "have", "had", "been", "be", "are", "in", "on", "at", "by", "from",
             "did", "does", "do", "can", "should", "will", "would"}


def _number(text):
    return NUMBER_WORDS[text] if text in NUMBER_WORDS else float(text)


def _plain(n, unit):
    return f"{n} {unit}".strip()
