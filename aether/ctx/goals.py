"""Goals: an intent, its plan, its steps and their outcomes, linked to the journal.

A goal lives in a scope (its agent's, by default) and moves through
open -> active -> done | failed | abandoned; its steps, numbered from 1,
through pending -> running -> done | failed | skipped.  Every change appends
a journal entry carrying the goal's id (kinds 'goal.create', 'goal.update',
'goal.step') in the same transaction, and the goal and step rows remember
the seq of their latest entry: ``journal(goal_id=...)`` is a goal's history.
"""

from .errors import NotFound
from .validate import GOAL_STATUSES, STEP_STATUSES, choice, text

GOAL_COLUMNS = "id, scope_id, intent, plan, status, outcome, author, created_at, updated_at, journal_seq"
STEP_COLUMNS = "goal_id, n, description, status, outcome, updated_at, journal_seq"


class Goals:
    """Rows of goals and goal_steps, each change journalled."""

    def __init__(self, db, access, journal, clock):
        self.db, self.access, self.journal, self.clock = db, access, journal, clock

    def scope_of(self, goal_id):
        """The scope name a goal lives in, or NotFound."""
        row = self.db.one("SELECT scope_id FROM goals WHERE id = ?", (goal_id,))
        if row is None:
            raise NotFound(f"goal {goal_id} does not exist")
        return self.access.name_of(row[0])

    def create(self, actor, scope_name, intent, plan, steps):
        intent = text(intent, "intent")
        plan = text(plan, "plan", allow_empty=True)
        steps = [text(s, "steps[]") for s in (steps or [])]
        now = self.clock()
        with self.db.atomic():
            scope_id, _ = self.access.ensure(scope_name)
            cur = self.db.execute("INSERT INTO goals(scope_id, intent, plan, status, author, created_at, "
                                  "updated_at, journal_seq) VALUES (?, ?, ?, 'open', ?, ?, ?, 0)",
                                  (scope_id, intent, plan, actor, now, now))
            goal_id = cur.lastrowid
            seq = self.journal(actor, scope_name, "goal.create",
                               {"intent": intent, "plan": plan, "steps": steps}, goal_id)
            self.db.execute("UPDATE goals SET journal_seq = ? WHERE id = ?", (seq, goal_id))
            for n, description in enumerate(steps, 1):
                self._insert_step(goal_id, n, description, now, seq)
        return self.get(goal_id)

    def _insert_step(self, goal_id, n, description, now, seq):
        self.db.execute("INSERT INTO goal_steps(goal_id, n, description, status, updated_at, journal_seq) "
                        "VALUES (?, ?, ?, 'pending', ?, ?)", (goal_id, n, description, now, seq))

    def add_step(self, actor, goal_id, description):
        description = text(description, "description")
        scope_name = self.scope_of(goal_id)
        now = self.clock()
        with self.db.atomic():
            n = self.db.one("SELECT coalesce(max(n), 0) + 1 FROM goal_steps WHERE goal_id = ?", (goal_id,))[0]
            seq = self.journal(actor, scope_name, "goal.step",
                               {"step": n, "action": "add", "description": description}, goal_id)
            self._insert_step(goal_id, n, description, now, seq)
            self._touch(goal_id, now, seq)
        return self.step(goal_id, n)

    def update_step(self, actor, goal_id, n, status, outcome):
        choice(status, "status", STEP_STATUSES)
        if outcome is not None:
            outcome = text(outcome, "outcome", allow_empty=True)
        scope_name = self.scope_of(goal_id)
        self.step(goal_id, n)
        now = self.clock()
        with self.db.atomic():
            seq = self.journal(actor, scope_name, "goal.step",
                               {"step": n, "action": "update", "status": status, "outcome": outcome},
                               goal_id)
            self.db.execute("UPDATE goal_steps SET status = ?, outcome = coalesce(?, outcome), "
                            "updated_at = ?, journal_seq = ? WHERE goal_id = ? AND n = ?",
                            (status, outcome, now, seq, goal_id, n))
            self._touch(goal_id, now, seq)
        return self.step(goal_id, n)

    def update(self, actor, goal_id, status, plan, outcome):
        if status is not None:
            choice(status, "status", GOAL_STATUSES)
        if plan is not None:
            plan = text(plan, "plan", allow_empty=True)
        if outcome is not None:
            outcome = text(outcome, "outcome", allow_empty=True)
        scope_name = self.scope_of(goal_id)
        now = self.clock()
        changes = {k: v for k, v in (("status", status), ("plan", plan), ("outcome", outcome))
                   if v is not None}
        with self.db.atomic():
            seq = self.journal(actor, scope_name, "goal.update", changes, goal_id)
            self.db.execute("UPDATE goals SET status = coalesce(?, status), plan = coalesce(?, plan), "
                            "outcome = coalesce(?, outcome), updated_at = ?, journal_seq = ? WHERE id = ?",
                            (status, plan, outcome, now, seq, goal_id))
        return self.get(goal_id)

    def _touch(self, goal_id, now, seq):
        self.db.execute("UPDATE goals SET updated_at = ?, journal_seq = ? WHERE id = ?", (now, seq, goal_id))

    # ---------------------------------------------------------------- reads

    def step(self, goal_id, n):
        row = self.db.one(f"SELECT {STEP_COLUMNS} FROM goal_steps WHERE goal_id = ? AND n = ?", (goal_id, n))
        if row is None:
            raise NotFound(f"goal {goal_id} has no step {n}")
        return _step(row)

    def get(self, goal_id):
        row = self.db.one(f"SELECT {GOAL_COLUMNS} FROM goals WHERE id = ?", (goal_id,))
        if row is None:
            raise NotFound(f"goal {goal_id} does not exist")
        goal = self._goal(row)
        goal["steps"] = [_step(r) for r in self.db.all(
            f"SELECT {STEP_COLUMNS} FROM goal_steps WHERE goal_id = ? ORDER BY n", (goal_id,))]
        return goal

    def list(self, scope_ids, status, limit):
        where, params = [], []
        if scope_ids is not None:
            where.append(f"scope_id IN ({','.join('?' * len(scope_ids))})")
            params.extend(scope_ids)
        if status is not None:
            where.append("status = ?")
            params.append(choice(status, "status", GOAL_STATUSES))
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self.db.all(f"SELECT {GOAL_COLUMNS} FROM goals {clause} ORDER BY updated_at DESC, id DESC "
                           "LIMIT ?", (*params, limit))
        return [self._goal(r) for r in rows]

    def _goal(self, row):
        keys = ("id", "scope", "intent", "plan", "status", "outcome", "author", "created_at", "updated_at",
                "journal_seq")
        goal = dict(zip(keys, row))
        goal["scope"] = self.access.name_of(row[1])
        return goal


def _step(row):
    return dict(zip(("goal_id", "n", "description", "status", "outcome", "updated_at", "journal_seq"), row))
