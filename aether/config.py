"""Configuration: one lookup order, documented once.

1. the kernel command line, ``aether.<key>=value``;
2. the data partition, ``/var/lib/aether/config``;
3. the image defaults, ``/etc/aether/defaults``;
4. the built-in default below.

Files hold ``key = value`` lines.  ``#`` starts a comment at the start of a
line or after a space (``key = value  # why``); a ``#`` inside a value is kept
(``llm.api_key = sk-ab#cd``), and a value in double quotes is taken exactly as
written (``key = "a # b"``).  A bad value never fails the boot: it is reported
(where it came from, what is wrong, what is used instead) and the next source
down is used.  Secrets (SECRETS) are never shown in a message: only their length.
"""

CMDLINE = "/proc/cmdline"
DATA_CONFIG = "/var/lib/aether/config"
IMAGE_DEFAULTS = "/etc/aether/defaults"
PREFIX = "aether."
SECRETS = ("llm.api_key",)


class ConfigError(ValueError):
    """A configuration value breaks its rule."""


def _hostname(value):
    if not 1 <= len(value) <= 64:
        raise ConfigError("a hostname has 1 to 64 characters")
    for label in value.split("."):
        if not label or len(label) > 63:
            raise ConfigError("each dot-separated part needs 1 to 63 characters")
        if label[0] == "-" or label[-1] == "-":
            raise ConfigError("a part may not start or end with '-'")
        bad = sorted({c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))})
        if bad:
            raise ConfigError(f"only letters, digits and '-' are allowed (found {''.join(bad)!r})")
    return value


def _consoles(value):
    if value == "auto":
        return value
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("give 'auto' or a comma-separated list such as ttyS0,tty1")
    for name in names:
        if "/" in name or not name.startswith("tty") and not name.startswith("hvc"):
            raise ConfigError(f"{name!r} is not a terminal name such as ttyS0, tty1 or hvc0")
    return list(dict.fromkeys(names))       # a terminal named twice gets one console


def _choice(*choices):
    def check(value):
        if value not in choices:
            raise ConfigError(f"use one of: {', '.join(choices)}")
        return value
    return check


def _seconds(low, high):
    def check(value):
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError("give a number of seconds, e.g. 5 or 0.5") from None
        if not low < seconds <= high:
            raise ConfigError(f"must be more than {low:g} and at most {high:g} seconds")
        return seconds
    return check


def _url(value):
    if value == "":
        return value
    if not (value.startswith(("http://", "https://"))) or len(value) > 500:
        raise ConfigError("give an http:// or https:// base URL such as http://10.0.2.2:8080/v1")
    return value.rstrip("/")


def _text(limit):
    def check(value):
        if len(value) > limit:
            raise ConfigError(f"at most {limit} characters")
        return value
    return check


