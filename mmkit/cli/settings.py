"""`--set KEY=VALUE`: symbol settings from the command line, for quote, send, run and
backtest, validated like the config file."""

from __future__ import annotations

import sys

import click

from mmkit.errors import ConfigError

# The symbols.<SYMBOL> settings each pipe stage reads (`run` and `backtest` read them all):
# quote the strategy, send the risk guards, the inventory limits and post-only handling.
SEND_STRATEGY_KEYS = ("postOnlyFallback", "postOnlyRetries", "postOnlyCooldown")
QUOTE_INVENTORY_KEYS = ("targetPosition",)  # the skew's target


def stage_reading(key: str) -> str | None:
    """The pipe stage that reads a symbol setting (`strategy.spreadTicks` → quote), or None."""
    section, _, name = key.partition(".")
    if section == "inventory" and name in QUOTE_INVENTORY_KEYS:
        return "quote"
    if section == "strategy":
        return "send" if name in SEND_STRATEGY_KEYS else "quote"
    return "send" if section in ("risk", "inventory") else None


def with_settings(ctx: click.Context, settings: tuple[str, ...], symbols: list[str],
                  stage: str):
    """The effective config with `--set KEY=VALUE` applied to `symbols`, validated like the
    config file (a bad key or value is a ConfigError, exit 2). A key `stage` does not read
    gets one warning line on stderr naming the stage that does."""
    from mmkit.config import flag_overrides, load_config

    root = ctx.find_root().obj
    overrides = flag_overrides(root)
    tree = settings_tree(settings)
    overrides["symbols"] = {symbol: tree for symbol in symbols}
    config = load_config(getattr(root, "config_path", None), overrides=overrides)
    for item in settings if stage in ("quote", "send") else ():  # run reads every key
        key = item.partition("=")[0].strip()
        reader = stage_reading(key)
        if reader is None:
            print(f"mmkit {stage}: --set {key} has no effect: no command reads it",
                  file=sys.stderr, flush=True)
        elif reader != stage:
            print(f"mmkit {stage}: --set {key} has no effect on {stage}: `mmkit {reader}` "
                  "reads it (and run, backtest)", file=sys.stderr, flush=True)
    return config


def settings_tree(settings: tuple[str, ...]) -> dict:
    """`strategy.spreadTicks=3` → {"strategy": {"spreadTicks": "3"}}."""
    tree: dict = {}
    for item in settings:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError("expected KEY=VALUE with a dotted key, e.g. "
                              f"strategy.spreadTicks=3, got {item!r}", "--set")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.strip()
    return tree
