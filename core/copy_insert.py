"""`copy_create`: `bulk_create` through PostgreSQL's COPY, for the bulk writers (master-data
imports, the audit events and admin history entries of many rows at once); `copy_values`: the
same for rows whose ids nobody needs back, given as plain values instead of model instances.

Django's `bulk_create` on PostgreSQL sends each column as an array parameter (`INSERT ... SELECT
* FROM UNNEST(...)`), and psycopg builds every array's text in Python element by element; for a
table written ten thousand rows at a time that is most of the write's cost. COPY streams the
rows instead: each value goes through the same field methods as `bulk_create`'s (`pre_save`
with add=True - so encrypted fields encrypt, bound to the row's key -, then
`get_db_prep_save`; a plain text, number, date or id of a plain field goes as it is, which is
what those methods would give), and the database runs the same constraints, indexes and triggers as for an
INSERT (row triggers fire for COPY too; deferred ones at commit).

Integer primary keys are taken from the table's sequence first (one query), so every object
has its id, as `bulk_create` gives it. Other databases (SQLite in the quick test mode) get
`bulk_create`.

`copy_values` skips the model instances (a Django model's construction costs more than its COPY
for a narrow row written by the hundred thousand: search digests, audit events, history
entries): the caller gives each row's values for some fields, already what the database takes;
every other column gets its field's default, computed once per call, or the database's own
(the id).
"""

import datetime
import uuid
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connections, models

_AUTO = (models.AutoField, models.BigAutoField, models.SmallAutoField)
# Fields whose `pre_save` returns the attribute and whose `get_db_prep_save` hands a value of
# one of _PLAIN_VALUES to the driver unchanged (PostgreSQL): the value goes as it is.
_PLAIN_FIELDS = frozenset({
    models.AutoField, models.BigAutoField, models.SmallAutoField, models.CharField, models.TextField,
    models.SlugField, models.EmailField, models.IntegerField, models.BigIntegerField, models.SmallIntegerField,
    models.PositiveIntegerField, models.PositiveBigIntegerField, models.PositiveSmallIntegerField,
    models.BooleanField, models.UUIDField, models.DateField, models.DateTimeField, models.ForeignKey,
    models.OneToOneField,
})
_PLAIN_VALUES = frozenset({str, int, bool, type(None), uuid.UUID, datetime.date, datetime.datetime})


def _columns(model) -> list:
    return [field for field in model._meta.concrete_fields if not getattr(field, "generated", False)]


def _plain(field) -> bool:
    if type(field) not in _PLAIN_FIELDS or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return False
    return not field.is_relation or _plain(field.target_field)


def _values(obj, plan: list, db) -> list:
    values = []
    for field, plain in plan:
        if plain:
            value = getattr(obj, field.attname)
            if type(value) in _PLAIN_VALUES:
                values.append(value)
                continue
        values.append(field.get_db_prep_save(field.pre_save(obj, True), db))
    return values


def _copy(cursor, db, model, fields: list, rows) -> int:
    """COPY `rows` (lists of database values, in the order of `fields`) into `model`'s table;
    database errors raised as Django's (IntegrityError etc., as for an INSERT). Returns the count."""
    names = ", ".join(db.ops.quote_name(field.column) for field in fields)
    count = 0
    with db.wrap_database_errors, cursor.cursor.copy(
        f"COPY {db.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def copy_create(objects: Sequence[models.Model], *, using: str = DEFAULT_DB_ALIAS) -> list:
    """Insert `objects` (unsaved instances of one model) with COPY; set each one's primary key
    and saved state, as `bulk_create` does. Call inside the caller's transaction. Returns them."""
    objects = list(objects)
    if not objects:
        return objects
    model = type(objects[0])
    db = connections[using]
    if db.vendor != "postgresql":
        return model._default_manager.using(using).bulk_create(objects, batch_size=1000)
    meta = model._meta
    pk = meta.pk
    fields = _columns(model)
    plan = [(field, _plain(field)) for field in fields]
    with db.cursor() as cursor:
        if isinstance(pk, _AUTO):
            missing = [obj for obj in objects if obj.pk is None]
            if missing:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [db.ops.quote_name(meta.db_table), pk.column, len(missing)],
                )
                for obj, (value,) in zip(missing, cursor.fetchall(), strict=True):
                    obj.pk = value
        _copy(cursor, db, model, fields, (_values(obj, plan, db) for obj in objects))
    for obj in objects:
        obj._state.adding = False
        obj._state.db = using
    return objects


def copy_values(model, *, fields: Sequence[str], rows, using: str = DEFAULT_DB_ALIAS) -> int:
    """Insert `rows` (sequences of values for the fields named by `fields` - attnames, in that
    order - as the model's attributes would hold them) into `model`'s table with COPY, each value
    through the field's `get_db_prep_save` unless it is plain (as in `copy_create`). The primary
    key comes from the database; every other field takes its default, computed once per call.
    Call inside the caller's transaction. Returns the number of rows."""
    meta = model._meta
    given = [meta.get_field(name) for name in fields]
    rest = [field for field in _columns(model) if field not in given and not field.primary_key]
    defaults = [field.get_default() for field in rest]
    db = connections[using]
    if db.vendor != "postgresql":
        names = [field.attname for field in given + rest]
        objects = [model(**dict(zip(names, [*row, *defaults], strict=True))) for row in rows]
        model._default_manager.using(using).bulk_create(objects, batch_size=1000)
        return len(objects)
    plan = [(field, _plain(field)) for field in given]
    prepared = [field.get_db_prep_save(value, db) for field, value in zip(rest, defaults, strict=True)]
    with db.cursor() as cursor:
        return _copy(cursor, db, model, given + rest, (
            [value if plain and type(value) in _PLAIN_VALUES else field.get_db_prep_save(value, db)
             for (field, plain), value in zip(plan, row, strict=True)] + prepared
            for row in rows
        ))
