"""arch-sim: kHTTPd's old (thread-per-request) vs new (state-group) architecture, measured,
simulated and explained."""

__version__ = "0.1.0"

#: The request lifecycle, in the order the state-group worker services its groups.  The same
#: names label the real server's state modules, the SimPy model's groups and the plots.
STATES: tuple[str, ...] = ("accept", "wait_headers", "send_data", "userspace", "logging")

ARCHS: tuple[str, ...] = ("thread-per-request", "state-group")
