"""The effective configuration: defaults < YAML < env < flags, validated into frozen dataclasses.

Keys are camelCase everywhere a person writes them (YAML, flag overrides, `config show`) and
snake_case on the dataclasses; `_camel` maps one to the other, so each dataclass field *is* the
schema: its metadata holds the parser (which also range-checks) or the nested section.

Sources, lowest to highest precedence:

1. defaults (the dataclass defaults below; one symbol, ETHUSDC, when `symbols` is absent);
2. YAML: the `path` argument, else env `MMKIT_CONFIG`, else `configs/config.yaml` under the
   working directory when it exists;
3. env:
   - `MMKIT_<SECTION>_<KEY>` for gateway, metrics, journal and log, e.g. `MMKIT_GATEWAY_VENUE`,
     `MMKIT_GATEWAY_RECVWINDOW` (or `MMKIT_GATEWAY_RECV_WINDOW`), `MMKIT_METRICS_LISTEN`,
     `MMKIT_JOURNAL_PATH`, `MMKIT_LOG_LEVEL`: the key is matched ignoring case and underscores;
   - `MMKIT_SYMBOLS_<SYMBOL>_<SECTION>_<KEY>`, e.g. `MMKIT_SYMBOLS_ETHUSDC_RISK_MAXPOSITION`;
   - `MM_GATEWAY_API_KEY` and `MM_GATEWAY_API_SECRET` (these win over `MMKIT_GATEWAY_APIKEY`
     and `MMKIT_GATEWAY_APISECRET`);
   an empty value counts as unset; `MMKIT_*` names outside those sections (`MMKIT_CONFIG`,
   `MMKIT_DATA`...) are not settings, but an unknown key inside a section is an error;
4. overrides: a nested dict of camelCase keys, built from the global flags.

Relative paths (`privateKeyFile`, `journal.path`) are relative to the working directory.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from mmkit.binance import signing
from mmkit.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("configs/config.yaml")
DEFAULT_SYMBOL = "ETHUSDC"
VENUE_URLS = {
    "live": ("https://fapi.binance.com", "wss://fstream.binance.com"),
    "testnet": ("https://demo-fapi.binance.com", "wss://fstream.binancefuture.com"),
    "sim": ("http://127.0.0.1:8765", "ws://127.0.0.1:8765"),
}
ENV_ALIASES = {
    "MM_GATEWAY_API_KEY": ("gateway", "apiKey"),
    "MM_GATEWAY_API_SECRET": ("gateway", "apiSecret"),
}
_SYMBOL_NAME = re.compile(r"[A-Z0-9]+")


# --- value parsers: raw YAML/env value -> typed value, or _Invalid(message) -------------------

class _Invalid(ValueError):
    """A value's problem, without its path; the section builder adds the path."""


