"""The ASGI handler for HTTP: Django's, with each request's middleware and view in one thread call.

Django's ASGI handler builds its middleware chain in async mode: every middleware that is
async-capable (the ``MiddlewareMixin`` ones: messages, clickjacking; simple-history's) runs
in the event loop and calls its ``process_request`` / ``process_response`` through a thread,
the first sync-only one switches back with ``async_to_sync``, and ``process_view`` hooks and
sync views each get a thread hop of their own: about ten switches between the event loop and
a worker thread per request, each costing CPU (asgiref's executors, futures, context copies).
Every view, middleware and hook of this project is synchronous, so here the whole chain is
built in sync mode, as under WSGI, and runs in one worker-thread call: Django's own ASGI
request handling (body reading, disconnects, the request signals, streaming) is unchanged.
An async view would still work (Django runs it with ``async_to_sync``), only at the cost of
the switches this avoids.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers import asgi, base
from django.http import HttpRequest, HttpResponseBase

__all__ = ["ASGIHandler"]


class ASGIHandler(asgi.ASGIHandler):
	"""``django.core.handlers.asgi.ASGIHandler`` with a synchronous middleware chain."""

	def __init__(self) -> None:
		# Not ASGIHandler.__init__, which would build the chain in async mode first.
		base.BaseHandler.__init__(self)
		self.load_middleware(is_async=False)

	async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
		"""The response, from the synchronous chain in this request's worker thread.

		Thread-sensitive, as Django runs sync views under ASGI: each request (a
		``ThreadSensitiveContext`` of its own) keeps one thread, so its database connection
		is used from one thread only.
		"""
		return await sync_to_async(self.get_response, thread_sensitive=True)(request)
