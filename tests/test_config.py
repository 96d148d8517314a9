"""The configuration layer: precedence, validation messages, secrets, the example file, and the
`mmkit config` command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mmkit.cli import cli
from mmkit.config import (
    Config,
    check_config,
    config_from_ctx,
    known_keys,
    load_config,
    validate,
)
from mmkit.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "config.example.yaml"
MMKIT = Path(sys.executable).parent / "mmkit"
SECRET = "s3cr3tHMACsecretNeverShown0123456789"
API_KEY = "apikeyABCDEFGHIJKLMNOPQRSTUVWXYZ0123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No stray MM_/MMKIT_ settings from the caller's shell, and no configs/config.yaml."""
    for name in list(os.environ):
        if name.startswith(("MM_", "MMKIT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(path: Path, data: dict | str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    path.chmod(mode)
    return path


def message(raw: dict) -> str:
    errors = validate(raw)
    assert errors, raw
    return str(errors[0])


# --- defaults and precedence ---------------------------------------------------------------------

def test_defaults_suit_a_small_ethusdc_account():
    config = load_config(env={})
    assert config.source is None
    assert config.gateway.venue == "sim" and config.gateway.recv_window == 5000
    assert (config.gateway.connect_timeout, config.gateway.read_timeout) == (5.0, 10.0)
    assert list(config.symbols) == ["ETHUSDC"]
    eth = config.symbol("ETHUSDC")
    assert eth.strategy.base_size == Decimal("0.010") and eth.strategy.spread == 5
    assert eth.risk.max_position == Decimal("0.05") and eth.risk.daily_max == 5
    assert config.metrics.listen == "127.0.0.1:9100"
    assert config.journal.path == "journal"
    assert config == Config()


def test_defaults_yaml_env_overrides_precedence(tmp_path):
    path = write(tmp_path / "c.yaml", {
        "gateway": {"venue": "testnet", "recvWindow": 3000, "readTimeout": 7},
        "journal": {"path": "yaml.jsonl"},
        "metrics": {"listen": "127.0.0.1:9000"},
        "symbols": {"ETHUSDC": {"risk": {"maxPosition": "0.04", "dailyMax": 3}}},
    })
    env = {"MMKIT_GATEWAY_RECVWINDOW": "4000", "MMKIT_JOURNAL_PATH": "env.jsonl",
           "MMKIT_GATEWAY_CONNECT_TIMEOUT": "2.5",
           "MMKIT_SYMBOLS_ETHUSDC_RISK_MAXPOSITION": "0.03"}
    overrides = {"gateway": {"recvWindow": 4500, "venue": "live"}}
    config = load_config(str(path), env, overrides)
    gateway = config.gateway
    assert gateway.venue == "live"                    # override > yaml
    assert gateway.recv_window == 4500                # override > env > yaml
    assert gateway.connect_timeout == 2.5             # env > default
    assert gateway.read_timeout == 7.0                # yaml > default
    assert config.journal.path == "env.jsonl"         # env > yaml
    assert config.metrics.listen == "127.0.0.1:9000"  # yaml > default
    risk = config.symbol("ETHUSDC").risk
    assert risk.max_position == Decimal("0.03") and risk.daily_max == 3
    assert config.symbol("ETHUSDC").strategy.base_size == Decimal("0.010")
    assert config.source == str(path)


def test_yaml_is_found_by_argument_env_or_cwd(tmp_path):
    assert load_config(env={}).source is None
    write(tmp_path / "configs" / "config.yaml", {"log": {"level": "debug"}})
    assert load_config(env={}).log.level == "DEBUG"
    other = write(tmp_path / "other.yaml", {"log": {"level": "error"}})
    assert load_config(env={"MMKIT_CONFIG": str(other)}).log.level == "ERROR"
    third = write(tmp_path / "third.yaml", {"log": {"format": "json"}})
    config = load_config(str(third), {"MMKIT_CONFIG": str(other)})
    assert (config.log.format, config.log.level) == ("json", "INFO")


def test_mm_gateway_credentials_env_wins_and_empty_is_unset(tmp_path):
    path = write(tmp_path / "c.yaml", {"gateway": {"apiKey": "yamlkey"}})
    env = {"MM_GATEWAY_API_KEY": API_KEY, "MMKIT_GATEWAY_APIKEY": "generic",
           "MM_GATEWAY_API_SECRET": SECRET, "MMKIT_GATEWAY_VENUE": ""}
    config = load_config(str(path), env)
    assert (config.gateway.api_key, config.gateway.api_secret) == (API_KEY, SECRET)
    assert config.gateway.venue == "sim"


def test_env_names_outside_the_sections_are_not_settings():
    assert load_config(env={"MMKIT_DATA": "/x", "MMKIT_REQUIRE_DATA": "1"}) == Config()


def test_symbols_section_replaces_the_default_symbol(tmp_path):
    path = write(tmp_path / "c.yaml", {"symbols": {"BTCUSDC": None, "1000PEPEUSDT": {}}})
    config = load_config(str(path), {})
    assert sorted(config.symbols) == ["1000PEPEUSDT", "BTCUSDC"]
    with pytest.raises(ConfigError, match=r"^symbols.ETHUSDC: not configured"):
        config.symbol("ETHUSDC")


def test_decimals_are_exact():
    raw = {"symbols": {"ETHUSDC": {"strategy": {"baseSize": 0.01, "spread": "2.5"}}}}
    config = load_config(env={}, overrides=raw)
    assert config.symbol("ETHUSDC").strategy.base_size == Decimal("0.01")
    assert str(config.symbol("ETHUSDC").strategy.spread) == "2.5"


# --- venues and URLs ----------------------------------------------------------------------------

@pytest.mark.parametrize("venue, rest, ws", [
    ("live", "https://fapi.binance.com", "wss://fstream.binance.com"),
    ("testnet", "https://demo-fapi.binance.com", "wss://fstream.binancefuture.com"),
    ("sim", "http://127.0.0.1:8765", "ws://127.0.0.1:8765"),
])
def test_venue_urls(venue, rest, ws):
    config = load_config(env={"MMKIT_GATEWAY_VENUE": venue})
    assert (config.rest_url, config.ws_url) == (rest, ws)


def test_base_and_ws_url_override_the_venue():
    overrides = {"gateway": {"venue": "live", "baseUrl": "http://127.0.0.1:9000/",
                             "wsUrl": "ws://127.0.0.1:9001"}}
    config = load_config(env={}, overrides=overrides)
    assert (config.rest_url, config.ws_url) == ("http://127.0.0.1:9000", "ws://127.0.0.1:9001")


def test_config_from_ctx_uses_the_global_flags(tmp_path):
    from mmkit.cli import GlobalOptions

    path = write(tmp_path / "c.yaml", {"gateway": {"venue": "live", "recvWindow": 1000}})
    config = config_from_ctx(GlobalOptions(str(path), "testnet", None, "ws://127.0.0.1:1", 0))
    assert (config.gateway.venue, config.gateway.recv_window) == ("testnet", 1000)
    assert (config.rest_url, config.ws_url) == ("https://demo-fapi.binance.com",
                                                "ws://127.0.0.1:1")


# --- validation messages ------------------------------------------------------------------------

def eth(section: str, key: str, value) -> dict:
    return {"symbols": {"ETHUSDC": {section: {key: value}}}}


@pytest.mark.parametrize("raw, expected", [
    (eth("risk", "maxPosition", -1), "symbols.ETHUSDC.risk.maxPosition: must be > 0, got -1"),
    (eth("risk", "dailyMax", "0"), "symbols.ETHUSDC.risk.dailyMax: must be > 0, got 0"),
    (eth("risk", "maxPosition", "lots"),
     "symbols.ETHUSDC.risk.maxPosition: must be a decimal number, got 'lots'"),
    (eth("risk", "maxOpenOrders", True),
     "symbols.ETHUSDC.risk.maxOpenOrders: must be an integer, got true"),
    (eth("inventory", "reduceOnlyThreshold", 1.5),
     "symbols.ETHUSDC.inventory.reduceOnlyThreshold: must be between 0 and 1, got 1.5"),
    (eth("inventory", "reduceOnlyMaxSlippagePct", 6),
     "symbols.ETHUSDC.inventory.reduceOnlyMaxSlippagePct: must be between 0 and 5, got 6"),
    (eth("strategy", "levels", 0),
     "symbols.ETHUSDC.strategy.levels: must be between 1 and 10, got 0"),
    (eth("strategy", "quoteInterval", 2.5),
     "symbols.ETHUSDC.strategy.quoteInterval: must be an integer, got 2.5"),
    (eth("strategy", "staticTicks", -1),
     "symbols.ETHUSDC.strategy.staticTicks: must be >= 0, got -1"),
    (eth("strategy", "baseSize", "NaN"),
     "symbols.ETHUSDC.strategy.baseSize: must be a decimal number, got 'NaN'"),
    ({"gateway": {"recvWindow": "abc"}}, "gateway.recvWindow: must be an integer, got 'abc'"),
    ({"gateway": {"recvWindow": 60001}},
     "gateway.recvWindow: must be between 1 and 60000, got 60001"),
    ({"gateway": {"readTimeout": 0}}, "gateway.readTimeout: must be > 0, got 0"),
    ({"gateway": {"connectTimeout": "soon"}},
     "gateway.connectTimeout: must be a number, got 'soon'"),
    ({"gateway": {"venue": "prod"}},
     "gateway.venue: must be one of live, testnet, sim, got 'prod'"),
    ({"gateway": {"baseUrl": "fapi.binance.com"}},
     "gateway.baseUrl: must be a URL starting with http:// or https://, "
     "got 'fapi.binance.com'"),
    ({"gateway": {"wsUrl": "https://x"}},
     "gateway.wsUrl: must be a URL starting with ws:// or wss://, got 'https://x'"),
    ({"gateway": "sim"}, "gateway: must be a mapping, got 'sim'"),
    ({"metrics": {"listen": "9108"}}, "metrics.listen: must be host:port, got '9108'"),
    ({"log": {"format": "xml"}}, "log.format: must be one of auto, json, text, got 'xml'"),
    ({"journal": {"path": None}}, "journal.path: must be a string, got null"),
    ({"symbols": ["ETHUSDC"]}, "symbols: must be a mapping of symbol names, got a list"),
])
def test_validation_messages(raw, expected):
    assert message(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    (eth("risk", "maxPositon", 1),
     "symbols.ETHUSDC.risk.maxPositon: unknown key (did you mean 'maxPosition'?)"),
    (eth("risk", "maxposition", 1),
     "symbols.ETHUSDC.risk.maxposition: unknown key (did you mean 'maxPosition'?)"),
    ({"symbols": {"ETHUSDC": {"strategies": {}}}},
     "symbols.ETHUSDC.strategies: unknown key (did you mean 'strategy'?)"),
    ({"gateway": {"recv_window": 1}},
     "gateway.recv_window: unknown key (did you mean 'recvWindow'?)"),
    ({"gatway": {}}, "gatway: unknown key (did you mean 'gateway'?)"),
    ({"log": {"zzz": 1}}, "log.zzz: unknown key (known: format, level)"),
    ({"source": "x"}, "source: unknown key (known: gateway, symbols, metrics, journal, log)"),
])
def test_unknown_keys_suggest_the_closest(raw, expected):
    assert message(raw) == expected


@pytest.mark.parametrize("name", ["ethusdc", "ETH-USDC", "ETH_USDC", ""])
def test_symbol_names_are_upper_case_alphanumerics(name):
    assert message({"symbols": {name: {}}}) == (
        f"symbols.{name}: a symbol name is upper-case letters and digits, e.g. ETHUSDC")


@pytest.mark.parametrize("raw, expected", [
    ({"strategy": {"baseSize": "0.1"}},
     "symbols.ETHUSDC.strategy.baseSize: must be <= risk.maxPosition (0.05), got 0.1"),
    ({"inventory": {"targetPosition": "-0.06"}},
     "symbols.ETHUSDC.inventory.targetPosition: must be within ±risk.maxPosition (0.05), "
     "got -0.06"),
    ({"risk": {"killSwitchLoss": 150}},
     "symbols.ETHUSDC.risk.killSwitchLoss: must be < risk.accountEquity (100), got 150"),
    ({"strategy": {"levels": 3}},
     "symbols.ETHUSDC.risk.maxOpenOrders: must be >= 2 × strategy.levels (6), got 4"),
])
def test_cross_field_checks(raw, expected):
    assert message({"symbols": {"ETHUSDC": raw}}) == expected


def test_cross_checks_wait_for_valid_fields():
    """A bad maxPosition falls back to its default internally; that must not invent a second
    complaint about baseSize."""
    raw = {"symbols": {"ETHUSDC": {"strategy": {"baseSize": "0.1"}, "risk": {"maxPosition": -1}}}}
    assert [str(e) for e in validate(raw)] == [
        "symbols.ETHUSDC.risk.maxPosition: must be > 0, got -1"]


def test_a_secret_of_the_wrong_type_is_not_echoed():
    assert message({"gateway": {"apiKey": 12345678901}}) == (
        "gateway.apiKey: must be a string, got int")


def test_a_signing_key_needs_an_api_key():
    assert message({"gateway": {"apiSecret": SECRET}}) == (
        "gateway.apiKey: required when apiSecret or privateKeyFile is set")


def test_load_config_raises_the_first_and_check_config_lists_all(tmp_path):
    path = write(tmp_path / "c.yaml", {
        "gateway": {"recvWindow": "abc", "venue": "prod"},
        "symbols": {"ETHUSDC": {"risk": {"maxPositon": 1}}, "eth": {}},
    })
    env = {"MMKIT_GATEWAY_VENU": "live", "MMKIT_LOG_LEVEL": "loud"}
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env)
    assert caught.value.exit_code == 2
    assert check_config(str(path), env) == [
        "MMKIT_GATEWAY_VENU: unknown setting (did you mean 'MMKIT_GATEWAY_VENUE'?)",
        "gateway.recvWindow: must be an integer, got 'abc'",
        "gateway.venue: must be one of live, testnet, sim, got 'prod'",
        "symbols.ETHUSDC.risk.maxPositon: unknown key (did you mean 'maxPosition'?)",
        "symbols.eth: a symbol name is upper-case letters and digits, e.g. ETHUSDC",
        "log.level: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'",
    ]


