"""disk-janitor: large, old files in agents' homes, deleted only after a person says yes.

    args: [--min-size 64M] [--min-age 30d] [--every SECONDS] [--once] [--root DIR] [--timeout SECONDS]

The homes directory (``--root``, default the parent of its own home) is walked beneath
directory descriptors (``O_NOFOLLOW | O_DIRECTORY`` for each component): links are never
followed, the janitor's own home is skipped, and the walk is bounded (MAX_SCANNED entries,
MAX_DEPTH levels).  The largest MAX_ASKED candidates go into one ``agent.ask``; only an
``approved`` answer deletes, and each file only if it is still the one shown (device,
inode, size, modification and change time), by ``unlink`` beneath its directory's descriptor.
A denial is remembered (the state's ``denied``), so those files are not asked about again.
File names are shown escaped: a hostile name cannot paint the person's console.
"""

import os
import stat
import time

from aether import sdk

MAX_SCANNED = 200000
MAX_DEPTH = 32
MAX_ASKED = 40
MAX_DENIED = 2000
DETAILS = 3800                # characters of the request's details (agent.ask allows 4000)
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def size(text):
    text = text.strip().lower().rstrip("b")
    unit = text[-1] if text and text[-1] in "kmg" else ""
    return int(float(text[:len(text) - len(unit)]) * UNITS[unit])


def age(text):
    text = text.strip().lower()
    unit = text[-1] if text and text[-1] in AGES else "s"
    return float(text.rstrip("smhd")) * AGES[unit]


def parse(args):
    opts = {"min_size": 64 << 20, "min_age": 30 * 86400.0, "every": 86400.0, "once": False, "root": None,
            "timeout": 3600.0}
    it = iter(args)
    try:
        for arg in it:
            if arg == "--once":
                opts["once"] = True
            elif arg in ("--min-size", "--min-age", "--every", "--root", "--timeout"):
                value = next(it)
                key = arg[2:].replace("-", "_")
                opts[key] = {"min_size": size, "min_age": age, "root": str}.get(key, float)(value)
            else:
                raise ValueError(f"unknown argument {arg!r}")
    except (ValueError, StopIteration) as e:
        raise SystemExit(f"disk-janitor: {e or 'a value is missing'}; usage: [--min-size 64M] [--min-age 30d] "
                         "[--every S] [--once] [--root DIR] [--timeout S]") from None
    return opts


def shown(parts):
    """A path for a person's eyes: backslashes and anything unprintable (controls, direction
    marks, bytes that are not UTF-8) escaped, so a hostile name cannot paint the console."""
    out = []
    for ch in "/".join(parts):
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class Candidate:
    """One file: its path components beneath the root, and what it was when found (the inode,
    size, and modification and change times: a file made anew under the name, even on a
    reused inode with its times set back, has a new change time)."""

    __slots__ = ("parts", "dev", "ino", "size", "mtime", "ctime_ns")

    def __init__(self, parts, st):
        self.parts, self.dev, self.ino, self.size = parts, st.st_dev, st.st_ino, st.st_size
        self.mtime, self.ctime_ns = st.st_mtime, st.st_ctime_ns

    def key(self):
        return f"{self.dev}:{self.ino}:{self.size}:{self.ctime_ns}"

    def same(self, st):
        return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime, st.st_ctime_ns) == \
            (self.dev, self.ino, self.size, self.mtime, self.ctime_ns)


def scan(root, skip, min_size, min_age, now=None, alive=lambda: None):
    """Regular files beneath ``root`` (not in the top-level entry ``skip``), largest first."""
    now = time.time() if now is None else now
    found, scanned = [], 0
    top = os.open(root, DIR_FLAGS)
    stack = [(top, ())]
    try:
        while stack:
            fd, parts = stack.pop()
            try:
                with os.scandir(fd) as entries:
                    for e in entries:
                        scanned += 1
                        if scanned > MAX_SCANNED:
                            return _largest(found), True
                        if not parts and e.name == skip:
                            continue
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISDIR(st.st_mode) and len(parts) < MAX_DEPTH:
                            try:
                                stack.append((os.open(e.name, DIR_FLAGS, dir_fd=fd), (*parts, e.name)))
                            except OSError:
                                continue
                        elif stat.S_ISREG(st.st_mode) and st.st_size >= min_size and now - st.st_mtime >= min_age:
                            found.append(Candidate((*parts, e.name), st))
            except OSError:
                pass
            finally:
                os.close(fd)
            alive()
    finally:
        for fd, _ in stack:
            os.close(fd)
    return _largest(found), False


