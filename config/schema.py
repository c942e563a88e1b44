"""The GraphQL schema: every app contributes its Query and Mutation classes."""

import graphene

from workflows.graphql.schema import Mutation as WorkflowsMutation
from workflows.graphql.schema import Query as WorkflowsQuery


class Query(WorkflowsQuery, graphene.ObjectType):
	"""Root query."""


class Mutation(WorkflowsMutation, graphene.ObjectType):
	"""Root mutation."""


schema = graphene.Schema(query=Query, mutation=Mutation)