def test_env_values_are_validated_like_yaml():
    with pytest.raises(ConfigError, match=r"^gateway.recvWindow: must be an integer, got 'x'$"):
        load_config(env={"MMKIT_GATEWAY_RECVWINDOW": "x"})
    with pytest.raises(ConfigError, match=r"^MMKIT_SYMBOLS_ETHUSDC_RISKS_MAXPOSITION: unknown"):
        load_config(env={"MMKIT_SYMBOLS_ETHUSDC_RISKS_MAXPOSITION": "1"})


def test_flag_overrides_are_validated():
    with pytest.raises(ConfigError, match=r"^gateway.baseUrl: must be a URL starting with http://"):
        load_config(env={}, overrides={"gateway": {"baseUrl": "localhost:1"}})


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "gateway:\n  venue: sim\n  recvWindow: [1, 2\nlog: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {})
    assert re.fullmatch(rf"{re.escape(str(path))}:4:\d+: invalid YAML: .+", str(caught.value))
    assert check_config(str(path), {}) == [str(caught.value)]


def test_a_yaml_file_must_hold_a_mapping(tmp_path):
    path = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level, got a list"):
        load_config(str(path), {})
    assert load_config(str(write(tmp_path / "empty.yaml", "")), {}) == Config(
        source=str(tmp_path / "empty.yaml"))


