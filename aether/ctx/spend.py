"""Model-token spend rows (schema migration 2, table ``spend``): the durable side of
the broker's ledger (aether/broker/spend.py).

The ledger is the only writer.  Each write is its own durable transaction, so an
acknowledged reservation survives a crash: the next aetherd finds it in
``reserved`` and charges it (the call may have been served).  Rows are plain
dicts with the table's columns.
"""

COLUMNS = ("principal", "parent", "limit_tokens", "period_s", "period_start", "used", "reserved",
           "calls", "updated_at")


def load(db):
    """Every account row, as {principal: row}."""
    rows = db.all(f"SELECT {', '.join(COLUMNS)} FROM spend")
    return {row[0]: dict(zip(COLUMNS, row)) for row in rows}


def save(db, rows, clock):
    """Write these rows (insert or replace) in one durable transaction."""
    now = clock()
    with db.atomic():
        for row in rows:
            values = [row.get(c) for c in COLUMNS[:-1]] + [now]
            db.execute(f"INSERT OR REPLACE INTO spend({', '.join(COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(COLUMNS))})", values)


def delete(db, principal):
    with db.atomic():
        db.execute("DELETE FROM spend WHERE principal = ?", (principal,))
