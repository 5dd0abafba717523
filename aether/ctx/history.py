"""As-of queries: what a scope's context looked like at an earlier time.

A memory was live at time T when it was created at or before T and the last
state event at or before T (``memory_events``: compacted, restored,
forgotten, purged) left it live, or there was none.  Its pinned flag at T
is set by the last pin/unpin event at or before T; without one, it is the
flag it was created with (the opposite of its first pin event, or its
current value if it never changed).  Text, tags, kind and scope never
change, so an item as it was at T is its row as it is now, unless a purge
has removed the text since: then it is listed under ``purged`` with its
digest and token count.

``last_used`` at T is not kept: an as-of answer says which items were there
and whether they were pinned, not how a window would have ranked them.
"""

from .memories import COLUMNS, as_dict

STATE_AFTER = {"compacted": "compacted", "forgotten": "forgotten", "purged": "purged",
               "restored": "live"}


def as_of(db, scope_id, scope_name, at, limit):
    """{'items': [...live at `at`, newest first, at most limit], 'purged': [...], counts}."""
    rows = db.all(f"SELECT {COLUMNS} FROM memories WHERE scope_id = ? AND created_at <= ? "
                  "ORDER BY created_at DESC, id DESC", (scope_id, at))
    events = _events(db, scope_id, at)
    items, purged, tokens, live = [], [], 0, 0
    for row in rows:
        state, pinned = state_at(row, events.get(row[0], ()), at)
        if state != "live":
            continue
        live += 1
        tokens += row[7]
        if row[3] is None:
            purged.append({"id": row[0], "kind": row[2], "created_at": row[9], "tokens": row[7],
                           "digest": row[14], "purged_at": row[12]})
        elif len(items) < limit:
            items.append(_item(row, scope_name, pinned))
    return {"scope": scope_name, "at": at, "items": items, "purged": purged, "live_items": live,
            "live_tokens": tokens, "truncated": live - len(purged) > len(items)}


def _item(row, scope_name, pinned):
    item = as_dict(row, scope_name)
    for key in ("last_used", "state_at", "compaction_id"):
        item.pop(key, None)
    item.update(pinned=pinned, state="live")
    return item


def _events(db, scope_id, at):
    """{memory id: [(ts, event), ...]} of every event of the scope's memories created by `at`."""
    rows = db.all("SELECT e.memory_id, e.ts, e.event FROM memory_events e "
                  "JOIN memories m ON m.id = e.memory_id WHERE m.scope_id = ? AND m.created_at <= ? "
                  "ORDER BY e.memory_id, e.ts, e.rowid", (scope_id, at))
    by_memory = {}
    for memory_id, ts, event in rows:
        by_memory.setdefault(memory_id, []).append((ts, event))
    return by_memory


def state_at(row, events, at):
    """(state, pinned) of a memory row at time `at`, given all its events in order."""
    state, pinned, first_pin = "live", None, None
    for ts, event in events:
        is_pin = event in ("pinned", "unpinned")
        if is_pin and first_pin is None:
            first_pin = event
        if ts > at:
            continue
        if is_pin:
            pinned = event == "pinned"
        else:
            state = STATE_AFTER[event]
    if pinned is None:
        pinned = (first_pin == "unpinned") if first_pin else bool(row[6])
    return state, pinned