def _show(value: Any) -> str:
    """A raw value as the person wrote it (strings quoted, null/true/false as in YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)


def _check_range(value, gt=None, ge=None, le=None):
    """`gt` or `ge` alone, or `ge` with `le` (an inclusive range)."""
    shown = int(value) if isinstance(value, float) and value.is_integer() else value
    if gt is not None and not value > gt:
        raise _Invalid(f"must be > {gt}, got {shown}")
    if ge is not None and le is not None and not ge <= value <= le:
        raise _Invalid(f"must be between {ge} and {le}, got {shown}")
    if ge is not None and not value >= ge:
        raise _Invalid(f"must be >= {ge}, got {shown}")
    return value


def _integer(**bounds) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"must be an integer, got {_show(value)}")
        return _check_range(value, **bounds)
    return parse


def _number(**bounds) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value) if isinstance(value, int | float | str) else None
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or not math.isfinite(number):
            raise _Invalid(f"must be a number, got {_show(value)}")
        return _check_range(number, **bounds)
    return parse


def _decimal(**bounds) -> Callable[[Any], Decimal]:
    """Exact decimals: strings as written, floats through their shortest repr (0.01, not
    0.01000000000000000020816681711721685)."""
    def parse(value: Any) -> Decimal:
        number = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
            except InvalidOperation:
                pass
        if number is None or not number.is_finite():
            raise _Invalid(f"must be a decimal number, got {_show(value)}")
        return _check_range(number, **bounds)
    return parse


def _text(optional: bool = False, secret: bool = False) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            shown = type(value).__name__ if secret else _show(value)
            raise _Invalid(f"must be a string, got {shown}")
        problem = signing.secret_problem(value) if secret else None
        if problem:
            raise _Invalid(problem)
        return value
    return parse


def _choice(*options: str, upper: bool = False) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = value.upper() if upper and isinstance(value, str) else value
        if text not in options:
            raise _Invalid(f"must be one of {', '.join(options)}, got {_show(value)}")
        return text
    return parse


def _url(*schemes: str) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith(tuple(f"{s}://" for s in schemes)):
            starts = " or ".join(f"{s}://" for s in schemes)
            raise _Invalid(f"must be a URL starting with {starts}, got {_show(value)}")
        return value.rstrip("/")
    return parse


def _listen(value: Any) -> str:
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not host or not port.isdigit() or int(port) > 65535:
        raise _Invalid(f"must be host:port, got {_show(value)}")
    return value


def _opt(default: Any, parse: Callable[[Any], Any], secret: str | None = None):
    """`secret`: "hint" shows which one it is (an API key: first 4 characters and the
    length), "hide" only that it is set (a signing secret: nothing of it, ever)."""
    return field(default=default, metadata={"parse": parse, "secret": secret})


def _sub(cls: type):
    return field(default_factory=cls, metadata={"section": cls})


# --- the schema ----------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class GatewayConfig:
    api_key: str | None = _opt(None, _text(optional=True, secret=True), secret="hint")
    api_secret: str | None = _opt(None, _text(optional=True, secret=True), secret="hide")
    private_key_file: str | None = _opt(None, _text(optional=True))
    venue: str = _opt("sim", _choice(*VENUE_URLS))
    base_url: str | None = _opt(None, _url("http", "https"))
    ws_url: str | None = _opt(None, _url("ws", "wss"))
    recv_window: int = _opt(5000, _integer(ge=1, le=60000))
    connect_timeout: float = _opt(5.0, _number(gt=0))
    read_timeout: float = _opt(10.0, _number(gt=0))

    def __repr__(self) -> str:
        """Never the key or secret, even in a traceback or a debugger."""
        return f"GatewayConfig({_plain(self)})"

    def _cross_checks(self) -> list[tuple[str, str]]:
        if (self.api_secret or self.private_key_file) and not self.api_key:
            return [("apiKey", "required when apiSecret or privateKeyFile is set")]
        return []


@dataclass(frozen=True)
class StrategyConfig:
    """How one symbol is quoted; every key is explained, with why its default, in
    docs/strategy.md."""

    model: str = _opt("vol", _choice("fixed", "vol", "as", "glft"))
    base_size: Decimal = _opt(Decimal("0.010"), _decimal(gt=0))
    max_inventory: Decimal = _opt(Decimal("0.05"), _decimal(gt=0))
    spread: Decimal = _opt(Decimal("5"), _decimal(gt=0))
    spread_ticks: int = _opt(0, _integer(ge=0))
    min_half_spread_ticks: int = _opt(1, _integer(ge=1))
    max_half_spread_ticks: int = _opt(1000, _integer(ge=1))
    levels: int = _opt(1, _integer(ge=1, le=10))
    level_spacing_ticks: int = _opt(25, _integer(ge=1))
    improve_ticks: int = _opt(1, _integer(ge=0, le=100))
    quote_interval: int = _opt(1000, _integer(ge=50, le=3_600_000))
    refresh_interval: int = _opt(500, _integer(ge=0, le=3_600_000))
    refresh_min: int = _opt(100, _integer(ge=0, le=3_600_000))
    vol_half_life: int = _opt(60000, _integer(ge=100))
    vol_multiplier: float = _opt(1.0, _number(ge=0, le=100))
    skew: Decimal = _opt(Decimal("1"), _decimal(ge=0, le=10))
    size_skew: Decimal = _opt(Decimal("1"), _decimal(ge=0, le=10))
    gamma: float = _opt(0.0005, _number(gt=0))
    kappa: float = _opt(0.02, _number(gt=0))
    arrival_rate: float = _opt(1.0, _number(gt=0))
    horizon: float = _opt(30.0, _number(gt=0))
    static_fraction: Decimal = _opt(Decimal("0.2"), _decimal(ge=0, le=1))
    static_ticks: int = _opt(100, _integer(ge=0))
    static_refresh: int = _opt(30000, _integer(ge=0))
    take_profit_ticks: int = _opt(30, _integer(ge=0))
    shock_bps: float = _opt(20.0, _number(gt=0))
    shock_window: int = _opt(1000, _integer(ge=1))
    shock_cooldown: int = _opt(10000, _integer(ge=0))
    micro_weight: float = _opt(1.0, _number(ge=0, le=1))
    imbalance_ticks: float = _opt(5.0, _number(ge=0))
    imbalance_levels: int = _opt(5, _integer(ge=1, le=100))
    flow_ticks: float = _opt(10.0, _number(ge=0))
    flow_half_life: int = _opt(5000, _integer(ge=1))
    flow_scale: Decimal = _opt(Decimal("5"), _decimal(gt=0))
    funding_ticks: float = _opt(5.0, _number(ge=0))
    funding_scale: float = _opt(0.0005, _number(gt=0))
    post_only_fallback: str = _opt("reprice", _choice("reprice", "limit"))
    post_only_retries: int = _opt(2, _integer(ge=0, le=20))
    post_only_cooldown: int = _opt(5000, _integer(ge=0))

    def _cross_checks(self) -> list[tuple[str, str]]:
        problems = []
        if self.min_half_spread_ticks > self.max_half_spread_ticks:
            problems.append(("minHalfSpreadTicks", f"must be <= maxHalfSpreadTicks "
                             f"({self.max_half_spread_ticks}), got {self.min_half_spread_ticks}"))
        if self.refresh_min > self.refresh_interval:
            problems.append(("refreshMin", f"must be <= refreshInterval "
                             f"({self.refresh_interval}), got {self.refresh_min}"))
        return problems


@dataclass(frozen=True)
class RiskConfig:
    """The guards of `mmkit.risk`; units and the reasons for the defaults: docs/risk.md."""

    max_position: Decimal = _opt(Decimal("0.05"), _decimal(gt=0))
    daily_max: Decimal = _opt(Decimal("5"), _decimal(gt=0))
    account_equity: Decimal = _opt(Decimal("100"), _decimal(gt=0))
    max_drift: Decimal = _opt(Decimal("15"), _decimal(gt=0))
    shock_window_ms: int = _opt(1000, _integer(ge=1))
    max_order_notional: Decimal = _opt(Decimal("60"), _decimal(gt=0))
    max_order_qty: Decimal = _opt(Decimal("0.02"), _decimal(gt=0))
    max_open_orders: int = _opt(4, _integer(ge=1))
    max_orders_per_window: int = _opt(100, _integer(ge=1))
    order_rate_window_ms: int = _opt(10_000, _integer(ge=1))
    max_vwap_deviation_bps: Decimal = _opt(Decimal("50"), _decimal(gt=0))
    vwap_window_ms: int = _opt(300_000, _integer(ge=1))
    max_book_age_ms: int = _opt(3000, _integer(ge=1))
    kill_switch_loss: Decimal = _opt(Decimal("10"), _decimal(gt=0))
    stop_loss_pct: Decimal = _opt(Decimal("1"), _decimal(gt=0))
    cooldown_ms: int = _opt(60_000, _integer(ge=0))
    emergency_retry_ms: int = _opt(1000, _integer(ge=1))


@dataclass(frozen=True)
class InventoryConfig:
    reduce_only_threshold: Decimal = _opt(Decimal("0.8"), _decimal(ge=0, le=1))
    reduce_only_max_slippage_pct: Decimal = _opt(Decimal("0.5"), _decimal(ge=0, le=5))
    target_position: Decimal = _opt(Decimal("0"), _decimal())
    close_reprice_ticks: int = _opt(20, _integer(ge=0))


@dataclass(frozen=True)
class SymbolConfig:
    strategy: StrategyConfig = _sub(StrategyConfig)
    risk: RiskConfig = _sub(RiskConfig)
    inventory: InventoryConfig = _sub(InventoryConfig)

    def _cross_checks(self) -> list[tuple[str, str]]:
        s, r, i = self.strategy, self.risk, self.inventory
        problems = []
        if s.base_size > r.max_position:
            problems.append(("strategy.baseSize",
                             f"must be <= risk.maxPosition ({r.max_position}), got {s.base_size}"))
        if abs(i.target_position) > r.max_position:
            problems.append(("inventory.targetPosition", f"must be within ±risk.maxPosition "
                             f"({r.max_position}), got {i.target_position}"))
        if r.kill_switch_loss >= r.account_equity:
            problems.append(("risk.killSwitchLoss", f"must be < risk.accountEquity "
                             f"({r.account_equity}), got {r.kill_switch_loss}"))
        if r.max_open_orders < 2 * s.levels:
            problems.append(("risk.maxOpenOrders", f"must be >= 2 × strategy.levels "
                             f"({2 * s.levels}), got {r.max_open_orders}"))
        return problems


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = _opt("127.0.0.1:9100", _listen)


@dataclass(frozen=True)
class JournalConfig:
    path: str = _opt("journal", _text())


@dataclass(frozen=True)
class LogConfig:
    format: str = _opt("auto", _choice("auto", "json", "text"))
    level: str = _opt("INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True))


def _default_symbols() -> dict[str, SymbolConfig]:
    return {DEFAULT_SYMBOL: SymbolConfig()}


@dataclass(frozen=True)
class Config:
    gateway: GatewayConfig = _sub(GatewayConfig)
    symbols: dict[str, SymbolConfig] = field(default_factory=_default_symbols,
                                             metadata={"symbols": SymbolConfig})
    metrics: MetricsConfig = _sub(MetricsConfig)
    journal: JournalConfig = _sub(JournalConfig)
    log: LogConfig = _sub(LogConfig)
    source: str | None = None  # the YAML file read, if any; not a key

    @property
    def rest_url(self) -> str:
        return self.gateway.base_url or VENUE_URLS[self.gateway.venue][0]

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url or VENUE_URLS[self.gateway.venue][1]

    def symbol(self, name: str) -> SymbolConfig:
        """The settings of one configured symbol; a ConfigError names the configured ones."""
        if name not in self.symbols:
            known = ", ".join(self.symbols) or "none"
            raise ConfigError(f"not configured (configured: {known})", f"symbols.{name}")
        return self.symbols[name]

    def credentials(self) -> signing.Credentials | None:
        """The API key with its HMAC secret or Ed25519 key (read now), or None without a key."""
        gateway = self.gateway
        if not gateway.api_key:
            return None
        private_key = None
        if gateway.private_key_file:
            private_key = signing.load_ed25519_private_key(gateway.private_key_file)
        return signing.Credentials(gateway.api_key, gateway.api_secret, private_key)

    def redacted(self) -> dict[str, Any]:
        """The effective config as camelCase keys, plain JSON/YAML values, secrets masked."""
        return {key: value for key, value in _plain(self).items() if key != "source"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            secret = f.metadata.get("secret") if value is not None else None
            out[_camel(f.name)] = (signing.mask(value) if secret == "hint" else
                                   "<set>" if secret == "hide" else _plain(value))
        return out
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    return str(obj) if isinstance(obj, Decimal) else obj


def _schema(cls: type) -> dict[str, Any]:
    """camelCase key -> dataclass field, for the fields a person may set."""
    return {_camel(f.name): f for f in fields(cls)
            if {"parse", "section", "symbols"} & f.metadata.keys()}


def known_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every settable key as a dotted path, a symbol standing as `*`
    (e.g. `symbols.*.risk.maxPosition`)."""
    keys = []
    for key, f in _schema(cls).items():
        path = f"{prefix}{key}"
        if "section" in f.metadata:
            keys += known_keys(f.metadata["section"], f"{path}.")
        elif "symbols" in f.metadata:
            keys += known_keys(f.metadata["symbols"], f"{path}.*.")
        else:
            keys.append(path)
    return keys


