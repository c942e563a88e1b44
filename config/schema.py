"""The GraphQL schema: every app contributes its Query (and later Mutation) classes."""

import graphene

from workflows.graphql.schema import Query as WorkflowsQuery


class Query(WorkflowsQuery, graphene.ObjectType):
	"""Root query."""


schema = graphene.Schema(query=Query)
