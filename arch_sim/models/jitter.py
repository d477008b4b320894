"""The run-to-run variation of CPU work: a lognormal factor drawn for every CPU burst."""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def lognormal_draw(rng: random.Random, mu: float, sigma: float) -> Callable[[], float]:
    """``rng.lognormvariate(mu, sigma)`` as a call with no arguments: the same draws from the
    same stream, one call per draw instead of three (the bursts' hottest helper).  It is
    CPython's normalvariate(): Kinderman and Monahan's ratio of uniforms, "Computer
    generation of random variables using the ratio of uniform deviates", ACM TOMS 3 (1977),
    257-260."""
    uniform, log, exp = rng.random, math.log, math.exp
    magic = 4.0 * math.exp(-0.5) / math.sqrt(2.0)  # random.NV_MAGICCONST

    def draw() -> float:
        while True:
            u1 = uniform()
            u2 = 1.0 - uniform()
            z = magic * (u1 - 0.5) / u2
            if z * z / 4.0 <= -log(u2):
                return exp(mu + z * sigma)

    return draw
