"""Query budgets checked on the parsed document, before anything executes.

One validation rule measures each operation once and refuses it when it is too deep, too
expensive, names too many aliases or asks for too many root fields. The figures:

* **depth**: the longest chain of nested fields (``runs { edges { node { id } } }`` is 4).
* **complexity**: every field costs 1, and what is below a field is paid once per item it may
  return: ``first`` items for a paginated field (its value, from the request's variables when
  it is one, else its default; at most the page size limit), an estimate for an unbounded
  list (``steps``), one for anything else. ``edges`` of a connection is paid for by the
  connection's ``first``. Introspection (``__schema``, ``__type``, ``__typename``) is free, so
  GraphiQL works under any budget.

The limits are settings (``GRAPHQL_MAX_*`` in ``config/settings/base.py``) read per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from graphql import (
	FieldNode,
	FragmentSpreadNode,
	GraphQLError,
	GraphQLList,
	GraphQLNamedType,
	GraphQLObjectType,
	GraphQLSchema,
	InlineFragmentNode,
	IntValueNode,
	OperationDefinitionNode,
	OperationType,
	SelectionSetNode,
	ValidationContext,
	ValidationRule,
	VariableNode,
	get_named_type,
	get_nullable_type,
)

__all__ = ["UNBOUNDED_LIST_ESTIMATE", "Budget", "QueryFigures", "budget_rule", "measure"]

UNBOUNDED_LIST_ESTIMATE = 10
"""Items assumed for a list field without ``first`` (a run's steps, a step's attempts)."""


@dataclass(frozen=True, slots=True)
class Budget:
	"""The limits one request runs under."""

	max_depth: int
	max_complexity: int
	max_aliases: int
	max_root_fields: int
	max_page_size: int

	@classmethod
	def from_settings(cls) -> Budget:
		"""The limits configured in settings."""
		return cls(
			max_depth=settings.GRAPHQL_MAX_DEPTH,
			max_complexity=settings.GRAPHQL_MAX_COMPLEXITY,
			max_aliases=settings.GRAPHQL_MAX_ALIASES,
			max_root_fields=settings.GRAPHQL_MAX_ROOT_FIELDS,
			max_page_size=settings.GRAPHQL_MAX_PAGE_SIZE,
		)


@dataclass(frozen=True, slots=True)
class QueryFigures:
	"""What one operation would cost."""

	depth: int
	complexity: int
	aliases: int
	root_fields: int


@dataclass(frozen=True, slots=True)
class _Figures:
	depth: int = 0
	cost: int = 0
	aliases: int = 0

	def beside(self, other: _Figures) -> _Figures:
		"""Two selections side by side: the deeper one, both costs and aliases."""
		return _Figures(max(self.depth, other.depth), self.cost + other.cost, self.aliases + other.aliases)


class _Measure:
	"""Walks one operation's selections, following fragments, with the schema's field types."""

	def __init__(self, context: ValidationContext, variables: Mapping[str, Any], max_page_size: int) -> None:
		self.context = context
		self.schema: GraphQLSchema = context.schema
		self.variables = variables
		self.max_page_size = max_page_size
		# A fragment costs the same wherever it is spread: measured once, so fragments that
		# spread each other many times cannot make the measuring itself expensive.
		self.fragments: dict[str, _Figures] = {}

	def selection(
		self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None, seen: frozenset[str]
	) -> _Figures:
		"""The figures of a selection set: fields, inline fragments and fragment spreads."""
		total = _Figures()
		for selection in selection_set.selections if selection_set is not None else ():
			if isinstance(selection, FieldNode):
				total = total.beside(self.field(selection, parent, seen))
			elif isinstance(selection, InlineFragmentNode):
				condition = selection.type_condition
				inner = self.schema.get_type(condition.name.value) if condition else parent
				total = total.beside(self.selection(selection.selection_set, inner, seen))
			else:  # the third kind of selection: a fragment spread
				total = total.beside(self.spread(cast(FragmentSpreadNode, selection).name.value, seen))
		return total

	def spread(self, name: str, seen: frozenset[str]) -> _Figures:
		"""The figures of a named fragment (nothing for an unknown one or a cycle, which other rules report)."""
		fragment = self.context.get_fragment(name)
		if fragment is None or name in seen:
			return _Figures()
		if name not in self.fragments:
			inner = self.schema.get_type(fragment.type_condition.name.value)
			self.fragments[name] = self.selection(fragment.selection_set, inner, seen | {name})
		return self.fragments[name]

	def field(self, node: FieldNode, parent: GraphQLNamedType | None, seen: frozenset[str]) -> _Figures:
		"""The figures of one field and what is below it."""
		name = node.name.value
		if name.startswith("__"):
			return _Figures()
		definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
		factor = 1
		if definition is not None:
			if "first" in definition.args:
				factor = self._first(node, definition.args["first"].default_value)
			elif isinstance(get_nullable_type(definition.type), GraphQLList) and not (
				name == "edges" and parent is not None and parent.name.endswith("Connection")
			):
				factor = UNBOUNDED_LIST_ESTIMATE
		child_type = get_named_type(definition.type) if definition is not None else None
		below = self.selection(node.selection_set, child_type, seen)
		return _Figures(
			depth=1 + below.depth,
			cost=1 + factor * below.cost,
			aliases=below.aliases + (node.alias is not None),
		)

	def _first(self, node: FieldNode, default: Any) -> int:
		for argument in node.arguments or ():
			if argument.name.value != "first":
				continue
			value = argument.value
			if isinstance(value, IntValueNode):
				return self._clamp(int(value.value))
			if isinstance(value, VariableNode):
				sent = self.variables.get(value.name.value)
				if isinstance(sent, int) and not isinstance(sent, bool):
					return self._clamp(sent)
			# Null, or a variable not sent: the page is the argument's default when it executes.
			break
		return self._clamp(default if isinstance(default, int) else self.max_page_size)

	def _clamp(self, value: int) -> int:
		# A page larger than the limit is refused when it executes, with that message.
		return max(0, min(value, self.max_page_size))

	def root_fields(self, selection_set: SelectionSetNode, seen: frozenset[str] = frozenset()) -> int:
		"""How many top-level fields an operation asks for, fragments expanded."""
		count = 0
		for selection in selection_set.selections:
			if isinstance(selection, FieldNode):
				count += not selection.name.value.startswith("__")
			elif isinstance(selection, InlineFragmentNode):
				count += self.root_fields(selection.selection_set, seen)
			else:
				fragment = self.context.get_fragment(cast(FragmentSpreadNode, selection).name.value)
				if fragment is not None and fragment.name.value not in seen:
					count += self.root_fields(fragment.selection_set, seen | {fragment.name.value})
		return count


def measure(
	context: ValidationContext,
	operation: OperationDefinitionNode,
	*,
	variables: Mapping[str, Any] | None = None,
	max_page_size: int = 100,
) -> QueryFigures:
	"""Depth, complexity, aliases and root fields of ``operation``."""
	# Variables the request left out take their defaults from the operation.
	defaults = {
		definition.variable.name.value: int(definition.default_value.value)
		for definition in operation.variable_definitions or ()
		if isinstance(definition.default_value, IntValueNode)
	}
	walker = _Measure(context, {**defaults, **(variables or {})}, max_page_size)
	root = {
		OperationType.QUERY: context.schema.query_type,
		OperationType.MUTATION: context.schema.mutation_type,
		OperationType.SUBSCRIPTION: context.schema.subscription_type,
	}[operation.operation]
	figures = walker.selection(operation.selection_set, root, frozenset())
	return QueryFigures(
		depth=figures.depth,
		complexity=figures.cost,
		aliases=figures.aliases,
		root_fields=walker.root_fields(operation.selection_set),
	)


def _refusal(code: str, message: str, node: OperationDefinitionNode, limit: int, actual: int) -> GraphQLError:
	return GraphQLError(message, node, extensions={"code": code, "limit": limit, "actual": actual})


def budget_rule(budget: Budget, variables: Mapping[str, Any] | None = None) -> type[ValidationRule]:
	"""A validation rule refusing operations over ``budget`` (``variables`` give ``first`` values)."""

	class QueryBudgetRule(ValidationRule):
		"""Refuse an operation over the request's depth, complexity, alias or root field budget."""

		def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
			figures = measure(self.context, node, variables=variables, max_page_size=budget.max_page_size)
			name = f"Operation {node.name.value!r}" if node.name else "The operation"
			if figures.depth > budget.max_depth:
				self.report_error(
					_refusal(
						"QUERY_TOO_DEEP",
						f"{name} is {figures.depth} levels deep; the limit (GRAPHQL_MAX_DEPTH) is "
						f"{budget.max_depth}. Ask for fewer nested fields, or fetch the inner objects "
						"in a second query.",
						node,
						budget.max_depth,
						figures.depth,
					)
				)
			if figures.complexity > budget.max_complexity:
				self.report_error(
					_refusal(
						"QUERY_TOO_COMPLEX",
						f"{name} has a complexity of {figures.complexity}; the limit "
						f"(GRAPHQL_MAX_COMPLEXITY) is {budget.max_complexity}. Ask for smaller pages "
						"(first) or fewer nested lists and fields.",
						node,
						budget.max_complexity,
						figures.complexity,
					)
				)
			if figures.aliases > budget.max_aliases:
				self.report_error(
					_refusal(
						"TOO_MANY_ALIASES",
						f"{name} uses {figures.aliases} aliases; the limit (GRAPHQL_MAX_ALIASES) is "
						f"{budget.max_aliases}. Split it into several requests.",
						node,
						budget.max_aliases,
						figures.aliases,
					)
				)
			if figures.root_fields > budget.max_root_fields:
				self.report_error(
					_refusal(
						"TOO_MANY_ROOT_FIELDS",
						f"{name} asks for {figures.root_fields} top-level fields; the limit "
						f"(GRAPHQL_MAX_ROOT_FIELDS) is {budget.max_root_fields}. Split it into several "
						"requests.",
						node,
						budget.max_root_fields,
						figures.root_fields,
					)
				)

	return QueryBudgetRule
