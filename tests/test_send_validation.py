"""`send` checks every field of a quote line it would act on: a level whose side, timeInForce,
reduceOnly, price or quantity send could not send as meant is reported on one line naming the
line number and the field (`levels[0].side`), counted in the exit line, and skipped; with
--strict it stops the stage (exit 2). Nothing of such a line is sent."""

from __future__ import annotations

import orjson
import pytest

from tests.simkit import serve
from tests.test_quote_send_cli import books, mmkit, one_error

GOOD = {"tag": "b0", "side": "BUY", "price": "2999.90", "qty": "0.010", "timeInForce": "GTX",
        "reduceOnly": False}


def quote(levels, ts: int = 1_000, **fields) -> bytes:
    return orjson.dumps({"type": "quote", "symbol": "ETHUSDC", "ts": ts, "levels": levels,
                         "reasons": {}, "paused": None, **fields}) + b"\n"


BAD = [  # (the quote's levels or fields, the field named, words of the reason)
    ([{**GOOD, "side": "UP"}], "levels[0].side", "expected BUY or SELL, got 'UP'"),
    ([GOOD, {**GOOD, "tag": "a0", "side": "sell"}], "levels[1].side", "got 'sell'"),
    ([{**GOOD, "timeInForce": "FOO"}], "levels[0].timeInForce", "got 'FOO'"),
    ([{**GOOD, "reduceOnly": "false"}], "levels[0].reduceOnly", "a JSON boolean"),
    ([{**GOOD, "reduceOnly": 0}], "levels[0].reduceOnly", "a JSON boolean"),
    ("notalist", "levels", "expected a list of levels"),
    (["b0"], "levels[0]", "expected an object"),
    ([{**GOOD, "price": "abc"}], "levels[0].price", "not a decimal number: 'abc'"),
    ([{**GOOD, "price": "2999.995"}], "levels[0].price", "not on the tick"),
    ([{**GOOD, "price": None}], "levels[0].price", "expected a decimal string"),
    ([{**GOOD, "qty": "0.0105"}], "levels[0].qty", "not on the step"),
    ([{**GOOD, "qty": "0"}], "levels[0].qty", "must be positive"),
    ([{**GOOD, "price": "-1"}], "levels[0].price", "must be positive"),
    ([{k: v for k, v in GOOD.items() if k != "side"}], "levels[0].side", "missing"),
    ([{**GOOD, "tag": 7}], "levels[0].tag", "non-empty string"),
    ({"reasons": ["x"]}, "reasons", "expected an object"),
    ({"paused": 1}, "paused", "expected a string or null"),
]


def bad_line(levels_or_fields) -> bytes:
    if isinstance(levels_or_fields, dict):
        return quote([GOOD], **levels_or_fields)
    return quote(levels_or_fields)


@pytest.fixture(scope="module")
def venue():
    with serve() as sim:
        yield ["--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url]


def test_every_bad_field_is_named_skipped_and_counted(venue, tmp_path):
    stdin = books(1_000) + b"".join(bad_line(bad) for bad, _, _ in BAD) + \
        quote([{**GOOD, "price": "2999.80"}], ts=1_001)
    result = mmkit(*venue, "send", "--dry-run", stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    skipped = [x for x in stderr.splitlines() if "skipped line" in x]
    assert len(skipped) == len(BAD), stderr
    for number, (message, (_, field, why)) in enumerate(zip(skipped, BAD, strict=True), start=2):
        assert f"skipped line {number}: field '{field}':" in message and why in message, message
    assert f"{len(BAD)} lines skipped" in stderr
    # only the good quote after them was acted on: nothing of a bad line went out
    lines = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert [(x["price"], x["reduceOnly"]) for x in lines if x["type"] == "order_new"] == \
        [("2999.80", False)]


@pytest.mark.parametrize("bad,field,why", [BAD[0], BAD[2], BAD[3], BAD[5], BAD[7]])
def test_strict_stops_at_a_bad_field(venue, tmp_path, bad, field, why):
    result = mmkit(*venue, "send", "--dry-run", "--strict",
                   stdin=books(1_000) + bad_line(bad) + quote([GOOD], ts=1_001), cwd=tmp_path)
    error = one_error(result)
    assert "stdin:2" in error and f"field '{field}'" in error and why in error
    assert b'"order_new"' not in result.stdout


def test_good_optional_fields_still_default(venue, tmp_path):
    """timeInForce and reduceOnly may be left out (GTX, false); numbers are decimals too."""
    level = {"tag": "b0", "side": "BUY", "price": 2999.9, "qty": "0.010"}
    result = mmkit(*venue, "send", "--dry-run", "--strict",
                   stdin=books(1_000) + quote([level]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (new,) = [orjson.loads(x) for x in result.stdout.splitlines() if b'"order_new"' in x]
    assert (new["price"], new["timeInForce"], new["reduceOnly"]) == ("2999.90", "GTX", False)
