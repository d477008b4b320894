"""SimPy models of kHTTPd's two designs (and two more) on top of a model of the scheduler's cost.

* :mod:`~arch_sim.models.scheduler` - CPUs, a run queue and the price of a reschedule
  (Linux 2.2 / O(1) FIFO, or today's EEVDF)
* :mod:`~arch_sim.models.gil` - CPython's interpreter lock, for the real Python servers
* :mod:`~arch_sim.models.thread_per_request` - the old design (kHTTPd <= 0.1.2)
* :mod:`~arch_sim.models.state_group` - the new design (kHTTPd >= 0.1.3)
* :mod:`~arch_sim.models.prefork` - Apache 1.3's worker processes, each blocked in accept()
* :mod:`~arch_sim.models.staged` - SEDA: a thread pool per lifecycle state, queues between
* :mod:`~arch_sim.models.workload` - open and closed clients, SPECweb99 file sizes
* :mod:`~arch_sim.models.params` and ``presets/*.toml`` - every number, with its source
* :mod:`~arch_sim.models.calibration` - ``arch-sim calibrate``'s measurements -> ``host`` preset

:func:`simulate_point` runs one load point and returns one row of the results schema.
"""

from arch_sim.models.params import ModelParams, load_preset, preset_names
from arch_sim.models.runner import MODELS, point_seed, rate_for_utilisation, simulate_point

__all__ = [
    "MODELS",
    "ModelParams",
    "load_preset",
    "point_seed",
    "preset_names",
    "rate_for_utilisation",
    "simulate_point",
]
