"""Agent manifests: TOML files that declare an agent.

    name = "sysmon"
    goal = "sample CPU, memory, pressure and disk; alert on thresholds"
    program = "aether.builtin.sysmon:main"   # module:function (forked, pre-imported)
                                             # or an absolute path to an executable
    args = ["--interval", "5"]
    restart = "always"                        # always | on-failure | never (125: done)
    priority = 50                             # 0..100; maps to cpu.weight
    user = "agent"                            # "agent": its own uid; "root" needs grant
    grant = []                                # extra privileges: "root", "net"
    heartbeat = "30s"                         # optional: silent longer -> restarted
    [backoff]   initial = "0.5s"  max = "30s"
    [intensity] restarts = 5      period = "60s"
    [limits]    memory = "64M"    cpu = "50%"   pids = 64   deadline = "1h"
    [context]   window_tokens = 4096  spend_tokens = 200000  period = "1d"
                                              # window: tokens one model call may carry;
                                              # spend: model tokens per period (none: lifetime)
    [env]       KEY = "value"

Every field is checked; a bad one is reported with the file, the field, the
value and the rule it broke (ManifestError), and the other manifests still load.
"""

import tomllib

from ..states import POLICIES

BUILTIN = "aether.builtin."          # the image's own agents (aether/builtin/)
LEGACY_BUILTIN = "aether.agents."    # their old package: still in manifests on data disks
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
GRANTS = ("root", "net", "unconfined")   # see aether/agent/confine.py


class ManifestError(ValueError):
    """A manifest breaks a rule; the message names file, field, value and rule."""


def _fail(origin, field, value, rule):
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise ManifestError(f"{origin}: {field} = {shown}: {rule}")


# Names no agent may take: the data partition's own trees (aether.agent.layout), the cgroup
# leaf "self", the principals that are not agents, and the intent shell's own command words
# (an agent called "status" would take the word over).
RESERVED = frozenset({
    "manifests", "home", "system", "agents", "packages", "self", "root", "host", "shell", "user",
    "aether", "aetherd", "init", "console", "legacy", "image", "uid", "all", "none",
    "status", "explain", "reboot", "poweroff", "shutdown", "halt", "help", "undo", "history",
    "yes", "no", "exit", "quit",
})


def is_name(value):
    """Whether ``value`` is a valid agent name (check_name without the message)."""
    try:
        check_name(value)
        return True
    except ManifestError:
        return False


def check_name(value, origin="agent", field="name", reserved_ok=False):
    """An agent's name: the last component of every path and cgroup made from it."""
    if (not isinstance(value, str) or not 1 <= len(value) <= 32 or not value[0].isalpha()
            or not set(value) <= NAME_CHARS):
        _fail(origin, field, value, "1-32 characters: lower-case letters, digits and '-', "
                                    "starting with a letter")
    if value in RESERVED and not reserved_ok:
        _fail(origin, field, value, "a reserved name (the system's own trees and principals, and the "
                                    f"shell's words: {', '.join(sorted(RESERVED))}); choose another")
    return value


def name(origin, field, value):
    return check_name(value, origin, field)


def text(limit):
    def check(origin, field, value):
        if not isinstance(value, str) or len(value) > limit:
            _fail(origin, field, value, f"a string of at most {limit} characters")
        return value
    return check


def strings(origin, field, value):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(origin, field, value, "a list of strings")
    return list(value)


def current_program(value):
    """The program as this image names it: the built-in agents' old package
    (``aether.agents.goal:main``, persisted in records and manifests written before the
    rename) is read as ``aether.builtin.goal:main``; anything else is returned as is."""
    if isinstance(value, str) and value.startswith(LEGACY_BUILTIN):
        return BUILTIN + value[len(LEGACY_BUILTIN):]
    return value


def program(origin, field, value):
    value = current_program(value)
    if isinstance(value, str):
        module, sep, func = value.partition(":")
        if sep and module and func.isidentifier() and all(p.isidentifier() for p in module.split(".")):
            return value
        if value.startswith("/") and not sep:
            return value
    _fail(origin, field, value, "'package.module:function' (run in a forked, pre-imported "
                                "worker) or an absolute path to an executable")


