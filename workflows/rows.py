"""Raw SQL for a model, and model instances from its rows, as the ORM would make them.

The engine's transition statements and the API token lookup are written out by hand because
compiling them through the queryset machinery cost more CPU than the database spent running
them. What they need from a model is worked out here once per model and database backend:
the quoted table and column names for the statement, and per column the converters that turn
a database value into the Python one (the backend's, then the field's: what
``SQLCompiler.get_converters()`` applies), so an instance made from a raw row is the one the
ORM would have made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["ModelRows", "cache_long_statements", "first_of_tenant", "model_rows", "values_of_tenant"]


@dataclass(frozen=True, slots=True)
class ModelRows:
	"""One model's statement parts and row loader on one database backend."""

	model: type[models.Model]
	table: str
	"""The quoted table name."""
	fields: dict[str, models.Field[Any, Any]]
	"""Every concrete field, by name and by attname."""
	column: dict[str, str]
	"""Every concrete field's quoted column, by name and by attname."""
	columns: tuple[str, ...]
	"""The quoted columns a row holds, in order (every concrete field, or the chosen ones)."""
	attnames: tuple[str, ...]
	converters: tuple[tuple[tuple[Callable[..., Any], Any], ...], ...]

	def load(self, db: BaseDatabaseWrapper, values: Sequence[Any]) -> Any:
		"""The model instance for a row (or a slice of one) holding :attr:`columns`."""
		assert len(values) == len(self.columns), "a row holds the loader's columns"
		converted = []
		for value, column_converters in zip(values, self.converters, strict=True):
			for converter, expression in column_converters:
				value = converter(value, expression, db)
			converted.append(value)
		return self.model.from_db(db.alias, list(self.attnames), converted)

	def load_value(self, db: BaseDatabaseWrapper, value: Any) -> Any:
		"""The Python value of a one-column loader's column."""
		(column_converters,) = self.converters
		for converter, expression in column_converters:
			value = converter(value, expression, db)
		return value


_ROWS: dict[tuple[str, type[models.Model], tuple[str, ...] | None], ModelRows] = {}


def model_rows(
	db: BaseDatabaseWrapper, model: type[models.Model], names: tuple[str, ...] | None = None
) -> ModelRows:
	"""What raw SQL needs of ``model`` on ``db``'s backend; rows hold ``names`` (default: every concrete field)."""
	key = (db.vendor, model, names)
	rows = _ROWS.get(key)
	if rows is None:
		rows = _ROWS[key] = _build(db, model, names)
	return rows


def _build(db: BaseDatabaseWrapper, model: type[models.Model], names: tuple[str, ...] | None) -> ModelRows:
	quote = db.ops.quote_name
	fields: dict[str, models.Field[Any, Any]] = {}
	column: dict[str, str] = {}
	chosen: list[models.Field[Any, Any]] = []
	for field in model._meta.concrete_fields:
		assert isinstance(field, models.Field)
		assert field.column is not None, f"{field} has no column"
		fields[field.name] = fields[field.attname] = field
		column[field.name] = column[field.attname] = quote(field.column)
		if names is None or field.name in names:
			chosen.append(field)
	assert names is None or len(chosen) == len(names), f"{model.__name__} lacks one of {names}"
	converters = []
	for field in chosen:
		expression = field.get_col(model._meta.db_table)
		found = [*db.ops.get_db_converters(expression), *expression.get_db_converters(db)]
		converters.append(tuple((converter, expression) for converter in found))
	return ModelRows(
		model=model,
		table=quote(model._meta.db_table),
		fields=fields,
		column=column,
		columns=tuple(column[f.name] for f in chosen),
		attnames=tuple(f.attname for f in chosen),
		converters=tuple(converters),
	)


# --- lookups of one tenant's rows -----------------------------------------------------------------
# What ``Model.objects.for_tenant(tenant).filter(a=x, b=y)`` with ``.first()`` or
# ``.values_list(name)`` reads, written out once per shape: on the paths every run start and
# permission check takes, the queryset machinery cost several times the query itself in
# Python (about 0.6 ms a lookup). Soft-deleted rows are left out as ``for_tenant`` leaves them.


def first_of_tenant(
	model: type[models.Model],
	tenant_id: Any,
	equal: dict[str, Any],
	*,
	order_by: str = "id",
	names: tuple[str, ...] | None = None,
) -> Any:
	"""The first of the tenant's live rows whose fields equal ``equal`` (``order_by``, ``-name`` descending), or None.

	``names``: the fields loaded (the others are deferred, as ``only()`` would).
	"""
	_check_bound(tenant_id)
	db = connections[router.db_for_read(model)]
	rows = model_rows(db, model, names)
	with db.cursor() as cursor:
		cursor.execute(
			_select_sql(db, model, names, tuple(equal), order_by, 1), _params(db, model, tenant_id, equal)
		)
		row = cursor.fetchone()
	return None if row is None else rows.load(db, row)


