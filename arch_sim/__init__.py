"""arch-sim: kHTTPd's old (thread-per-request) vs new (state-group) architecture, measured,
simulated and explained."""

__version__ = "0.1.0"

from real_servers.core.lifecycle import NAMES as STATES  # noqa: E402  (the one definition)

#: The request lifecycle (``STATES``), in the order the state-group worker services its groups,
#: is defined once in real_servers/core/lifecycle.py: the real server's state modules, the
#: SimPy model's stages, the harness's per-state columns and the plots all use it.

#: the seed's two designs: kHTTPd's old one and its new one (what `reproduce` compares)
ARCHS: tuple[str, ...] = ("thread-per-request", "state-group")
#: designs that separate what the seed's two mix: prefork (Apache 1.3's processes: a blocking
#: request per worker, no shared interpreter lock) and staged (SEDA: requests grouped by state,
#: one thread pool per state, so every hand-off between states is a wake-up)
MORE_ARCHS: tuple[str, ...] = ("prefork", "staged")
#: every architecture arch-sim has a real server and a model of
ALL_ARCHS: tuple[str, ...] = ARCHS + MORE_ARCHS

__all__ = ["ALL_ARCHS", "ARCHS", "MORE_ARCHS", "STATES", "__version__"]