def choice(options):
    def check(origin, field, value):
        if value not in options:
            _fail(origin, field, value, f"one of {', '.join(options)}")
        return value
    return check


def integer(low, high):
    def check(origin, field, value):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            _fail(origin, field, value, f"an integer from {low} to {high}")
        return value
    return check


def size(origin, field, value):
    """Bytes from 67108864, "64M", "512K", "1G"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        number, unit = value.strip()[:-1], value.strip()[-1:].lower()
        if unit not in UNITS or unit == "":
            number, unit = value.strip(), ""
        try:
            result = int(float(number) * UNITS[unit])
        except ValueError:
            result = 0
        if result > 0:
            return result
    _fail(origin, field, value, "a size such as 64M, 512K, 1G or a number of bytes")


def duration(origin, field, value):
    """Seconds from 30, 0.5, "30s", "5m", "1h", "250ms"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        v = value.strip().lower()
        for unit in ("ms", "s", "m", "h", "d"):
            if v.endswith(unit):
                try:
                    seconds = float(v[:-len(unit)]) * SECONDS[unit]
                except ValueError:
                    break
                if seconds > 0:
                    return seconds
                break
    _fail(origin, field, value, "a duration such as 30s, 5m, 1h, 250ms or a number of seconds")


def cpu(origin, field, value):
    """A CPU quota as a fraction of one CPU: "50%" -> 0.5, "2" CPUs -> 2.0."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            share = 0
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        share = float(value)
    else:
        share = 0
    if not 0.01 <= share <= 64:
        _fail(origin, field, value, "a CPU quota such as \"50%\" (of one CPU) or 2 (CPUs), "
                                    "from 1% to 64 CPUs")
    return share


def grants(origin, field, value):
    value = strings(origin, field, value)
    for grant in value:
        if grant not in GRANTS:
            _fail(origin, field, grant, f"unknown grant; known: {', '.join(GRANTS)}")
    return value


def env(origin, field, value):
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        _fail(origin, field, value, "a table of string values")
    return dict(value)


# field -> (validator, default)
FIELDS: dict[str, tuple] = {
    "name": (name, None),
    "program": (program, None),
    "goal": (text(4000), ""),
    "args": (strings, []),
    "restart": (choice(POLICIES), "on-failure"),
    "priority": (integer(0, 100), 50),
    "user": (choice(("agent", "root")), "agent"),
    "grant": (grants, []),
    "heartbeat": (duration, None),
    "env": (env, {}),
    "backoff.initial": (duration, 0.5),
    "backoff.max": (duration, 30.0),
    "intensity.restarts": (integer(0, 1000), 5),
    "intensity.period": (duration, 60.0),
    "limits.memory": (size, 64 << 20),
    "limits.cpu": (cpu, None),
    "limits.pids": (integer(1, 100000), 64),
    "limits.deadline": (duration, None),
    "limits.disk": (size, 64 << 20),          # bytes of the data disk (home + store)
    "context.window_tokens": (integer(64, 10 ** 8), None),    # None: the endpoint's context size
    "context.spend_tokens": (integer(0, 10 ** 9), 8000),
    "context.period": (duration, None),                      # None: spend_tokens is for its lifetime
}
REQUIRED = ("name", "program")


class Manifest:
    """A validated manifest: attributes are the FIELDS with dots as underscores."""

    def __init__(self, values, origin, given=None):
        self.origin = origin
        self.values = values
        self.given = frozenset(values if given is None else given)   # the fields the author wrote
        for key, value in values.items():
            setattr(self, key.replace(".", "_"), value)

    def to_dict(self):
        return dict(self.values)

    def with_changes(self, **changes):
        values = dict(self.values)
        for key, value in changes.items():
            values[key.replace("__", ".")] = value
        return Manifest(values, self.origin, self.given | {k.replace("__", ".") for k in changes})


def _flatten(data, origin, prefix=""):
    flat = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in ("env",):
            flat.update(_flatten(value, origin, path + "."))
        else:
            flat[path] = value
    return flat


def from_dict(data, origin="manifest"):
    if not isinstance(data, dict):
        raise ManifestError(f"{origin}: a manifest is a table of fields, got {type(data).__name__}")
    flat = _flatten(data, origin)
    flat, notices = _migrate_budget(flat, origin)
    unknown = sorted(set(flat) - set(FIELDS))
    if unknown:
        raise ManifestError(f"{origin}: unknown field(s) {', '.join(unknown)}; "
                            f"known: {', '.join(FIELDS)}")
    for field in REQUIRED:
        if field not in flat:
            raise ManifestError(f"{origin}: {field} is required")
    values = {}
    for field, (check, default) in FIELDS.items():
        values[field] = check(origin, field, flat[field]) if field in flat else default
    if values["user"] == "root" and "root" not in values["grant"]:
        raise ManifestError(f"{origin}: user = 'root' needs grant = [\"root\"] "
                            "(agents run as their own unprivileged uid otherwise)")
    if values["backoff.max"] < values["backoff.initial"]:
        raise ManifestError(f"{origin}: backoff.max ({values['backoff.max']:g}s) is shorter than "
                            f"backoff.initial ({values['backoff.initial']:g}s)")
    manifest = Manifest(values, origin, given=set(flat))
    manifest.notices = notices
    return manifest


def _migrate_budget(flat, origin):
    """The old ``context.budget_tokens`` (one number for two things) becomes the spend;
    the window is then the endpoint's.  Returns (fields, notices)."""
    if "context.budget_tokens" not in flat:
        return flat, []
    flat = dict(flat)
    old = flat.pop("context.budget_tokens")
    if "context.spend_tokens" in flat:
        return flat, [f"{origin}: context.budget_tokens is obsolete and ignored: context.spend_tokens "
                      "is given (delete budget_tokens)"]
    flat["context.spend_tokens"] = old
    return flat, [f"{origin}: context.budget_tokens = {old!r} is obsolete: read as context.spend_tokens "
                  f"= {old!r} (model tokens over the agent's lifetime; add period = \"1d\" for a daily "
                  "allowance) with the endpoint's window; write spend_tokens (and window_tokens) instead"]


