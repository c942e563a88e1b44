"""The statements of a transition, written out instead of compiled by the ORM on every call.

A transition runs the same few statements every time: lock the run, write the step it
records and the steps and events it adds, write the run. Compiling them through the queryset machinery cost more CPU than
PostgreSQL spent executing them (0.4 to 1.3 ms each), so they are built once per shape,
cached, and given values prepared by the model fields themselves (the same conversion the
ORM applies), which keeps them correct on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from django.db import connections, models, router
from django.utils import timezone
from psycopg.pq import TransactionStatus

from workflows.models import Event, Run
from workflows.rows import model_rows

__all__ = ["Writes", "delete_rows", "lock_run", "step_ids", "store_event", "take_timer"]


@cache
def _lock_sql(vendor: str, table: str, columns: tuple[str, ...]) -> str:
	# NO KEY UPDATE: inserts of the run's steps and events (which reference it) are not blocked.
	lock = " FOR NO KEY UPDATE" if vendor == "postgresql" else ""
	return f"SELECT {', '.join(columns)} FROM {table} WHERE id = %s{lock}"  # noqa: S608 - names from model metadata


def lock_run(run_id: Any) -> Run:
	"""The run, its row locked until the end of the caller's transaction.

	Only the run's own row is read: its tenant is loaded if something asks for it.
	Raises :class:`Run.DoesNotExist` for an unknown id.
	"""
	connection = connections[router.db_for_write(Run)]
	assert connection.in_atomic_block, "a run is locked inside a transaction"
	rows = model_rows(connection, Run)
	with connection.cursor() as cursor:
		cursor.execute(
			_lock_sql(connection.vendor, rows.table, rows.columns),
			[rows.fields["id"].get_db_prep_value(run_id, connection)],
		)
		row = cursor.fetchone()
	if row is None:
		raise Run.DoesNotExist(f"no run {run_id}")
	return rows.load(connection, row)


@cache
def _update_sql(
	vendor: str, table: str, columns: tuple[str, ...], keep: frozenset[str], match: tuple[str, ...]
) -> str:
	del vendor  # part of the cache key: quoting differs between databases
	sets = ", ".join(
		f"{column} = COALESCE({column}, %s)" if column in keep else f"{column} = %s" for column in columns
	)
	where = " AND ".join(f"{column} = %s" for column in match)
	return f"UPDATE {table} SET {sets} WHERE {where}"  # noqa: S608 - names from model metadata


class Writes:
	"""The writes of one transition, sent together: one statement on PostgreSQL.

	On PostgreSQL the statements become the parts of one ``WITH ... SELECT 1`` (data-modifying
	parts of a ``WITH`` always run, once and to completion), so a transition's writes cost one
	round trip instead of one each; elsewhere they run one after another. They must not
	depend on each other's effects (within one statement none sees another's), and no row may
	be written twice.
	"""

	def __init__(self) -> None:
		self.connection = connections[router.db_for_write(Run)]
		self.statements: list[tuple[str, list[Any]]] = []

	def update(
		self,
		model: type[models.Model],
		pk: Any,
		values: dict[str, Any],
		*,
		keep: frozenset[str] = frozenset(),
	) -> None:
		"""``UPDATE`` one row by primary key; fields in ``keep`` are only filled in where still NULL."""
		self.update_matching(model, {"id": pk}, values, keep=keep)

	def update_matching(
		self,
		model: type[models.Model],
		match: dict[str, Any],
		values: dict[str, Any],
		*,
		keep: frozenset[str] = frozenset(),
	) -> None:
		"""``UPDATE`` the row whose fields equal ``match`` (a unique key: its id is not needed), as :meth:`update`."""
		connection = self.connection
		rows = model_rows(connection, model)
		fields, column = rows.fields, rows.column
		columns = tuple(column[name] for name in values)
		kept = frozenset(column[name] for name in keep)
		assert kept <= set(columns), "keep names fields that are not written"
		sql = _update_sql(connection.vendor, rows.table, columns, kept, tuple(column[name] for name in match))
		params = [fields[name].get_db_prep_save(value, connection) for name, value in values.items()]
		params.extend(fields[name].get_db_prep_value(value, connection) for name, value in match.items())
		self.statements.append((sql, params))

	def insert(self, model: type[models.Model], objs: list[Any], *, replace: tuple[str, ...] = ()) -> None:
		"""``INSERT`` new model instances (what ``bulk_create`` does, compiled once).

		Every concrete field is written, with its ``pre_save`` value (``auto_now``, defaults
		already set when the instance was made), as the ORM would. ``replace`` names the
		fields of a unique constraint: a row that has the same values in them is overwritten
		instead (keeping its id), which ``objs`` must not do twice.
		"""
		if not objs:
			return
		connection = self.connection
		rows_of = model_rows(connection, model)
		params: list[Any] = []
		for obj in objs:
			params.extend(_inserted(connection, obj))
		columns, table = rows_of.columns, rows_of.table
		conflict = tuple(rows_of.column[name] for name in replace)
		overwrite: tuple[str, ...] = ()
		if replace:  # every column but the conflict's and the primary key's is overwritten
			kept = {*conflict, rows_of.column[model._meta.pk.name]}
			overwrite = tuple(c for c in columns if c not in kept)
		per_statement = max(1, _max_params(connection) // len(columns))
		for first in range(0, len(objs), per_statement):
			rows = min(per_statement, len(objs) - first)
			sql = _insert_sql(connection.vendor, table, columns, rows, conflict, overwrite)
			self.statements.append((sql, params[first * len(columns) : (first + rows) * len(columns)]))

	def delete(self, model: type[models.Model], **equal: Any) -> None:
		"""``DELETE`` as :func:`delete_rows` does, with the other writes (no other part may write those rows)."""
		statement = _delete_sql(self.connection, model, equal)
		if statement is not None:
			self.statements.append(statement)

	def send(self, *, commit: bool = False) -> None:
		"""Execute what was collected (in the caller's transaction) and start over.

		``commit``: the caller's transaction ends here: on PostgreSQL the ``COMMIT`` goes in
		the same round trip as the last statement (``...; COMMIT``, one simple query: a failing
		statement skips it, and a ``COMMIT`` that fails, on a deferred constraint, raises here
		with everything rolled back). The caller must be the outermost ``atomic`` block and
		write nothing more: Django's own commit at its end then finds no transaction open and
		only runs the ``on_commit`` callbacks. Elsewhere Django commits as usual.
		"""
		statements, self.statements = self.statements, []
		connection = self.connection
		with connection.cursor() as cursor:
			if connection.vendor != "postgresql":
				for sql, params in statements:
					cursor.execute(sql, params)
				return
			assert not commit or len(connection.atomic_blocks) == 1, (
				"commit ends the outermost atomic block only"
			)
			limit = _max_params(connection)
			while statements:
				parts, params = [], []
				while statements and (not parts or len(params) + len(statements[0][1]) <= limit):
					sql, values = statements.pop(0)
					parts.append(f"w{len(parts)} AS ({sql})")
					params.extend(values)
				last = commit and not statements
				cursor.execute(f"WITH {', '.join(parts)} SELECT 1{'; COMMIT' if last else ''}", params)
		if commit:
			assert connection.connection.info.transaction_status == TransactionStatus.IDLE, "committed"


def _inserted(connection: Any, obj: models.Model) -> list[Any]:
	"""The parameters that insert ``obj`` (every concrete field, in order), which is then saved."""
	assert obj._state.adding, "insert writes new instances only"
	params = [
		field.get_db_prep_save(field.pre_save(obj, add=True), connection)
		for field in obj._meta.concrete_fields
	]
	obj._state.adding = False
	obj._state.db = connection.alias
	return params


def _max_params(connection: Any) -> int:
	# A statement takes at most 65,535 parameters on PostgreSQL, fewer on SQLite.
	return connection.features.max_query_params or 65_535


@lru_cache(maxsize=256)
def _insert_sql(
	vendor: str,
	table: str,
	columns: tuple[str, ...],
	rows: int,
	conflict: tuple[str, ...],
	overwrite: tuple[str, ...],
) -> str:
	del vendor  # part of the cache key: quoting differs between databases
	one = "(" + ", ".join(["%s"] * len(columns)) + ")"
	sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)  # noqa: S608 - names from model metadata
	if conflict:
		sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in overwrite)
		sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
	return sql


def step_ids(run_id: Any, keys: set[str]) -> list[tuple[Any, str, int]]:
	"""``(id, key, attempt)`` of the run's step rows with one of ``keys``, every attempt."""
	from workflows.models import StepRun

	connection = connections[router.db_for_write(StepRun)]
	rows = model_rows(connection, StepRun)
	fields, column = rows.fields, rows.column
	marks = ", ".join(["%s"] * len(keys))
	sql = (
		f"SELECT {column['id']}, {column['key']}, {column['attempt']} FROM {rows.table} "  # noqa: S608 - names from model metadata
		f"WHERE {column['run']} = %s AND {column['key']} IN ({marks})"
	)
	with connection.cursor() as cursor:
		cursor.execute(sql, [fields["run"].get_db_prep_value(run_id, connection), *sorted(keys)])
		return [(fields["id"].to_python(pk), key, attempt) for pk, key, attempt in cursor.fetchall()]


def delete_rows(model: type[models.Model], **equal: Any) -> int:
	"""``DELETE`` the rows whose fields equal ``equal`` (``field__in`` for a list, ``field__lte``), now; how many.

	For models nothing cascades from and no signal watches (timers, subscriptions): the
	ORM's ``delete()`` would first collect what depends on the rows, a query and much Python
	for nothing.
	"""
	connection = connections[router.db_for_write(model)]
	statement = _delete_sql(connection, model, equal)
	if statement is None:
		return 0
	with connection.cursor() as cursor:
		cursor.execute(*statement)
		return cursor.rowcount


def _delete_sql(
	connection: Any, model: type[models.Model], equal: dict[str, Any]
) -> tuple[str, list[Any]] | None:
	"""The ``DELETE`` of :func:`delete_rows` and its parameters; None when an ``__in`` list is empty."""
	rows = model_rows(connection, model)
	fields, column = rows.fields, rows.column
	where: list[str] = []
	params: list[Any] = []
	for name, value in equal.items():
		field_name, _, lookup = name.partition("__")
		field = fields[field_name]
		if lookup == "in":
			if not value:
				return None
			where.append(f"{column[field_name]} IN ({', '.join(['%s'] * len(value))})")
			params.extend(field.get_db_prep_value(item, connection) for item in value)
		else:
			assert lookup in ("", "lte"), f"only equality, __lte and __in: {name}"
			where.append(f"{column[field_name]} {'<=' if lookup else '='} %s")
			params.append(field.get_db_prep_value(value, connection))
	assert where, "delete_rows deletes by condition only"
	return f"DELETE FROM {rows.table} WHERE {' AND '.join(where)}", params  # noqa: S608 - names from model metadata


def take_timer(run_id: Any, key: str, purpose: str, *, due_by: Any) -> bool:
	"""Delete the run's timer for ``key`` and ``purpose`` if it is due by ``due_by``; True if this call took it.

	One statement claims the timer: of two callers (a countdown task and the sweep), the
	second waits for the first's transaction and then finds nothing to delete.
	"""
	from workflows.models import Timer

	return delete_rows(Timer, run=run_id, key=key, purpose=purpose, fire_at__lte=due_by) > 0


def take_due_timer(now: Any) -> tuple[Any, str, str] | None:
	"""Delete the timer due first (by ``now``); ``(run id, key, purpose)`` of it, or None.

	One statement. On PostgreSQL a timer another sweeper or a countdown task is taking
	(locked) is skipped, as ``select_for_update(skip_locked=True)`` would.
	"""
	from workflows.models import Timer

	connection = connections[router.db_for_write(Timer)]
	rows = model_rows(connection, Timer)
	fields, column, table = rows.fields, rows.column, rows.table
	lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
	first = f"SELECT {column['id']} FROM {table} WHERE {column['fire_at']} <= %s ORDER BY {column['fire_at']} LIMIT 1{lock}"  # noqa: S608 - names from model metadata
	sql = f"DELETE FROM {table} WHERE {column['id']} = ({first}) RETURNING {column['run']}, {column['key']}, {column['purpose']}"  # noqa: S608 - names from model metadata
	with connection.cursor() as cursor:
		cursor.execute(sql, [fields["fire_at"].get_db_prep_value(now, connection)])
		found = cursor.fetchone()
	return None if found is None else (fields["id"].to_python(found[0]), found[1], found[2])


def store_event(event: Event) -> list[tuple[Any, Any, str]]:
	"""Insert a new ``event`` and take the subscriptions waiting for it; ``(id, run id, step key)`` of each.

	The tenant's subscriptions of the event's type and correlation are deleted; the event is
	stored with how many there were (``delivered``) and, if any, ``consumed_at`` (now); its
	instance is updated to match. One statement on PostgreSQL, where a subscription another
	publisher is taking (locked) is skipped, as ``select_for_update(skip_locked=True)`` would:
	that publisher delivers it.
	"""
	from workflows.models import EventSubscription

	connection = connections[router.db_for_write(EventSubscription)]
	rows = model_rows(connection, EventSubscription)
	fields, column, table = rows.fields, rows.column, rows.table
	match = f"{column['tenant']} = %s AND {column['event_type']} = %s AND {column['correlation']} = %s"
	params = [fields["tenant"].get_db_prep_value(event.tenant_id, connection), event.type, event.correlation]
	returning = f"RETURNING {column['id']}, {column['run']}, {column['key']}"
	now = timezone.now()
	if connection.vendor == "postgresql":
		taking = f"SELECT {column['id']} FROM {table} WHERE {match} FOR UPDATE SKIP LOCKED"  # noqa: S608 - names from model metadata
		take = f"DELETE FROM {table} WHERE {column['id']} IN ({taking}) {returning}"  # noqa: S608 - names from model metadata
		events = model_rows(connection, Event)
		consumed = events.fields["consumed_at"]
		store = _store_event_sql(
			events.table,
			events.columns,
			events.column["delivered"],
			events.column["consumed_at"],
			consumed.db_type(connection),
		)
		event.consumed_at = now  # kept by the statement if it took a subscription
		stored = _inserted(connection, event)
		del stored[events.columns.index(events.column["delivered"])]  # counted by the statement
		with connection.cursor() as cursor:
			statement = f"WITH taken AS ({take}), stored AS ({store}) SELECT * FROM taken"  # noqa: S608 - names from model metadata
			cursor.execute(statement, params + stored)
			found = cursor.fetchall()
		event.delivered, event.consumed_at = len(found), now if found else None
	else:
		with connection.cursor() as cursor:
			cursor.execute(f"DELETE FROM {table} WHERE {match} {returning}", params)  # noqa: S608 - names from model metadata
			found = cursor.fetchall()
		event.delivered, event.consumed_at = len(found), now if found else None
		writes = Writes()
		writes.insert(Event, [event])
		writes.send()
	to_uuid = fields["id"].to_python
	return [(to_uuid(pk), to_uuid(run_id), key) for pk, run_id, key in found]


@cache
def _store_event_sql(
	table: str, columns: tuple[str, ...], delivered: str, consumed: str, consumed_type: str
) -> str:
	"""The ``INSERT`` of :func:`store_event`: ``delivered`` and ``consumed_at`` follow what ``taken`` took."""
	values = [
		"(SELECT count(*) FROM taken)"
		if column == delivered
		else f"CASE WHEN EXISTS (SELECT 1 FROM taken) THEN CAST(%s AS {consumed_type}) END"  # noqa: S608 - a type from model metadata
		if column == consumed
		else "%s"
		for column in columns
	]
	return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})"  # noqa: S608 - names from model metadata
