"""The forecast as a range: P10 / P50 / P90 of what a period will book, from the probabilities.

The model: a period books its won amount for sure, and each open opportunity independently
books its amount with its probability (0 % never, 100 % always). The total is a sum of
independent Bernoulli-weighted amounts; its mean is the weighted amount, and the band says
how far from that mean the total may land: 10 % of the time below P10, 10 % above P90.

How it is computed, without loading every opportunity (see `selectors.forecast_cells`):

* The database sums, per period (and group), the won amount, the amounts at 100 %, and over
  the uncertain ones (0 < p < 100, amount > 0) their count, amount, Σ amount·p and
  Σ amount²·p·(100 − p), so the mean and the variance of the total are exact.
* It also returns the `LUMPS` uncertain opportunities with the largest variance
  (amount²·p·(1 − p)) of each period: the few big deals that make the total lumpy.
* Here those lumps get their exact distribution (every combination of won / not won, equal
  sums merged), and the rest, many smaller deals, a normal distribution with the remaining
  mean and variance. The band reads the quantiles of that mixture (Newton's method inside a
  bisection bracket on its distribution function), clipped to what is possible:
  [won + sure, won + sure + uncertain].

Why not only a normal approximation: one big deal at 50 % among small ones makes the total
two humps, and a bell curve would put P10 and P90 where the total can never land. Why not
Monte Carlo: it needs every deal in Python and random draws; this is deterministic, exact
on small periods, and costs about a millisecond per period whatever its size.

So a period with at most `LUMPS` uncertain deals gets the exact answer, and a period with
thousands gets the central limit theorem where it holds (on the small deals) and exactness
where it does not (a single big deal that dominates). Whole-range totals combine the
periods' inputs exactly (`combine`): sums add, and the overall largest lumps are among each
period's largest. tests/insights/test_range.py checks it against brute force.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# How many of a period's uncertain deals get an exact distribution: at most 2**LUMPS sums.
LUMPS = 8
QUANTILES = (0.1, 0.5, 0.9)
_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# The standard normal's quantiles at QUANTILES: where Newton's method starts.
_Z = {0.1: -1.2815515655446004, 0.5: 0.0, 0.9: 1.2815515655446004}
# Cumulative probabilities are sums of floats: forgive this much when comparing with q.
_EPSILON = 1e-9


@dataclass(frozen=True, order=True)
class Lump:
    """One uncertain open opportunity: amount in cents, probability in percent (1..99)."""

    amount: int
    probability: int

    @property
    def spread(self) -> int:
        """Its variance times 10,000, amount² · p · (100 − p): how much it moves the total."""
        return self.amount * self.amount * self.probability * (100 - self.probability)


@dataclass(frozen=True)
class RangeInputs:
    """What the band of one period (or group, or total) is computed from; money in cents.

    `mean_x100` is Σ amount·p and `variance_x10000` Σ amount²·p·(100 − p) over the uncertain
    opportunities (0 < p < 100, amount > 0), of which `lumps` are the largest by variance.
    """

    won: int = 0
    sure: int = 0  # open at 100 %
    uncertain_count: int = 0
    uncertain_amount: int = 0
    mean_x100: int = 0
    variance_x10000: float = 0.0
    lumps: tuple[Lump, ...] = ()


@dataclass(frozen=True)
class Band:
    """P10, P50 and P90 of a period's total in cents: 80 % of outcomes fall in [p10, p90]."""

    p10: int
    p50: int
    p90: int


def top_lumps(lumps: Iterable[Lump], limit: int = LUMPS) -> tuple[Lump, ...]:
    """The `limit` lumps with the largest variance (ties: larger amount first)."""
    return tuple(sorted(lumps, key=lambda lump: (-lump.spread, -lump.amount))[:limit])


def combine(parts: Iterable[RangeInputs], *, limit: int = LUMPS) -> RangeInputs:
    """The inputs of a union of disjoint periods or groups (e.g. the whole range)."""
    parts = list(parts)
    return RangeInputs(
        won=sum(part.won for part in parts),
        sure=sum(part.sure for part in parts),
        uncertain_count=sum(part.uncertain_count for part in parts),
        uncertain_amount=sum(part.uncertain_amount for part in parts),
        mean_x100=sum(part.mean_x100 for part in parts),
        variance_x10000=sum(part.variance_x10000 for part in parts),
        lumps=top_lumps((lump for part in parts for lump in part.lumps), limit),
    )


