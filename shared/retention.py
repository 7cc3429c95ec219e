"""What the database keeps only for a while: idempotency keys and dispatched outbox rows.

Pruned a batch at a time by the outbox sweep (every minute in production), so
neither table grows for ever with the clinic's traffic.
"""

from __future__ import annotations

from datetime import timedelta

from shared.db.sqlfiles import queries
from shared.unit_of_work import UnitOfWork

SQL = queries("retention")

# How long a retry with the same Idempotency-Key gets the first answer.
IDEMPOTENCY_TTL = timedelta(hours=24)
# How long a dispatched outbox row stays, once due, for an operator to look at (or resend).
OUTBOX_KEPT = timedelta(days=30)
PRUNE_BATCH = 1000


def prune(limit: int = PRUNE_BATCH) -> dict[str, int]:
    """Deletes up to `limit` expired rows of each table; returns how many went."""
    with UnitOfWork() as uow:
        keys = uow.tx.all(SQL.prune_idempotency_keys, ttl=IDEMPOTENCY_TTL, limit=limit)
        outbox = uow.tx.all(SQL.prune_outbox, kept=OUTBOX_KEPT, limit=limit)
        uow.commit()
    return {"pruned_idempotency_keys": len(keys), "pruned_outbox": len(outbox)}