def values_of_tenant(
	model: type[models.Model], tenant_id: Any, name: str, equal: dict[str, Any] | None = None
) -> list[Any]:
	"""One field of the tenant's live rows whose fields equal ``equal``, in no particular order."""
	_check_bound(tenant_id)
	db = connections[router.db_for_read(model)]
	rows = model_rows(db, model, (name,))
	equal = equal or {}
	with db.cursor() as cursor:
		cursor.execute(
			_select_sql(db, model, (name,), tuple(equal), None, None), _params(db, model, tenant_id, equal)
		)
		return [rows.load_value(db, row[0]) for row in cursor.fetchall()]


def _check_bound(tenant_id: Any) -> None:
	from workflows.context import _Unscoped, bound_tenant

	bound = bound_tenant()
	assert bound is None or isinstance(bound, _Unscoped) or str(bound.pk) == str(tenant_id), (
		"a lookup of another tenant than the one bound to this context"
	)


def _params(
	db: BaseDatabaseWrapper, model: type[models.Model], tenant_id: Any, equal: dict[str, Any]
) -> list[Any]:
	fields = model_rows(db, model).fields
	return [
		fields["tenant"].get_db_prep_value(tenant_id, db),
		*(fields[name].get_db_prep_value(value, db) for name, value in equal.items()),
	]


_SELECT_SQL: dict[tuple[Any, ...], str] = {}


def _select_sql(
	db: BaseDatabaseWrapper,
	model: type[models.Model],
	names: tuple[str, ...] | None,
	equal: tuple[str, ...],
	order_by: str | None,
	limit: int | None,
) -> str:
	key = (db.vendor, model, names, equal, order_by, limit)
	sql = _SELECT_SQL.get(key)
	if sql is None:
		everything, chosen = model_rows(db, model), model_rows(db, model, names)
		column = everything.column
		where = [f"{column['tenant']} = %s", *(f"{column[name]} = %s" for name in equal)]
		if "deleted_at" in everything.fields:  # soft-deleted rows are hidden, as for_tenant() hides them
			where.append(f"{column['deleted_at']} IS NULL")
		# Identifiers only, quoted, from the model's metadata; every value is a parameter.
		sql = f"SELECT {', '.join(chosen.columns)} FROM {everything.table} WHERE {' AND '.join(where)}"  # noqa: S608
		if order_by is not None:
			direction = " DESC" if order_by.startswith("-") else " ASC"
			sql += f" ORDER BY {column[order_by.removeprefix('-')]}{direction}"
		if limit is not None:
			sql += f" LIMIT {int(limit)}"
		_SELECT_SQL[key] = sql
	return sql


# psycopg turns a query's %s placeholders into its own template with a regular expression
# over the whole text, and caches the result only for queries of at most 4 kB and 50
# parameters. A transition's writes (one statement: the step rows, the run's events, the
# run) have 60 to 200 parameters, so psycopg parsed that statement anew every time: about
# 0.5 ms of CPU per step, a quarter of what a step costs. The statements here are few and
# built once per shape, so caching them is cheap.
PSYCOPG_CACHED_STATEMENT_LENGTH = 64 * 1024
PSYCOPG_CACHED_STATEMENT_PARAMS = 4096


def cache_long_statements() -> bool:
	"""Let psycopg cache its parse of the engine's long statements; False if this psycopg has no such limits."""
	try:
		from psycopg import _queries
	except ImportError:  # pragma: no cover - psycopg is a dependency
		return False
	if not hasattr(_queries, "MAX_CACHED_STATEMENT_LENGTH") or not hasattr(
		_queries, "MAX_CACHED_STATEMENT_PARAMS"
	):  # pragma: no cover - a psycopg that changed its internals; tests/engine/test_sql.py notices
		return False
	_queries.MAX_CACHED_STATEMENT_LENGTH = max(
		_queries.MAX_CACHED_STATEMENT_LENGTH, PSYCOPG_CACHED_STATEMENT_LENGTH
	)
	_queries.MAX_CACHED_STATEMENT_PARAMS = max(
		_queries.MAX_CACHED_STATEMENT_PARAMS, PSYCOPG_CACHED_STATEMENT_PARAMS
	)
	return True
