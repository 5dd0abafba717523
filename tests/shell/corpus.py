"""The phrasing corpus (corpus.txt): loading it, and checking a planner against it.

Used by tests/unit/test_shell_corpus.py and by scripts/bench (which runs the
same check inside the guest through aether.shell.planbench).
"""

from pathlib import Path

PATH = Path(__file__).with_name("corpus.txt")
AGENTS = ["sysmon", "watch", "drill", "digest", "backup"]


def load(path=PATH):
    """[(line number, phrase, intent, signature)]; a malformed line raises ValueError naming it."""
    cases = []
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        phrase, arrow, rest = text.partition("=>")
        intent, bar, signature = rest.partition("|")
        if not arrow or not bar or not phrase.strip() or not intent.strip():
            raise ValueError(f"{path}:{n}: expected 'PHRASE => INTENT | SIGNATURE', got {raw!r}")
        cases.append((n, phrase.strip(), intent.strip(), signature.strip()))
    return cases
