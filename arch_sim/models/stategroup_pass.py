"""One pass of a state-group worker (:mod:`arch_sim.models.state_group`): its running totals."""

from __future__ import annotations

from arch_sim.models.network import Request


class Pass:
    """One pass's running totals: its clock, what moved, what finished, what was handed on."""

    __slots__ = ("t", "moved", "finished", "replied", "handed", "logging", "closed")

    def __init__(self, t: float) -> None:
        self.t = t  # the pass's own clock: when its next piece of work would end
        self.moved = 0
        #: (request, when its last bytes were sent, when its reply is in), on the pass's clock
        self.finished: list[tuple[Request, float, float]] = []
        self.replied = t  # when the pass's last reply was sent, on its clock
        self.handed: list[Request] = []  # to the user-space server
        self.logging: list[Request] = []  # replies done (or handed over): to log and close
        self.closed: list[Request] = []  # connections closed on their client's end of file
