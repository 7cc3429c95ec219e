"""Driver errors, translated once into what the services and the web layer understand."""

from __future__ import annotations

from shared.errors import Busy, DatabaseUnavailable, Deadlock


class IntegrityViolation(Exception):
    """A constraint refused a write; services map it to a domain error by name."""

    def __init__(self, sqlstate: str, constraint: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.constraint = constraint


class QueryError(Exception):
    """Any other error the database reported for a statement."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# SQLSTATE classes that mean "the data was refused", not "the database is broken".
_INTEGRITY_STATES = {"23505", "23P01", "23503", "23514", "23502"}
# Connection lost, server shutting down or starting up, too many connections.
_UNAVAILABLE_PREFIXES = ("08", "57P", "53")
# lock_timeout, statement_timeout: the transaction is rolled back whole, so trying
# again later is safe.
_BUSY_STATES = {"55P03", "57014"}
# A deadlock broken or a serialization failure: rolled back whole too, and worth
# running again at once (shared.unit_of_work.run_retrying_deadlocks does).
_DEADLOCK_STATES = {"40P01", "40001"}


def translate(error: Exception) -> Exception:
    """The exception to raise instead of a pg8000 one (others are returned unchanged)."""
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.DatabaseError) and error.args:
        info = error.args[0] if isinstance(error.args[0], dict) else {}
        state = str(info.get("C", ""))
        message = str(info.get("M", error))
        if state in _INTEGRITY_STATES:
            return IntegrityViolation(state, info.get("n"), message)
        if state.startswith(_UNAVAILABLE_PREFIXES):
            return DatabaseUnavailable(message)
        if state in _BUSY_STATES:
            return Busy(message)
        if state in _DEADLOCK_STATES:
            return Deadlock(message)
        return QueryError(state, message)
    if isinstance(error, pg8000.exceptions.InterfaceError | OSError):
        return DatabaseUnavailable(str(error))
    return error
