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

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["ModelRows", "cache_long_statements", "model_rows"]


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