def _count(low, high):
    def check(value):
        try:
            number = int(value)
        except ValueError:
            raise ConfigError("give a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"must be from {low} to {high}")
        return number
    return check


# key -> (built-in default, validator, one-line description)
KEYS = {
    "hostname": ("aether", _hostname, "the machine's hostname"),
    "consoles": ("auto", _consoles,
                 "terminals that get a console: 'auto' (serial ttyS0 if present, and tty1) "
                 "or a list such as ttyS0,tty1"),
    "log_level": ("info", _choice("debug", "info", "warning", "error"), "PID 1's log level"),
    "stop_timeout": ("5", _seconds(0, 300),
                     "seconds a service gets between TERM and KILL when stopped"),
    "llm.endpoint": ("", _url, "an OpenAI-compatible API's base URL (…/v1); empty: no model"),
    "llm.model": ("", _text(200), "the model name sent to the endpoint"),
    "llm.api_key": ("", _text(500), "the endpoint's API key; keep it in /var/lib/aether/config "
                                    "(the kernel command line is readable by every process)"),
    "llm.timeout": ("120", _seconds(0, 3600), "seconds to wait for the endpoint"),
    "llm.max_tokens": ("1024", _count(1, 1_000_000), "default completion length"),
    "llm.stream": ("off", _choice("on", "off"), "ask the endpoint for a streamed (SSE) answer"),
    "llm.concurrency": ("1", _count(1, 64), "model calls the broker sends to the endpoint at once"),
    "llm.queue_limit": ("64", _count(1, 10000), "model calls that may wait in the broker's queue; "
                                                "past it a call is refused with busy"),
    "llm.order": ("priority", _choice("priority", "fifo"), "the broker's order: priority classes, "
                  "fair share and aging (priority), or plain arrival (fifo)"),
    "llm.aging_s": ("10", _seconds(0, 3600), "seconds of waiting that raise a queued model call "
                                             "one priority level"),
    "llm.n_ctx": ("0", _count(0, 10_000_000), "the endpoint's context window in tokens; 0: ask the "
                                              "server, or learn it from its errors"),
    "llm.uid_spend_tokens": ("20000", _count(0, 10 ** 9), "model tokens a local user that is neither "
                             "root nor an agent may use per llm.uid_period_s; 0: none may"),
    "llm.uid_period_s": ("86400", _seconds(0, 10 ** 8), "the period of llm.uid_spend_tokens, in seconds"),
}


def parse_cmdline(text):
    """Split a kernel command line into words, honouring double quotes like the kernel."""
    words: list[str] = []
    word: list[str] = []
    quoted = started = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch.isspace() and not quoted:
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(ch)
            started = True
    if started:
        words.append("".join(word))
    return words


def cmdline_settings(text):
    """{key: value} for every ``aether.<key>=value`` word."""
    found = {}
    for word in parse_cmdline(text):
        if word.startswith(PREFIX) and "=" in word:
            key, _, value = word[len(PREFIX):].partition("=")
            found[key] = value
    return found


def file_settings(text, origin, warn):
    """{key: value} from ``key = value`` lines; bad lines are reported to warn()."""
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = _uncomment(line).strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            secret = next((k for k in SECRETS if k in line), None)
            what = repr(line) if secret is None else f"a line naming {secret} ({len(line)} characters)"
            warn(f"{origin}:{number}: ignoring {what}: expected 'key = value'")
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        found[key.strip()] = value
    return found


def _uncomment(line):
    """The line without its comment: '#' first on the line, or after a space outside quotes."""
    if line.lstrip().startswith("#"):
        return ""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted and i > 0 and line[i - 1] in " \t":
            return line[:i]
    return line


def shown(key, value):
    """A value as messages may show it: a secret is only its length."""
    if key in SECRETS and value:
        return f"<secret, {len(value)} characters>"
    return repr(value)


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return None


class Config:
    """Resolved settings plus where each came from."""

    def __init__(self, sources, warn):
        """sources: [(origin, {key: raw value})] in lookup order (first wins)."""
        self.values = {}
        self.origin = {}
        for key, (default, check, _desc) in KEYS.items():
            self.values[key], self.origin[key] = check(default), "built-in default"
            for origin, settings in reversed(sources):
                if key not in settings:
                    continue
                try:
                    self.values[key], self.origin[key] = check(settings[key]), origin
                except ConfigError as e:
                    warn(f"{origin}: {_spelled(key, origin)}={shown(key, settings[key])} is not "
                         f"valid: {e}; using {shown(key, self._shown(key))} ({self.origin[key]})")
        for origin, settings in sources:
            if origin == "kernel command line" and settings.get("llm.api_key"):
                warn("aether.llm.api_key is on the kernel command line, which every process can "
                     "read; put it in /var/lib/aether/config (mode 0600) instead")
        for origin, settings in sources:
            for key in settings:
                if key not in KEYS:
                    warn(f"{origin}: unknown setting {_spelled(key, origin)!r} ignored "
                         f"(known: {', '.join(sorted(KEYS))})")

    def _shown(self, key):
        value = self.values[key]
        return ",".join(value) if isinstance(value, list) else value

    def __getitem__(self, key):
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)


def _spelled(key, origin):
    return PREFIX + key if origin == "kernel command line" else key


def load(warn, cmdline=CMDLINE, data=DATA_CONFIG, defaults=IMAGE_DEFAULTS):
    """Read every source in lookup order and resolve the settings.

    ``data=None`` leaves the data partition out: PID 1 reads the settings once
    before that partition is mounted (to start the consoles), and again after.
    """
    sources = []
    text = _read(cmdline)
    if text is not None:
        sources.append(("kernel command line", cmdline_settings(text)))
    for path in (data, defaults):
        text = None if path is None else _read(path)
        if text is not None:
            sources.append((path, file_settings(text, path, warn)))
    return Config(sources, warn)
