"""The user-space web server (Apache, in kHTTPd's days) that gets what kHTTPd cannot serve.

kHTTPd hands such a connection over (the ``userspace`` state); the user-space server then
does the whole request itself.  It is another task on the same CPUs - so it competes with the
server for them - but its reschedules are not the server's, so it is not *counted*.
"""

from __future__ import annotations

from collections import deque

import simpy

from arch_sim.models.network import Request
from arch_sim.models.params import ModelParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import US, Scheduler, Task


class UserspaceServer:
    """One user-space server process serving handed-over requests in order."""

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: ModelParams,
                 recorder: Recorder) -> None:
        self.env = env
        self.sched = sched
        self.recorder = recorder
        self.service = params.server.userspace_service_us * US
        self.one_way = params.network.one_way_us * US
        self.task = Task("userspace-server", counted=False)
        self.queue: deque[Request] = deque()
        self.started = False

    def submit(self, req: Request) -> None:
        """A connection handed over by the server."""
        self.queue.append(req)
        if not self.started:
            self.started = True
            self.env.process(self.serve_forever())
        else:
            self.sched.wake(self.task)

    def serve_forever(self):
        """Take the next handed-over request, serve it whole, sleep when there is none."""
        yield self.sched.start(self.task)
        while True:
            if not self.queue:
                yield self.sched.block(self.task)
                continue
            req = self.queue.popleft()
            yield from self.sched.run(self.task, self.service)
            self.recorder.complete(req, self.env.now + self.one_way)
