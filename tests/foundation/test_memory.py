"""Server and worker processes keep their start-up objects out of the collector's full passes."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from celery import signals

from config.memory import freeze_startup_objects


@pytest.fixture
def unfreeze() -> Iterator[None]:
	yield
	gc.unfreeze()


@pytest.mark.usefixtures("unfreeze")
def test_objects_alive_at_start_up_are_no_longer_walked_by_the_collector() -> None:
	startup = [[index] for index in range(1000)]

	frozen = freeze_startup_objects()
	later = [["later"]]

	tracked = {id(o) for o in gc.get_objects()}
	assert frozen >= len(startup)
	assert not any(id(item) in tracked for item in startup)
	assert id(later) in tracked


@pytest.mark.usefixtures("unfreeze")
def test_a_celery_worker_freezes_its_start_up_objects_before_its_pool_forks() -> None:
	from config.celery import _freeze_startup_objects

	gc.unfreeze()
	listening = [ref() for _, ref in signals.worker_init.receivers]

	_freeze_startup_objects()

	assert _freeze_startup_objects in listening
	assert gc.get_freeze_count() > 0


def test_the_asgi_application_freezes_what_loading_it_made() -> None:
	env = {**os.environ, "EMBEDDED_WORKER": "false", "DJANGO_SETTINGS_MODULE": "config.settings"}
	code = "import gc, config.asgi; print(gc.get_freeze_count())"

	done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)  # noqa: S603

	assert done.returncode == 0, done.stderr
	# Django, the REST framework, GraphQL and every view: well over 100,000 objects.
	assert int(done.stdout.strip().splitlines()[-1]) > 100_000
