"""Every example in docs/streams.md parses and conforms to its schema in mmkit/lines.py, and
every schema has an example."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from mmkit.lines import SCHEMAS, check_line

DOC = Path(__file__).resolve().parents[1] / "docs" / "streams.md"


def _examples() -> dict[str, dict]:
    text = DOC.read_text()
    found = {}
    for heading, block in re.findall(r"### `(\w+)`.*?```json\n(.*?)\n```", text, re.S):
        found[heading] = orjson.loads(block)
    return found


def test_every_example_conforms_to_its_schema():
    for heading, line in _examples().items():
        assert line["type"] == heading
        assert check_line(line) == [], heading


def test_every_line_type_is_documented():
    assert set(SCHEMAS) <= set(_examples())


def test_user_data_lines_conform(shared_data):
    from mmkit.binance.userdata import normalize

    folder = shared_data / "api" / "ws_user" / "nautilus_trader_synthetic"
    for path in sorted(folder.glob("*.json")):
        for line in normalize(orjson.loads(path.read_bytes())):
            assert check_line(line) == [], (path.name, line)
