"""Prepared statements for the few statements the hot paths send on every request.

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor: the values
are quoted into the SQL text) and turns psycopg's automatic preparing off, so PostgreSQL parses
and plans every statement anew. For a statement sent on every partner decision - the change-log
read (core.cache.versioned) and the audit INSERT (audit.services) - that parsing and planning is
a large part of the database's work (the INSERT of an audit event: about half). `prepared_cursor`
gives such a caller a cursor whose statements the server prepares once per connection (psycopg
names and remembers them; the parameters travel apart, bound by the server), wrapped like every
Django cursor (query logging, execute wrappers, database error mapping), so tests and
instrumentation see it as any other.

On by default; `DATABASE_PREPARED_STATEMENTS=false` (settings: `DATABASES["default"]["OPTIONS"]
["prepare_threshold"]` left None) turns it off - for a connection pooler that cannot carry
prepared statements between server connections (PgBouncer in transaction mode before 1.21).
Django's own queries are never prepared either way: client-side binding cannot be.
"""

from django.db.backends.base.base import BaseDatabaseWrapper


def _prepared_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor
    from psycopg.types.numeric import Int8Dumper

    class PreparedCursor(ServerBindingCursor):
        """Server-side binding; each statement prepared at its first execution on the connection.
        psycopg prepares a statement once per text and parameter types, and would type an int by
        its size (smallint, integer, bigint): every int goes as bigint, so a growing id does not
        prepare the statement again."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.adapters.register_dumper(int, Int8Dumper)

        def execute(self, query, params=None, *, prepare=None, **kwargs):
            return super().execute(query, params, prepare=True if prepare is None else prepare, **kwargs)

        def _convert_query(self, query, params=None):
            converted = super()._convert_query(query, params)
            # Django's query log reads the statement here; psycopg keeps it only for what it does not prepare
            self._query = converted
            return converted

    return PreparedCursor


_cursor_class = None


def prepared_cursor(db: BaseDatabaseWrapper):
    """A cursor of `db` whose statements are prepared on the server (PostgreSQL with
    prepared statements on), else `db.cursor()`. Use it like `db.cursor()`; pass it only
    statements with a fixed text (the parameters vary, not the SQL), or each text is prepared."""
    global _cursor_class
    if db.vendor != "postgresql" or db.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    if _cursor_class is None:
        _cursor_class = _prepared_cursor_class()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        cursor = _cursor_class(db.connection)
    return db.make_debug_cursor(cursor) if db.queries_logged else db.make_cursor(cursor)
