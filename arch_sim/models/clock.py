"""Plain function calls at a simulated time, without a SimPy process or Timeout per call.

A model's timers (a request's bytes arriving, a reply reaching its client, a client's think
time running out) only call a function when they fire.  :func:`call_at` puts a small
already-triggered event on the environment's queue that calls it: the queue orders it among
every other event exactly as a ``Timeout`` due then would be ordered (time, then the order in
which events were scheduled), but it costs no ``Event.__init__``, no closure and no callback
list of its own.

``call_at`` takes an absolute time, so a chain of steps that would each be a timer of their own
(``now + a``, then ``+ b``) can be scheduled once, at the same float the chain would have
reached, computed the same way: :func:`later` is ``now + delay`` as SimPy computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, URGENT, Event


def _fire(event: Call) -> None:
    event.fn(*event.args)


class Call:
    """A triggered event whose one callback calls ``fn(*args)``."""

    __slots__ = ("callbacks", "fn", "args")
    _ok = True  # what Environment.step() checks after the callbacks: it succeeded
    _value = None

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callbacks: list[Callable[[Call], None]] | None = [_fire]
        self.fn = fn
        self.args = args


def call_at(env: simpy.Environment, t: float, fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` when the simulation reaches time ``t`` (>= now)."""
    heappush(env._queue, (t, NORMAL, next(env._eid), Call(fn, args)))


def call_after(env: simpy.Environment, delay: float, fn: Callable[..., Any],
               *args: Any) -> None:
    """Call ``fn(*args)`` ``delay`` seconds from now (``env.timeout(delay)``'s time)."""
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), Call(fn, args)))


def later(env: simpy.Environment, delay: float) -> float:
    """The time ``env.timeout(delay)`` would fire at."""
    return env._now + delay


def fire(event: simpy.Event) -> None:
    """Succeed a pending event and run its callbacks at once (resuming the process waiting on
    it), as ``Environment.step()`` would when it processed the event now; for a
    :class:`Call` that stands in for the event (a scheduler ``on_dispatch`` hook)."""
    event._ok = True
    event._value = None
    callbacks, event.callbacks = event.callbacks, None
    for callback in callbacks:
        callback(event)


class Environment(simpy.Environment):
    """A SimPy environment whose :meth:`run` loop calls a :class:`Call`'s function directly.

    Every other event goes through its callbacks exactly as :meth:`simpy.Environment.step`
    runs them, and the queue is the same, so a run is the same event for event; a
    :class:`Call` (most of a model's events) skips the callback list, its function and the
    failure check (it cannot fail).  A plain :class:`simpy.Environment` runs the same models
    (a Call's one callback does the same call).
    """

    def run(self, until: float | Event | None = None) -> Any:
        """:meth:`simpy.Environment.run`, with its :meth:`step` written into the loop."""
        if until is not None:
            if not isinstance(until, Event):
                at = until if isinstance(until, int) else float(until)
                if at <= self._now:
                    raise ValueError(
                        f"until ({at}) must be greater than the current simulation time")
                until = Event(self)
                until._ok = True
                until._value = None
                self.schedule(until, URGENT, at - self._now)
            elif until.callbacks is None:  # already processed
                return until.value
            until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        try:
            while True:
                if not queue:
                    raise EmptySchedule
                self._now, _, _, event = heappop(queue)
                if type(event) is Call:
                    event.fn(*event.args)
                    continue
                callbacks, event.callbacks = event.callbacks, None
                try:
                    for callback in callbacks:
                        callback(event)
                except StopSimulation:  # as step(): the rest run when the simulation resumes
                    event.callbacks = callbacks[callbacks.index(callback) + 1:]
                    self.schedule(event, URGENT - 1)
                    raise
                if not event._ok and not hasattr(event, "_defused"):
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stop:
            return stop.args[0]
        except EmptySchedule:
            if until is not None:
                raise RuntimeError(f'No scheduled events left but "until" event was not '
                                   f"triggered: {until}") from None
        return None