# --- raw dict -> Config --------------------------------------------------------------------------

def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _did_you_mean(key: str, known: list[str]) -> str:
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(key).lower(), lowered, n=1)
    if close:
        return f"unknown key (did you mean {lowered[close[0]]!r}?)"
    return f"unknown key (known: {', '.join(known)})"


def _section(cls: type, raw: Any, path: str, errors: list[ConfigError]) -> Any:
    """Build `cls` from `raw`, appending every problem to `errors`; a bad value keeps its
    default so the remaining keys are still checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.append(ConfigError(f"must be a mapping, got {_show(raw)}", path or None))
        return cls()
    schema, values, before = _schema(cls), {}, len(errors)
    for key, value in raw.items():
        f = schema.get(key)
        where = _join(path, str(key))
        if f is None:
            errors.append(ConfigError(_did_you_mean(key, list(schema)), where))
        elif "section" in f.metadata:
            values[f.name] = _section(f.metadata["section"], value, where, errors)
        elif "symbols" in f.metadata:
            values[f.name] = _symbols(value, where, errors)
        else:
            try:
                values[f.name] = f.metadata["parse"](value)
            except _Invalid as exc:
                errors.append(ConfigError(str(exc), where))
    built = cls(**values)
    if len(errors) == before and hasattr(built, "_cross_checks"):
        errors += [ConfigError(msg, _join(path, key)) for key, msg in built._cross_checks()]
    return built


def _symbols(raw: Any, path: str, errors: list[ConfigError]) -> dict[str, SymbolConfig]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(ConfigError(f"must be a mapping of symbol names, got {_show(raw)}", path))
        return {}
    symbols = {}
    for name, value in raw.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not _SYMBOL_NAME.fullmatch(name):
            errors.append(ConfigError("a symbol name is upper-case letters and digits, "
                                      "e.g. ETHUSDC", where))
            continue
        symbols[name] = _section(SymbolConfig, value, where, errors)
    return symbols


def validate(raw: Mapping[str, Any]) -> list[ConfigError]:
    """Every problem in a raw camelCase config dict (empty when it is valid)."""
    errors: list[ConfigError] = []
    _section(Config, dict(raw), "", errors)
    return errors


# --- sources --------------------------------------------------------------------------------------

def resolve_path(path: str | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The YAML file to read: `path`, else env MMKIT_CONFIG, else configs/config.yaml if present."""
    env = os.environ if env is None else env
    if path or env.get("MMKIT_CONFIG"):
        return Path(path or env["MMKIT_CONFIG"])
    return DEFAULT_PATH if DEFAULT_PATH.is_file() else None


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; errors name the file (and the line of a syntax error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot read the config file ({reason})", str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML ({type(exc).__name__})", str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"must hold a mapping at the top level, got {_show(data)}", str(path))
    return data


