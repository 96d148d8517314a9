"""`mmkit quote`: book, trade, position and fill lines in; the same lines out, plus `quote`
lines saying which orders the strategy wants resting, and why."""

from __future__ import annotations

import sys
from decimal import Decimal

import click

from mmkit.cli.common import load, quantity_option
from mmkit.cli.settings import with_settings
from mmkit.errors import InputError
from mmkit.stream import LineWriter, Sequence, describe, read_lines, skip_line


@click.command("quote")
@click.option("--symbol", "only", metavar="SYMBOL",
              help="Quote only this symbol (default: every symbol whose book comes by).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a strategy setting for this run, e.g. strategy.spreadTicks=3 "
                   "(repeatable; keys as in the config's symbols.<SYMBOL> section; risk.*, "
                   "inventory.* and strategy.postOnly* are send's, so a warning).")
@click.option("--position", metavar="QTY", default="0", show_default=True,
              callback=quantity_option,
              help="Starting inventory, until a position or fill line says otherwise.")
@click.option("--strict", is_flag=True, help="Stop (exit 2) at the first input line it "
              "cannot use: invalid JSON, a bad or missing field, out of order (default: "
              "report it with its line number and skip it).")
@click.pass_context
def quote(ctx: click.Context, only: str | None, settings: tuple[str, ...], position: Decimal,
          strict: bool) -> None:
    """Read market lines (book, trade, markPrice, position, fill) on stdin and write them
    through, each `book` followed by a `quote` line when the desired orders change (and as a
    heartbeat). The inventory comes from position and fill lines (`depth --user` brings
    them), else --position. Models and parameters: docs/strategy.md.

    \b
    Examples:
      mmkit --venue sim depth ETHUSDC --user | mmkit quote | mmkit --venue sim send
      mmkit --venue sim depth ETHUSDC | mmkit quote | mmkit --venue sim send --dry-run
      mmkit depth --replay rec.jsonl.gz | mmkit quote --set strategy.spreadTicks=3 \\
        | jq 'select(.type=="quote")'
    """
    from mmkit.sim.instruments import default_specs

    specs = default_specs()
    config = load(ctx)
    if settings:  # on the symbol quoted, or on every listed one (a replay may be ETHUSDT)
        config = with_settings(ctx, settings, [only.upper()] if only else sorted(specs),
                               "quote")
    QuoteStage(config, specs, only.upper() if only else None, position, strict).run(
        read_lines(sys.stdin.buffer, strict=strict), LineWriter())


class QuoteStage:
    """One strategy per symbol, fed from lines; every input line is written through."""

    def __init__(self, config, specs, only: str | None, start_qty: Decimal,
                 strict: bool = False):
        self.config = config
        self.strict = strict
        self.specs = specs
        self.only = only
        self.start_qty = start_qty
        self.strategies: dict = {}
        self.venue_positions: dict[str, tuple[int, int]] = {}  # symbol -> (steps, ts)

    def strategy(self, symbol: str):
        from mmkit.strategy import make_strategy

        if symbol not in self.strategies:
            spec = self.specs.get(symbol)
            if spec is None:
                raise InputError(f"unknown symbol {symbol!r}", field="symbol")
            symbol_config = self.config.symbols.get(symbol)
            if symbol_config is None:
                from mmkit.config import SymbolConfig

                symbol_config = SymbolConfig()
            strategy = make_strategy(spec, symbol_config.strategy, symbol_config.inventory)
            strategy.on_position(spec.round_qty(self.start_qty.copy_abs())
                                 * (-1 if self.start_qty < 0 else 1), 0)
            self.strategies[symbol] = (spec, strategy)
        return self.strategies[symbol]

    def run(self, lines, out: LineWriter) -> None:
        """Every line is written through, a `book` followed by its `quote`; a line that cannot
        be used is reported and still written through, or stops the stage under `strict`
        (before it is written)."""
        sequence = Sequence(("book", "trade"))
        for number, raw, line in lines:
            symbol, quote = line.get("symbol"), None
            if symbol and (not self.only or symbol == self.only):
                problem = sequence.out_of_order(line)
                if problem is None:
                    try:
                        quote = self.handle(line)
                    except (InputError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                        problem = describe(exc)
                if problem:
                    skip_line("quote", number, problem, strict=self.strict)
            out.write_raw(raw)
            if quote is not None:
                out.write(quote_line(self.strategies[symbol][0], quote))

    def handle(self, line: dict):
        from mmkit.feeds import book_top_from_line, entry_ticks, mark_from_line, own_fill_from_line
        from mmkit.model import MarketTrade

        kind = line.get("type")
        if kind not in ("book", "trade", "position", "fill", "markPrice"):
            return None
        spec, strategy = self.strategy(line["symbol"])
        if kind == "book":
            return strategy.on_book(book_top_from_line(spec, line))
        if kind == "trade":
            strategy.on_trade(MarketTrade(line["symbol"], int(line["ts"]), int(line["tradeId"]),
                                          spec.to_ticks(line["price"]),
                                          spec.to_steps(line["qty"]), line["side"] == "SELL"))
        elif kind == "position":
            qty, ts = line["qty"], int(line["ts"])
            steps = spec.to_steps(qty)
            strategy.on_position(steps, ts, entry_ticks(spec, line.get("entryPrice")))
            self.venue_positions[line["symbol"]] = (steps, ts)
        elif kind == "fill":
            fill = own_fill_from_line(spec, line)
            strategy.on_fill(fill)
            known = self.venue_positions.get(line["symbol"])
            if known is not None and fill.ts <= known[1]:
                # the venue's position line came first (Binance may send ACCOUNT_UPDATE
                # before the ORDER_TRADE_UPDATE of the same trade) and already counts it
                strategy.on_position(known[0], fill.ts)
        elif kind == "markPrice":
            strategy.on_mark(mark_from_line(line))
        return None


def quote_line(spec, quote) -> dict:
    return {
        "type": "quote", "symbol": quote.symbol, "ts": quote.ts,
        "levels": [{"tag": lv.tag, "side": lv.side, "price": spec.price_str(lv.price),
                    "qty": spec.qty_str(lv.qty), "timeInForce": lv.time_in_force,
                    "reduceOnly": lv.reduce_only} for lv in quote.levels],
        "reasons": quote.reasons, "paused": quote.paused,
    }
