"""Quoting models and signals: `make_strategy(spec, config)` builds the `Strategy` for one
symbol. See docs/strategy.md."""

from mmkit.strategy.core import Strategy, make_strategy
from mmkit.strategy.models import MODELS

__all__ = ["MODELS", "Strategy", "make_strategy"]
