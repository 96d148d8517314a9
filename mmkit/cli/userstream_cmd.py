"""`mmkit userstream`: the account's order, fill, position and balance events as lines."""

from __future__ import annotations

import click

from mmkit.cli.common import load, rest_client, run
from mmkit.stream import LineWriter


@click.command("userstream")
@click.option("--symbol", "symbols", multiple=True, metavar="SYMBOL",
              help="Only these symbols (repeatable; default: the configured symbols).")
@click.option("--raw", is_flag=True, help="The venue's payloads as they come, not lines.")
@click.pass_context
def userstream(ctx: click.Context, symbols: tuple[str, ...], raw: bool) -> None:
    """Order, fill, position and balance lines from the user data stream (docs/streams.md).

    The listen key is kept alive every 30 min and recreated when it expires; after any
    reconnect, open orders and positions are reconciled over REST and missed fills recovered
    from userTrades, each emitted once.

    \b
    Examples:
      mmkit --venue sim userstream
      mmkit --venue sim userstream --raw | jq .e
    """
    config = load(ctx)
    wanted = [s.upper() for s in symbols] or sorted(config.symbols)
    run(_stream(config, wanted, raw))


async def _stream(config, symbols: list[str], raw: bool) -> None:
    from mmkit.cli.market_data import _routed
    from mmkit.userstream import UserStream

    out = LineWriter()
    async with rest_client(config) as client:
        stream = UserStream(client, config.ws_url, symbols, raw=raw, routed=_routed(config))
        async for line in stream.lines():
            out.write(line)