def _largest(found):
    return sorted(found, key=lambda c: (-c.size, c.parts))


def delete(root, candidate):
    """Unlink the file if it is still the one found; None, or why it was not deleted."""
    fds = [os.open(root, DIR_FLAGS)]
    try:
        for part in candidate.parts[:-1]:
            fds.append(os.open(part, DIR_FLAGS, dir_fd=fds[-1]))
        name = candidate.parts[-1]
        st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
        if not candidate.same(st):
            return "it changed since it was shown"
        os.unlink(name, dir_fd=fds[-1])
        return None
    except OSError as e:
        return f"{e.strerror}"
    finally:
        for fd in fds:
            os.close(fd)


def request(candidates, opts):
    """(the candidates that fit in one request, its step, why and details)."""
    lines, asked, used = [], [], 0
    for c in candidates[:MAX_ASKED]:
        line = f"{shown(c.parts)}  {human(c.size)}  {(time.time() - c.mtime) / 86400:.0f} days old"
        if used + len(line) + 1 > DETAILS:
            break
        lines.append(line)
        asked.append(c)
        used += len(line) + 1
    total = sum(c.size for c in asked)
    step = f"delete {len(asked)} file{'s' if len(asked) != 1 else ''} ({human(total)}) in agents' homes"
    why = (f"each is at least {human(opts['min_size'])} and untouched for {opts['min_age'] / 86400:g} days"
           + (f"; {len(candidates) - len(asked)} more are left for another time" if len(candidates) > len(asked) else ""))
    return asked, step, why, "\n".join(lines)


def sweep(agent, opts):
    """One look: scan, ask, delete what was approved.  Returns (deleted, kept) path lists."""
    root = opts["root"] or os.path.dirname(os.path.abspath(agent.home))
    own = os.path.basename(os.path.abspath(agent.home)) if os.path.dirname(os.path.abspath(agent.home)) == \
        os.path.abspath(root) else None
    denied = agent.state.setdefault("denied", [])
    found, cut = scan(root, own, opts["min_size"], opts["min_age"], alive=agent.alive)
    found = [c for c in found if c.key() not in denied]
    if not found:
        agent.log(f"nothing to clean in {root}" + (" (the scan stopped early)" if cut else ""))
        return [], []
    asked, step, why, details = request(found, opts)
    answer = agent.ask(step, why, details=details, timeout=opts["timeout"])
    if not answer:
        agent.log(f"request {answer.id} {answer.state}: nothing deleted")
        if answer.state == "denied":
            denied.extend(c.key() for c in asked)
            del denied[:-MAX_DENIED]
        agent.remember(f"asked to {step}; {answer.state}" + (f" ({answer.note})" if answer.note else "")
                       + "; nothing deleted", kind="note", tags=["janitor"])
        return [], [shown(c.parts) for c in asked]
    deleted, kept = [], []
    for c in asked:
        why_not = delete(root, c)
        (kept if why_not else deleted).append(shown(c.parts))
        agent.log(f"{'kept' if why_not else 'deleted'} {shown(c.parts)}" + (f": {why_not}" if why_not else ""))
    agent.remember(f"request {answer.id} approved by {answer.by}: deleted {len(deleted)} files"
                   + (f", kept {len(kept)} that changed or vanished" if kept else "") + ": "
                   + ", ".join(deleted)[:3000], kind="note", tags=["janitor"])
    return deleted, kept


def main(args):
    opts = parse(args)

    def step(agent):
        sweep(agent, opts)
        return sdk.DONE if opts["once"] else None
    return sdk.run(step, every=None if opts["once"] else opts["every"], args=args)