def _lump_distribution(lumps: Iterable[Lump]) -> list[tuple[int, float]]:
    """Every possible sum of the lumps that come in, with its probability, sorted by sum."""
    states: dict[int, float] = {0: 1.0}
    for lump in lumps:
        p = lump.probability / 100
        grown: dict[int, float] = {}
        for total, weight in states.items():
            grown[total] = grown.get(total, 0.0) + weight * (1 - p)
            grown[total + lump.amount] = grown.get(total + lump.amount, 0.0) + weight * p
        states = grown
    return sorted(states.items())


def _discrete_quantile(states: list[tuple[int, float]], q: float) -> float:
    """The smallest sum whose cumulative probability reaches q."""
    cumulative = 0.0
    for total, weight in states:
        cumulative += weight
        if cumulative >= q - _EPSILON:
            return float(total)
    return float(states[-1][0])


def _centre_and_spread(states: list[tuple[int, float]], sd: float) -> tuple[float, float]:
    """The mean of the lumps' sums, and the standard deviation of lumps + Normal(., sd)."""
    centre = sum(total * weight for total, weight in states)
    spread = math.sqrt(
        max(sum(total * total * weight for total, weight in states) - centre**2, 0.0) + sd * sd
    )
    return centre, spread


def _mixture_quantile(
    states: list[tuple[int, float]],
    mean: float,
    sd: float,
    q: float,
    moments: tuple[float, float] | None = None,
) -> float:
    """t with P(lumps + Normal(mean, sd) <= t) = q: Newton steps kept inside a bisection
    bracket, so it converges in a few passes where the density is smooth and never diverges
    where it is not (between lumps). `moments`: `_centre_and_spread(states, sd)`, when the
    caller asks for several quantiles of the same mixture."""
    erfc, exp = math.erfc, math.exp

    def cdf_and_density(t: float) -> tuple[float, float]:
        cumulative = density = 0.0
        for total, weight in states:
            z = (t - total - mean) / sd
            cumulative += weight * 0.5 * erfc(-z / _SQRT2)
            density += weight * exp(-0.5 * z * z)
        return cumulative, density / (sd * _SQRT_2PI)

    low = states[0][0] + mean - 9 * sd
    high = states[-1][0] + mean + 9 * sd
    centre, spread = moments or _centre_and_spread(states, sd)
    # Half a cent, or a ten-thousandth of the total's spread, is precise enough.
    precision = max(0.5, spread * 1e-4)
    t = min(max(centre + mean + _Z[q] * spread, low), high)
    previous_step = high - low
    for _ in range(200):
        cumulative, density = cdf_and_density(t)
        if cumulative < q:
            low = t
        else:
            high = t
        step = (cumulative - q) / density if density > 0 else math.inf
        following = t - step
        # Bisect when Newton leaves the bracket or stops halving its steps (between lumps).
        if not low < following < high or abs(step) > previous_step / 2:
            following = (low + high) / 2
        previous_step = abs(following - t)
        if previous_step <= precision or high - low <= precision:
            return following
        t = following
    return t  # pragma: no cover - the bracket halves at worst, far fewer passes than this


def band(inputs: RangeInputs) -> Band:
    """P10 / P50 / P90 of won + open outcomes, in cents (rounded to the cent)."""
    floor = inputs.won + inputs.sure
    ceiling = floor + inputs.uncertain_amount
    states = _lump_distribution(inputs.lumps)
    rest_count = inputs.uncertain_count - len(inputs.lumps)
    rest_mean = (
        inputs.mean_x100 - sum(lump.amount * lump.probability for lump in inputs.lumps)
    ) / 100
    rest_variance = (inputs.variance_x10000 - sum(lump.spread for lump in inputs.lumps)) / 10_000
    # The mixture's moments do not depend on the quantile: computed once for the three.
    moments = None
    if rest_count > 0 and rest_variance > 0:
        rest_sd = math.sqrt(rest_variance)
        moments = _centre_and_spread(states, rest_sd)
    values = []
    for q in QUANTILES:
        if moments is not None:
            value = _mixture_quantile(states, rest_mean, rest_sd, q, moments)
        else:
            value = _discrete_quantile(states, q) + max(rest_mean, 0.0)
        values.append(min(max(floor + math.floor(value + 0.5), floor), ceiling))
    return Band(*values)


__all__ = ["LUMPS", "QUANTILES", "Band", "Lump", "RangeInputs", "band", "combine", "top_lumps"]