def _warn_if_exposed(path: Path, raw: dict[str, Any], warn: Callable[[str], Any]) -> None:
    gateway = raw.get("gateway")
    holds_secret = isinstance(gateway, dict) and (gateway.get("apiSecret") or gateway.get("apiKey"))
    if holds_secret and path.stat().st_mode & 0o044:
        warn(f"{path} holds a secret and is readable by group/others; chmod 600 {path}")


def _env_key(tail: str, cls: type, prefix: str) -> str:
    """The camelCase key an env var's tail names, ignoring case and underscores."""
    schema = list(_schema(cls))
    wanted = tail.replace("_", "").lower()
    for key in schema:
        if key.lower() == wanted:
            return key
    names = [f"{prefix}{key.upper()}" for key in schema]
    close = difflib.get_close_matches(prefix + tail, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names)}"
    raise ConfigError(f"unknown setting ({hint})", prefix + tail)


def _env_path(name: str) -> tuple[str, ...] | None:
    """The key path an `MMKIT_*` variable sets, or None when it is not a setting."""
    section, _, tail = name.removeprefix("MMKIT_").partition("_")
    section = section.lower()
    schema = _schema(Config)
    if section == "symbols":
        symbol, _, tail = tail.partition("_")
        sub, _, tail = tail.partition("_")
        sections = _schema(SymbolConfig)
        if sub.lower() not in sections:
            raise ConfigError(f"unknown symbol section {sub!r} (known: {', '.join(sections)})",
                              name)
        cls = sections[sub.lower()].metadata["section"]
        key = _env_key(tail, cls, f"MMKIT_SYMBOLS_{symbol}_{sub}_")
        return ("symbols", symbol, sub.lower(), key)
    if section in schema and "section" in schema[section].metadata:
        prefix = f"MMKIT_{section.upper()}_"
        return (section, _env_key(tail, schema[section].metadata["section"], prefix))
    return None


