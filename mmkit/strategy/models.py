"""Quoting models: each turns the market state into a half-spread and an inventory skew, both in
ticks. The skew is added to the fair value to make the reservation price (negative when long,
so both quotes move down and selling gets likelier). Formulas and references: docs/strategy.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MODELS = ("fixed", "vol", "as", "glft")


@dataclass(frozen=True, slots=True)
class Pricing:
    half_spread: float  # ticks from the reservation price to each quote
    skew: float  # ticks added to the fair value


@dataclass(frozen=True, slots=True)
class ModelInput:
    base_half: float  # the configured half-spread, in ticks (spreadTicks/2 or spread bps)
    sigma: float  # realised volatility, ticks per √s
    inventory_ratio: float  # position / maxInventory (signed)
    inventory_lots: float  # position / baseSize (signed)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def fixed(x: ModelInput, skew: float) -> Pricing:
    """Half-spread = base; skew = −skew × q/Qmax × half-spread."""
    half = x.base_half
    return Pricing(half, -skew * x.inventory_ratio * half)


def vol_adaptive(x: ModelInput, skew: float, multiplier: float, low: float,
                 high: float) -> Pricing:
    """Half-spread = clamp(base + multiplier × σ, low, high); skew as `fixed`."""
    half = _clamp(x.base_half + multiplier * x.sigma, low, high)
    return Pricing(half, -skew * x.inventory_ratio * half)


def avellaneda_stoikov(x: ModelInput, gamma: float, kappa: float, horizon_s: float,
                       low: float, high: float) -> Pricing:
    """Avellaneda & Stoikov (2008): r = s − q·γ·σ²·(T−t);
    δa + δb = γ·σ²·(T−t) + (2/γ)·ln(1 + γ/κ). q in baseSize lots, σ² in ticks²/s."""
    risk = gamma * x.sigma ** 2 * horizon_s
    spread = risk + 2.0 / gamma * math.log1p(gamma / kappa)
    return Pricing(_clamp(spread / 2, low, high), -x.inventory_lots * risk)


def glft_coefficients(gamma: float, kappa: float, arrival: float) -> tuple[float, float]:
    """Guéant–Lehalle–Fernandez-Tapia (2013), closed-form approximation (Guéant 2017), with
    Δ = 1 lot and ξ = γ: c1 = (1/γ)·ln(1 + γ/κ), c2 = √(γ/(2Aκ) · (1 + γ/κ)^(1 + κ/γ))."""
    c1 = math.log1p(gamma / kappa) / gamma
    c2 = math.sqrt(gamma / (2 * arrival * kappa)
                   * math.exp((1 + kappa / gamma) * math.log1p(gamma / kappa)))
    return c1, c2


def glft(x: ModelInput, gamma: float, kappa: float, arrival: float, low: float,
         high: float) -> Pricing:
    """δb = c1 + (2q + 1)/2 · σ·c2, δa = c1 + (1 − 2q)/2 · σ·c2: a half-spread of
    c1 + σ·c2/2 around a reservation price shifted by −q·σ·c2."""
    c1, c2 = glft_coefficients(gamma, kappa, arrival)
    return Pricing(_clamp(c1 + x.sigma * c2 / 2, low, high), -x.inventory_lots * x.sigma * c2)
