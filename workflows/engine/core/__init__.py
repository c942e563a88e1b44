"""The scheduling core: given a definition, a run's state and one happening, decide what happens next.

Pure and deterministic: no Django, no Celery, no clock, no randomness. The caller passes
``now`` and gets back the new state and a list of commands (dispatch a step, start a
timer, subscribe to an event, record a step, finish the run, ...). ``advance`` in
:mod:`workflows.engine.runtime` applies it under a row lock and carries the commands out
after commit. Replaying the recorded happenings through the core from the start
reproduces a run's final state exactly.

Execution model. A *frame* is one instance of a graph: the definition's top level, or one
map item or loop iteration of a body. Nodes in a frame are activated when an incoming edge
is taken; each activation is one *step*, keyed ``<frame>:<node>``. Tokens carry a stack
of (fork, branch) tags so a join knows which branches of its fork have arrived. A frame
finishes when nothing in it is active any more: it fails when a failure was not handled
by an error edge; otherwise it succeeds, with the output of its last finished node (an
``end`` node's output when it has one).

The state is a JSON-ready dict, stored on the run row. Node outputs live in it (the
context of every expression is built from it); finished body frames are folded into
their map or loop node so the state stays proportional to what is active.
"""

from workflows.engine.core.commands import (
	CancelChild,
	CancelStep,
	CancelTimers,
	CloseApproval,
	Command,
	Dispatch,
	Emit,
	EscalateApproval,
	Finish,
	RecordStep,
	RequestApproval,
	StartChild,
	StartTimer,
	Subscribe,
	Transition,
	Unsubscribe,
)
from workflows.engine.core.common import ROOT, STATE_VERSION, TERMINAL, IllegalRetry, Stale, backoff
from workflows.engine.core.engine import Engine
from workflows.engine.core.happenings import (
	ApprovalDecided,
	Cancel,
	ChildFinished,
	EventReceived,
	Happening,
	Pause,
	Resume,
	RetryFailed,
	Start,
	StepError,
	StepFailed,
	StepSucceeded,
	TimerFired,
)

__all__ = [
	"ROOT",
	"STATE_VERSION",
	"TERMINAL",
	"ApprovalDecided",
	"Cancel",
	"CancelChild",
	"CancelStep",
	"CancelTimers",
	"ChildFinished",
	"CloseApproval",
	"Command",
	"Dispatch",
	"Emit",
	"Engine",
	"EscalateApproval",
	"EventReceived",
	"Finish",
	"Happening",
	"IllegalRetry",
	"Pause",
	"RecordStep",
	"RequestApproval",
	"Resume",
	"RetryFailed",
	"Stale",
	"Start",
	"StartChild",
	"StartTimer",
	"StepError",
	"StepFailed",
	"StepSucceeded",
	"Subscribe",
	"TimerFired",
	"Transition",
	"Unsubscribe",
	"backoff",
]