def test_a_missing_config_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read"):
        load_config(str(missing), {})


# --- secrets --------------------------------------------------------------------------------------

def test_permission_warning_for_a_readable_secret(tmp_path):
    warnings: list[str] = []
    path = write(tmp_path / "c.yaml", {"gateway": {"apiKey": API_KEY, "apiSecret": SECRET}}, 0o644)
    load_config(str(path), {}, warn=warnings.append)
    assert warnings == [f"{path} holds a secret and is readable by group/others; chmod 600 {path}"]
    assert SECRET not in warnings[0]

    warnings.clear()
    path.chmod(0o600)
    load_config(str(path), {}, warn=warnings.append)
    assert warnings == []


def test_no_permission_warning_without_a_secret(tmp_path):
    warnings: list[str] = []
    path = write(tmp_path / "c.yaml", {"gateway": {"venue": "sim", "apiKey": None}}, 0o644)
    load_config(str(path), {}, warn=warnings.append)
    assert warnings == []


def test_credentials_hmac_and_none():
    assert load_config(env={}).credentials() is None
    env = {"MM_GATEWAY_API_KEY": API_KEY, "MM_GATEWAY_API_SECRET": SECRET}
    credentials = load_config(env=env).credentials()
    assert credentials.api_key == API_KEY and credentials.api_secret == SECRET
    assert credentials.can_sign and SECRET not in repr(credentials)