def parse(text, origin="manifest"):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{origin}: not valid TOML: {e}") from None
    return from_dict(data, origin)


def load_dir(path, warn):
    """Every *.toml under path: {name: Manifest}; bad ones are reported to warn().

    A manifest says what runs and as whom, so a directory or a file that anyone but
    root or aetherd's own uid may write is not read, and no link is followed."""
    import os
    found = {}
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return found
    except OSError as e:
        warn(f"{path}: manifests not read: {e.strerror} (it must be a directory, not a link)")
        return found
    try:
        if not _ours(os.fstat(dfd)):
            warn(f"{path}: manifests not read: the directory may be written by others than root "
                 "(it must belong to root and not be group- or world-writable)")
            return found
        for entry in sorted(os.listdir(dfd)):
            if entry.endswith(".toml"):
                _load_one(dfd, entry, os.path.join(path, entry), found, warn)
    finally:
        os.close(dfd)
    return found


def _ours(st):
    """Owned by root or aetherd's uid, and writable by nobody else."""
    import os
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022


def _load_one(dfd, entry, origin, found, warn):
    import os
    import stat
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        with os.fdopen(fd, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or not _ours(st):
                return warn(f"{origin}: not read: it must be a plain file of root's that nobody "
                            "else may write")
            manifest = parse(f.read(1 << 20), origin)
    except (OSError, UnicodeDecodeError) as e:
        return warn(f"{origin}: cannot read: {e}")
    except ManifestError as e:
        return warn(f"agent not loaded: {e}")
    if manifest.name in found:
        return warn(f"{origin}: agent {manifest.name!r} is already defined by {found[manifest.name].origin}; "
                    "ignored")
    found[manifest.name] = manifest
    for notice in getattr(manifest, "notices", ()):
        warn(notice)