def _set(tree: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], list[ConfigError]]:
    """The settings env variables make, as a camelCase tree, and the unknown-name errors."""
    layer: dict[str, Any] = {}
    errors: list[ConfigError] = []
    for name in sorted(env):
        if name.startswith("MMKIT_") and env[name]:
            try:
                keys = _env_path(name)
            except ConfigError as exc:
                errors.append(exc)
                continue
            if keys:
                _set(layer, keys, env[name])
    for name, keys in ENV_ALIASES.items():
        if env.get(name):
            _set(layer, keys, env[name])
    return layer, errors


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _gather(path, env, overrides, warn) -> tuple[dict[str, Any], Path | None, list[ConfigError]]:
    """The merged raw tree, the YAML file read and the env errors; a bad YAML file raises."""
    env = os.environ if env is None else env
    source = resolve_path(path, env)
    raw: dict[str, Any] = {}
    if source is not None:
        raw = read_yaml(source)
        _warn_if_exposed(source, raw, warn)
    layer, errors = env_layer(env)
    return _merge(_merge(raw, layer), overrides or {}), source, errors


def _build(raw: dict[str, Any], source: Path | None) -> tuple[Config, list[ConfigError]]:
    errors: list[ConfigError] = []
    config = _section(Config, raw, "", errors)
    return replace(config, source=str(source) if source else None), errors


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None, *,
                warn: Callable[[str], Any] = log.warning) -> Config:
    """The effective Config (see the module docstring); the first problem raises ConfigError.
    `env` defaults to os.environ."""
    raw, source, errors = _gather(path, env, overrides, warn)
    config, problems = _build(raw, source)
    if errors or problems:
        raise (errors + problems)[0]
    return config


