"""Queue-position models: how much of the displayed quantity at our price is still ahead of
a resting order of ours, given what the market feed shows.

The feed shows a level's total quantity, never who cancelled. A new order joins behind the
displayed quantity at its price (`ahead` = that quantity). Two things shrink `ahead`:

- trades at our price: they take from the front of the queue, so `ahead -= qty`, and what a
  trade leaves over after `ahead` reaches 0 fills us (both models);
- the level shrinking without a trade (cancellations): the models differ here.

`risk_averse` (hftbacktest's RiskAverseQueueModel): a cancellation is always behind us, so we
advance only when the level becomes shorter than our place in it: `ahead = min(ahead, new)`.
Fills come late; a strategy that looks good under it is not flattered by the simulator.

`prob_power` (hftbacktest's ProbQueueModel with PowerProbQueueFunc): a cancellation of `dq`
comes from behind us with probability `p = back**n / (back**n + front**n)`, where `front` is
the quantity ahead and `back` the quantity behind. Orders near the front are rarely behind a
cancellation and orders near the back almost always are. `n = 3` by default; larger `n` moves
the model towards risk-averse for orders at the back. Deterministic: it moves `ahead` by the
expected amount rather than drawing.

Quantities are in steps; `ahead` is a float because the probabilistic model moves it by
expected, fractional amounts.
"""

from __future__ import annotations


class RiskAverseQueue:
    name = "risk_averse"

    def on_depth(self, ahead: float, old: int, new: int) -> float:
        return min(ahead, float(new))


class PowerProbQueue:
    name = "prob_power"

    def __init__(self, power: float = 3.0):
        self.power = power

    def on_depth(self, ahead: float, old: int, new: int) -> float:
        change = old - new
        if change <= 0:
            return min(ahead, float(new))
        front = ahead
        back = max(old - front, 0.0)
        denominator = back**self.power + front**self.power
        p_back = back**self.power / denominator if denominator > 0 else 1.0
        estimate = front - (1.0 - p_back) * change + min(back - p_back * change, 0.0)
        return max(0.0, min(estimate, float(new)))


QUEUE_MODELS = {"risk_averse": RiskAverseQueue, "prob_power": PowerProbQueue}


def queue_model(name: str):
    """The model named `name` ("risk_averse" or "prob_power[:n]")."""
    base, _, arg = name.partition(":")
    if base not in QUEUE_MODELS:
        raise ValueError(f"unknown queue model {name!r}; choose from {', '.join(QUEUE_MODELS)}")
    if base == "prob_power" and arg:
        return PowerProbQueue(float(arg))
    return QUEUE_MODELS[base]()
