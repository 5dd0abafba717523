"""Every intent the offline planner understands: how to spot it, and its plan.

An intent is a function of an Utterance that returns None (not this) or a
Match: a score (how sure) and the steps.  The planner keeps the best match.
Scores are small sums of evidence: a topic word, a verb, a named agent, a
slot of the right type.  Each intent is registered with its help text and
examples; ``help`` and docs/shell.md are made from the same registry, and a
test checks both.

Where things live:

``words``     the vocabularies (SHOW, STOP, ...): one intent, many phrasings
``registry``  INTENTS, ``@intent``, Match, and the helpers every topic uses
``system``    what is going on: status, agents, processes, memory, disks, ...
``agents``    acting on agents: inspect, logs, start, stop, spawn, limit
``watching``  watch and record (each starts a built-in agent)
``context``   the context store: remember, forget, search, journal, compaction
``files``     files and fetch
``machine``   reboot and poweroff
``own``       what the shell answers itself: help, explain, undo, history, goals
``requests``  agents' requests for a person's yes: requests, approve N, deny N

To add intents, write them in the topic's module, or in a new module here for a
new topic: import it below and add it to MODULES.  The import registers its
intents, in import order (the order the planner tries them in, which breaks
ties); every tuple of words in a module of MODULES is in the planner's vocabulary.
"""

from . import words, registry
from . import system, agents, watching, context, files, machine, own, requests
from .registry import INTENTS, Intent, Match

MODULES = (words, registry, system, agents, watching, context, files, machine, own, requests)

__all__ = ["INTENTS", "MODULES", "Intent", "Match"]