def check_config(path: str | None = None, env: Mapping[str, str] | None = None,
                 overrides: Mapping[str, Any] | None = None, *,
                 warn: Callable[[str], Any] = log.warning) -> list[str]:
    """Every problem as a one-line message, including an unreadable private key file."""
    try:
        raw, source, errors = _gather(path, env, overrides, warn)
    except ConfigError as exc:
        return [str(exc)]
    config, problems = _build(raw, source)
    errors += problems
    if not errors and config.gateway.private_key_file:
        try:
            config.credentials()
        except ConfigError as exc:
            errors.append(exc)
    if not errors:
        errors += credential_problems(config)
    return [str(error) for error in errors]


def credential_problems(config: Config) -> list[ConfigError]:
    """What keeps this config from signing requests on its venue: Binance (live, testnet)
    needs an API key with its secret or Ed25519 key; the simulator has a built-in test key,
    so `sim` needs none."""
    gateway = config.gateway
    if gateway.venue == "sim":
        return []
    where = f"venue {gateway.venue}"
    if not gateway.api_key:
        return [ConfigError(f"an API key is needed on {where} (MM_GATEWAY_API_KEY and "
                            "MM_GATEWAY_API_SECRET, or gateway.apiKey and gateway.apiSecret "
                            "in the config file)", "gateway.apiKey")]
    if not (gateway.api_secret or gateway.private_key_file):
        return [ConfigError(f"the API key needs its secret on {where} (MM_GATEWAY_API_SECRET, "
                            "or gateway.privateKeyFile for an Ed25519 key)",
                            "gateway.apiSecret")]
    return []


def require_credentials(config: Config) -> None:
    """Raise the first of `credential_problems` (exit 2): a command that signs requests
    calls this before it starts anything."""
    problems = credential_problems(config)
    if problems:
        raise problems[0]


def flag_overrides(obj: Any) -> dict[str, Any]:
    """The global flags (`--venue`, `--base-url`, `--ws-url`) as an overrides tree."""
    flags = {"venue": getattr(obj, "venue", None), "baseUrl": getattr(obj, "base_url", None),
             "wsUrl": getattr(obj, "ws_url", None)}
    gateway = {key: value for key, value in flags.items() if value is not None}
    return {"gateway": gateway} if gateway else {}


def config_from_ctx(obj: Any) -> Config:
    """The effective Config for a command, from the root context's `GlobalOptions`."""
    return load_config(getattr(obj, "config_path", None), overrides=flag_overrides(obj))
