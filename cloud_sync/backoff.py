"""Reconnect delays: exponential, capped, and jittered so a fleet does not reconnect in step.

After a broker restart every gateway of a city loses its connection in the same second. With
plain exponential back-off they would all come back at 1, 2, 4... seconds, each wave a
thundering herd; "full jitter" (a uniform draw between a floor and the exponential ceiling)
spreads them over the whole window instead. See the AWS architecture blog post
"Exponential Backoff And Jitter" (2015), whose simulations favour full jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays for attempt 1, 2, 3...: uniform in [floor, min(cap, base * 2**(n-1))]."""

    base: float = 1.0
    cap: float = 120.0
    floor: float = 0.2
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        self.attempts += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts - 1, 30))
        return self.rng.uniform(min(self.floor, ceiling), max(self.floor, ceiling))

    def reset(self) -> None:
        """A connection worked: the next failure starts from the base again."""
        self.attempts = 0