def test_credentials_ed25519(tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    key_file = tmp_path / "ed25519.pem"
    key_file.write_bytes(pem)
    overrides = {"gateway": {"apiKey": API_KEY, "privateKeyFile": str(key_file)}}
    credentials = load_config(env={}, overrides=overrides).credentials()
    assert credentials.private_key is not None and credentials.can_sign
    assert "signing=ed25519" in repr(credentials)


def test_check_reports_an_unreadable_key_file(tmp_path):
    key_file = write(tmp_path / "not-a-key.pem", "hello")
    overrides = {"gateway": {"apiKey": API_KEY, "privateKeyFile": str(key_file)}}
    assert load_config(env={}, overrides=overrides).gateway.private_key_file == str(key_file)
    assert check_config(env={}, overrides=overrides) == [
        "gateway.privateKeyFile: cannot read an Ed25519 private key (ValueError)"]


def test_redacted_masks_key_and_secret():
    config = load_config(env={"MM_GATEWAY_API_KEY": API_KEY, "MM_GATEWAY_API_SECRET": SECRET})
    shown = config.redacted()
    text = orjson.dumps(shown).decode() + repr(config) + str(config.gateway)
    assert SECRET not in text and API_KEY not in text
    assert shown["gateway"]["apiKey"].startswith(API_KEY[:4])  # which key: a hint
    assert shown["gateway"]["apiSecret"] == "<set>"  # of the secret: nothing at all
    assert SECRET[:4] not in text.replace(API_KEY[:4], "")
    assert shown["symbols"]["ETHUSDC"]["strategy"]["baseSize"] == "0.010"
    assert "source" not in shown


def test_redacted_round_trips_through_the_loader():
    """What `config show --yaml` prints is itself a valid config with the same values."""
    config = load_config(env={}, overrides={"log": {"format": "json"}})
    assert load_config(env={}, overrides=config.redacted()) == config


# --- the example file ---------------------------------------------------------------------------

def _paths(tree: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if prefix == "symbols.":
            found |= _paths(value, "symbols.*.")
        elif isinstance(value, dict):
            found |= _paths(value, f"{path}.")
        else:
            found.add(path)
    return found


def test_example_documents_every_key():
    assert _paths(yaml.safe_load(EXAMPLE.read_text())) == set(known_keys())


def test_example_comments_every_key():
    previous = ""
    for number, line in enumerate(EXAMPLE.read_text().splitlines(), 1):
        if re.match(r"\s*[\w]+:", line):
            assert "#" in line or previous.startswith("#"), f"line {number} has no comment"
        if line.strip():
            previous = line.strip()


def test_example_is_valid_and_shows_the_defaults():
    assert check_config(str(EXAMPLE), {}) == []
    example = load_config(str(EXAMPLE), {})
    assert example.redacted() == Config().redacted()


# --- mmkit config check / show ------------------------------------------------------------------

def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    return subprocess.run([str(MMKIT), *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60)


def test_cli_check_ok(tmp_path):
    result = CliRunner().invoke(cli, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "config OK: defaults" in result.stderr
    result = CliRunner().invoke(cli, ["--config", str(EXAMPLE), "config", "check"])
    assert f"config OK: {EXAMPLE}" in result.stderr


def test_cli_check_lists_every_problem_and_exits_2(tmp_path):
    path = write(tmp_path / "c.yaml", {"gateway": {"recvWindow": 0},
                                       "symbols": {"ETHUSDC": {"risk": {"maxPositon": 1}}}})
    result = run("--config", str(path), "config", "check", env={"MMKIT_LOG_FORMAT": "xml"})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        "gateway.recvWindow: must be between 1 and 60000, got 0",
        "symbols.ETHUSDC.risk.maxPositon: unknown key (did you mean 'maxPosition'?)",
        "log.format: must be one of auto, json, text, got 'xml'",
    ]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_check_applies_the_flags():
    result = CliRunner().invoke(cli, ["--base-url", "ftp://x", "config", "check"])
    assert isinstance(result.exception, ConfigError)
    assert ("gateway.baseUrl: must be a URL starting with http:// or https://, got 'ftp://x'"
            in result.stderr)


def test_cli_show_never_prints_the_secret(tmp_path):
    path = write(tmp_path / "c.yaml", {"gateway": {"apiSecret": SECRET}}, 0o644)
    result = run("--config", str(path), "--venue", "testnet", "config", "show",
                 env={"MM_GATEWAY_API_KEY": API_KEY})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert API_KEY not in result.stdout + result.stderr
    assert "chmod 600" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    shown = orjson.loads(lines[0])
    assert shown["gateway"]["venue"] == "testnet"
    assert shown["gateway"]["apiSecret"] != SECRET


def test_cli_show_yaml(tmp_path):
    env = {"MM_GATEWAY_API_KEY": API_KEY, "MM_GATEWAY_API_SECRET": SECRET}
    result = CliRunner(env=env).invoke(cli, ["--ws-url", "ws://127.0.0.1:1", "config", "show",
                                             "--yaml"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["gateway"]["wsUrl"] == "ws://127.0.0.1:1"
    assert shown["symbols"]["ETHUSDC"]["risk"]["maxPosition"] == "0.05"


def test_cli_show_fails_on_a_bad_config(tmp_path):
    path = write(tmp_path / "c.yaml", "gateway: {recvWindow: abc}\n")
    result = run("--config", str(path), "config", "show")
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: gateway.recvWindow: must be an integer, got 'abc'"
