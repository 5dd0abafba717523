"""The intent shell on a terminal: the console's (ttyS0, tty1) and the host's.

    console()                  on the machine, after aether.console attached the tty
    interactive(connect)       aetherctl shell: the same loop on the host's terminal
    one_shot(connect, line)    aetherctl intent "...": plan, run, print, exit status

Everything else (planning, asking, running, recording) is the Session's.
"""

import os
import sys
import time

from ..abi.protocol import AbiError
from ..client import DEFAULT_SOCKET, Client
from .lineedit import LineEditor
from .session import PROMPT, Session

YES = ("y", "yes", "yeah", "yep", "sure", "ok", "okay", "go", "do it", "go ahead", "run it", "confirm")
WAIT_FOR_AETHERD = 20.0
CALL_TIMEOUT = 600.0          # a model plan can take long; Ctrl-C is the way out


def connector(path, out, wait_for=WAIT_FOR_AETHERD):
    """connect(wait): a Client; with wait, retry while aetherd is starting (saying so once)."""
    def connect(wait):
        deadline, told = time.monotonic() + (wait_for if wait else 0), False
        while True:
            try:
                return Client(path, timeout=CALL_TIMEOUT)
            except AbiError:
                if time.monotonic() >= deadline:
                    raise
                if not told:
                    out("(waiting for aetherd to answer ...)")
                    told = True
                time.sleep(0.2)
    return connect


def _print(text):
    print(text, flush=True)


def run(session, read, history_into=None, pending=None):
    """The read-plan-run loop until end of input.  Ctrl-C cancels a plan or a half-typed line.

    ``pending``: a line already read (its prompt already shown), handled first."""
    loaded = False
    while True:
        try:
            if pending is not None:
                line, pending = pending, None
            else:
                prompt = session.prompt()
                if not loaded and history_into is not None and session.client is not None:
                    history_into(session.history())
                    loaded = True
                line = read(prompt)
        except KeyboardInterrupt:
            continue                          # the editor printed ^C; a fresh prompt
        if line is None:
            return 0
        try:
            session.handle(line)
        except KeyboardInterrupt:
            session.drop()
            _print("\ncancelled (Ctrl-C).")
        except Exception as e:  # noqa: BLE001 - one bad line never ends the shell
            _print(f"error: {type(e).__name__}: {e} (the shell goes on; this is a bug, please report it)")


def _edited():
    """(read, confirm, load history) through the line editor on fd 0."""
    editor = LineEditor(0, lambda text: (sys.stdout.write(text), sys.stdout.flush()))

    def confirm(question):
        try:
            answer = editor.read(question, remember=False)
        except KeyboardInterrupt:
            return False
        return (answer or "").strip().lower() in YES

    def load(lines):
        editor.history = lines[-editor.keep:]      # the store has this session's lines too
    return editor.read, confirm, load


def console(first=None):
    """The shell on the console this process has attached (fd 0/1); ``first``: a line read already."""
    from .. import localstatus
    read, confirm, load = _edited()
    session = Session(connector(os.environ.get("AETHER_SOCKET", DEFAULT_SOCKET), _print), _print,
                      confirm, model=_model(), local_status=localstatus.text)
    return run(session, read, load, first)


def interactive(connect):
    """aetherctl shell: line editing when stdin is a terminal, plain lines otherwise."""
    if os.isatty(0):
        read, confirm, load = _edited()
    else:
        def read(prompt):
            sys.stdout.write(prompt)
            sys.stdout.flush()
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None

        def confirm(question):
            answer = read(question)
            return (answer or "").strip().lower() in YES
        load = None
    session = Session(connect, _print, confirm, model=_model())
    return run(session, read, load)


def one_shot(connect, line, yes=False):
    """Plan and run one line; risky steps run only with yes.  Exit status 0 when it all ran."""
    def confirm(question):
        if not yes:
            _print("not run: a step needs a yes; pass --yes to approve it")
        return yes
    session = Session(connect, _print, confirm, model=_model())
    try:
        session.prompt()                      # learns the agents' names and whether a model is there
    except AbiError:
        pass
    plan = session.handle(line)
    if plan.intent in ("unknown",):
        return 2
    if plan.intent == "not_found":
        return 1                              # a risky step on something that is not there: nothing ran
    last = session.last
    if last is None or last[0] is not plan:
        return 0 if plan.answer is not None or plan.intent in ("help", "explain") else 1
    return 0 if last[2] == "done" else 1


def _model():
    from .model import ModelPlanner
    return ModelPlanner()


__all__ = ["PROMPT", "console", "interactive", "one_shot", "connector"]
