"""Cron schedules: parsing, fire times in a time zone across DST changes, and missed-fire policies.

Pure computation (no database): the firing and management services build on it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from django.utils.timezone import now as utc_now

from workflows.errors import FieldError, ValidationFailed
from workflows.models import MissedFirePolicy

__all__ = [
	"CRON_MAX_CATCH_UP",
	"CRON_MISFIRE_GRACE",
	"CronPlan",
	"CronSchedule",
	"cron_plan",
	"cron_preview",
	"cron_schedule",
]

# Beat sweeps every 5 s, so an on-time occurrence is a few seconds late; one later than
# this was missed (the beat or the workers were down) and its policy decides.
CRON_MISFIRE_GRACE: Final = timedelta(minutes=1)
# fire_all after a long outage fires the most recent occurrences only, never thousands.
CRON_MAX_CATCH_UP: Final = 100

_CRON_MACROS = {
	"@yearly": "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0",
	"@daily": "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly": "0 * * * *",
}
_CRON_HINT = (
	"Five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), "
	'day of week (0-6 or SUN-SAT), with *, lists (1,15), ranges (1-5) and steps (*/10); e.g. "0 9 * * 1-5".'
)


@dataclass(frozen=True, slots=True)
class CronSchedule:
	"""A validated five-field cron expression in a time zone."""

	fields: str
	zone: ZoneInfo

	@property
	def hourly(self) -> bool:
		"""Whether the hour field is a wildcard (``*``, ``*/2``): such schedules run in both repeated hours."""
		# As in Vixie cron: a schedule that names its hours ("30 2 * * *") fires once when the
		# clocks go back and 02:30 happens twice; one whose hour field is a wildcard
		# ("30 * * * *") keeps its rhythm and fires in both hours.
		return self.fields.split()[1].startswith("*")

	def _repeated(self, moment: datetime) -> bool:
		wall = moment.replace(tzinfo=None)
		earlier, later = wall.replace(tzinfo=self.zone, fold=0), wall.replace(tzinfo=self.zone, fold=1)
		return earlier.utcoffset() != later.utcoffset() and moment.utcoffset() == later.utcoffset()

	def occurrences(self, start: datetime, *, backwards: bool = False) -> Iterator[datetime]:
		"""Fire times (UTC) strictly after ``start``, or strictly before it going back.

		A wall-clock time skipped when the clocks go forward fires at the jump (02:30 on
		that night fires at 03:00) for schedules that name their hours; hourly ones just
		skip it. Comparisons are made in UTC: two aware datetimes sharing one ZoneInfo
		compare by wall time, so both 02:30s of a fall-back night would look equal.
		"""
		it = croniter(self.fields, start.astimezone(self.zone))
		step = it.get_prev if backwards else it.get_next
		while True:
			moment: datetime = step(datetime)
			if self.hourly or not self._repeated(moment):
				yield moment.astimezone(UTC)


def cron_schedule(
	expression: Any, zone_name: Any, *, expression_pointer: str, zone_pointer: str
) -> CronSchedule:
	"""Parse and check a schedule; errors point at ``expression_pointer`` and ``zone_pointer``."""
	errors: list[FieldError] = []
	text = expression.strip() if isinstance(expression, str) else ""
	fields = _CRON_MACROS.get(text.lower(), text)
	if not text:
		errors.append(FieldError(expression_pointer, "A cron expression is required.", _CRON_HINT))
	elif len(fields.split()) != 5:
		errors.append(
			FieldError(
				expression_pointer,
				f"{text!r} has {len(fields.split())} fields; a cron expression has five (seconds are not supported).",
				_CRON_HINT,
			)
		)
	elif not croniter.is_valid(fields):
		errors.append(FieldError(expression_pointer, f"{text!r} is not a valid cron expression.", _CRON_HINT))
	zone: ZoneInfo | None = None
	with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
		zone = ZoneInfo(zone_name) if isinstance(zone_name, str) and zone_name else None
	if zone is None:
		errors.append(
			FieldError(
				zone_pointer,
				f"{zone_name!r} is not a known time zone.",
				"Use an IANA zone name such as 'Europe/Paris', 'America/New_York' or 'UTC'.",
			)
		)
	if errors:
		raise ValidationFailed(errors, f"The schedule is invalid ({len(errors)} problem(s)).")
	assert zone is not None
	schedule = CronSchedule(fields, zone)
	try:
		next(schedule.occurrences(utc_now()))
	except CroniterBadDateError:
		raise ValidationFailed.single(
			expression_pointer,
			f"{text!r} never fires.",
			"Check the day of month against the month: 30 February does not exist.",
		) from None
	return schedule


def cron_preview(
	*, expression: str, timezone: str, count: int = 10, after: datetime | None = None
) -> list[datetime]:
	"""The next ``count`` fire times of a schedule after ``after`` (default: now), in its zone.

	A naive ``after`` is read as wall-clock time in ``timezone``. Subtract or compare the
	results in UTC (``.astimezone(UTC)``): Python compares two datetimes of one zone by wall
	time, so both 02:30s of a fall-back night would look equal.

	Raises:
		ValidationFailed: The expression or zone is invalid (pointers ``/expression``,
			``/timezone``), or ``count`` is not 1 to 100.
	"""
	schedule = cron_schedule(expression, timezone, expression_pointer="/expression", zone_pointer="/timezone")
	if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
		raise ValidationFailed.single("/count", "Preview 1 to 100 fire times.", "e.g. 10")
	start = after or utc_now()
	if start.tzinfo is None:
		start = start.replace(tzinfo=schedule.zone)
	times = schedule.occurrences(start)
	return [next(times).astimezone(schedule.zone) for _ in range(count)]


@dataclass(frozen=True, slots=True)
class CronPlan:
	"""What one sweep does for one due cron trigger.

	Attributes:
		fires: The occurrences to start a run for, oldest first.
		missed: Owed occurrences not fired (policy or the catch-up bound).
		more: True when more were owed than counted (``missed`` is then a lower bound).
		next_fire_at: The first occurrence after now.
	"""

	fires: list[datetime]
	missed: int
	more: bool
	next_fire_at: datetime


def cron_plan(*, schedule: CronSchedule, due_at: datetime, now: datetime, policy: str) -> CronPlan:
	"""Apply the missed-fire policy to the occurrences from ``due_at`` to ``now`` (both included).

	``skip`` fires the latest occurrence if it is late by at most :data:`CRON_MISFIRE_GRACE`,
	``fire_once`` fires the latest however late, ``fire_all`` fires each of them (at most
	:data:`CRON_MAX_CATCH_UP`, the most recent). On time, every policy fires exactly once.
	"""
	now, due_at = now.astimezone(UTC), due_at.astimezone(UTC)
	going_back = (m for m in schedule.occurrences(now + timedelta(seconds=1), backwards=True) if m <= now)
	# Latest first, and one past the bound, to know there were more.
	owed = list(
		itertools.islice(itertools.takewhile(lambda m: m >= due_at, going_back), CRON_MAX_CATCH_UP + 1)
	)
	more = len(owed) > CRON_MAX_CATCH_UP
	if policy == MissedFirePolicy.FIRE_ALL:
		fires = owed[:CRON_MAX_CATCH_UP][::-1]
	elif policy == MissedFirePolicy.FIRE_ONCE or (owed and now - owed[0] <= CRON_MISFIRE_GRACE):
		fires = owed[:1]
	else:
		fires = []
	return CronPlan(
		fires=fires,
		missed=len(owed) - len(fires),
		more=more,
		next_fire_at=next(schedule.occurrences(now)),
	)
