"""The unit of work: one transaction that rolls back unless committed, and owns what
happens after the commit.

    with UnitOfWork() as uow:
        ...statements, outbox rows...
        uow.commit()
    # committed: the outbox rows written in it have been dispatched

Statements take named parameters (`:slot_id`). The pooled connection is taken, and
BEGIN sent, with the first statement (one round trip; a unit of work that runs no
statement costs nothing). Outbox rows are written with the COMMIT, in the same round
trip, and their ids come back from it: after_commit dispatches exactly those.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeVar

from shared import logs
from shared.db import pg8000_internals as wire
from shared.db.connection import Connection, Pool, get_pool
from shared.db.errors import translate
from shared.db.sqlfiles import queries
from shared.errors import DatabaseUnavailable, Deadlock
from shared.repositories import (
    Accounts,
    Appointments,
    Doctors,
    Holds,
    IdempotencyKeys,
    Patients,
    SqlAccounts,
    SqlAppointments,
    SqlDoctors,
    SqlHolds,
    SqlIdempotencyKeys,
    SqlPatients,
    SqlWaitlist,
    Waitlist,
)

Row = dict[str, Any]
T = TypeVar("T")
OUTBOX = queries("outbox")
# A unit of work that deadlocked this many times in a row is answered 503.
DEADLOCK_ATTEMPTS = 3


@lru_cache(maxsize=512)
def _statement(sql: str) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    import pg8000.native

    # pg8000.native turns :name placeholders into $n (skipping literals and casts).
    statement, make_vals = pg8000.native.to_statement(sql)
    return statement, make_vals


class Transaction:
    """The statements of one transaction on one pooled connection."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: Connection | None = None
        self.committed = False

    def all(self, sql: str, **params: Any) -> list[Row]:
        statement, make_vals = _statement(sql)
        vals = make_vals(params)
        if self._conn is None:
            return self._begin(lambda conn: wire.execute(conn, statement, vals, begin=True))
        try:
            return wire.execute(self._conn, statement, vals)
        except Exception as error:
            raise translate(error) from error

    def one(self, sql: str, **params: Any) -> Row:
        rows = self.all(sql, **params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    def first(self, sql: str, **params: Any) -> Row | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None

    def execute(self, sql: str, **params: Any) -> None:
        self.all(sql, **params)

    def control(self, statement: str) -> None:
        """A statement without parameters or rows (SAVEPOINT and the like)."""
        if self._conn is None:
            self._begin(lambda conn: conn.execute_simple("BEGIN"))
        assert self._conn is not None
        try:
            self._conn.execute_simple(statement)
        except Exception as error:
            raise translate(error) from error

    def savepoint(self) -> _Savepoint:
        return _Savepoint(self)

    def commit(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute_simple("COMMIT")
            except Exception as error:
                raise translate(error) from error
        self.committed = True

    def execute_then_commit(self, sql: str, **params: Any) -> list[Row]:
        """One last statement and COMMIT in one round trip; the statement's rows."""
        if self._conn is None:  # nothing else ran: BEGIN goes with it, COMMIT after
            rows = self.all(sql, **params)
            self.commit()
            return rows
        statement, make_vals = _statement(sql)
        try:
            rows = wire.execute_then_commit(self._conn, statement, make_vals(params))
        except Exception as error:
            raise translate(error) from error
        self.committed = True
        return rows

    def end(self, failure: BaseException | None) -> None:
        """Rolls back unless committed, and gives the connection back to the pool."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        broken = isinstance(failure, DatabaseUnavailable)
        if not self.committed:
            try:
                conn.execute_simple("ROLLBACK")
            except Exception:
                broken = True
        self._pool.release(conn, broken=broken)

    def _begin(self, first: Callable[[Connection], T]) -> T:
        """Takes a pooled connection and runs `first`, which begins the transaction.

        A pooled connection may have died with a restarted server. Nothing of this
        transaction has run yet, so `first` is safe to retry on a fresh connection:
        only a database that is really down becomes a 503.
        """
        last: Exception | None = None
        for attempt in range(self._pool.size + 1):
            conn = self._pool.acquire()
            try:
                result = first(conn)
            except Exception as error:
                last = translate(error)
                if not isinstance(last, DatabaseUnavailable):
                    self._conn = conn  # open and failed: end() rolls it back
                    raise last from error
                self._pool.release(conn, broken=True)
                if attempt >= 1:
                    time.sleep(0.05)
                continue
            self._conn = conn
            return result
        assert last is not None
        raise last


class _Savepoint:
    """Lets a statement fail (a race lost on a constraint) without aborting the transaction."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def __enter__(self) -> None:
        self._tx.control("SAVEPOINT sp")

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        # Translated like any statement: a connection lost here is a 503, not a 500.
        self._tx.control("RELEASE SAVEPOINT sp" if error is None else "ROLLBACK TO SAVEPOINT sp")


class UnitOfWork:
    """One transaction: rolls back unless commit() was called; once a commit has
    succeeded, dispatches the outbox rows written in it (after_commit)."""

    def __init__(self, pool: Pool | None = None) -> None:
        self.tx = Transaction(pool or get_pool())
        self._outbox: list[dict[str, Any]] = []
        self.outbox_ids: list[int] = []
        # The storage the services reach (shared/repositories.py), all on this transaction.
        self.accounts: Accounts = SqlAccounts(self.tx)
        self.patients: Patients = SqlPatients(self.tx)
        self.doctors: Doctors = SqlDoctors(self.tx)
        self.appointments: Appointments = SqlAppointments(self.tx)
        self.holds: Holds = SqlHolds(self.tx)
        self.waitlist: Waitlist = SqlWaitlist(self.tx)
        self.idempotency_keys: IdempotencyKeys = SqlIdempotencyKeys(self.tx)

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.tx.end(error)
        if self.tx.committed and error is None:
            self.after_commit()

    def add_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        """Messages this change must cause ({appointment_id, target, name, payload,
        deliver_at}); written with the COMMIT, so they commit with the change or not at all."""
        self._outbox.extend(rows)

    def commit(self) -> None:
        if self._outbox:
            # Each message carries on the trace of the request that caused it (issue 17).
            trace = logs.trace_id()
            rows = [row if "trace" in row else {**row, "trace": trace} for row in self._outbox]
            # The outbox rows ride with the COMMIT: a booking's round trips are what
            # limits its rate on Cloud SQL.
            inserted = self.tx.execute_then_commit(OUTBOX.insert_outbox_rows, rows=json.dumps(rows))
            self.outbox_ids = [int(row["id"]) for row in inserted]
            self._outbox = []
        else:
            self.tx.commit()

    def after_commit(self) -> None:
        """The one place for what follows a commit: its outbox rows go out now (what
        fails stays for the sweep). Never raises: the change has committed."""
        if not self.outbox_ids:
            return
        from shared import dispatch  # imported here: dispatch runs units of work of its own

        dispatch.after_commit(self.outbox_ids)


def run_and_commit(work: Callable[[UnitOfWork], T]) -> T:
    """Runs `work` in a unit of work and commits it, and runs it again in a new one if
    the database broke a deadlock by rolling it back.

    Concurrent writes checked by one exclusion constraint can deadlock each other
    (overlapping windows of one doctor published at once, say). PostgreSQL rolls one
    back; run again, it meets the other's committed row, and the caller gets the 409
    the rule means, not a 503.
    """
    attempt = 1
    while True:
        try:
            with UnitOfWork() as uow:
                result = work(uow)
                uow.commit()
            return result
        except Deadlock:
            if attempt == DEADLOCK_ATTEMPTS:
                raise
            attempt += 1
