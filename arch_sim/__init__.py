"""arch-sim: kHTTPd's old (thread-per-request) vs new (state-group) architecture, measured,
simulated and explained."""

__version__ = "0.1.0"

from real_servers.core.lifecycle import NAMES as STATES  # noqa: E402  (the one definition)

#: The request lifecycle (``STATES``), in the order the state-group worker services its groups,
#: is defined once in real_servers/core/lifecycle.py: the real server's state modules, the
#: SimPy model's stages, the harness's per-state columns and the plots all use it.

ARCHS: tuple[str, ...] = ("thread-per-request", "state-group")

__all__ = ["ARCHS", "STATES", "__version__"]
