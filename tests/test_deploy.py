"""deploy/ and scripts/run_runner.sh: every file parses, the Prometheus rules and the Grafana
dashboards use only the metrics (and labels) of docs/operations.md, promtool accepts the config,
the rules, the rule unit tests and every dashboard query, the systemd unit verifies, and the
runner script never starts the live venue without MMKIT_LIVE=1.

promtool (Debian package `prometheus`; .ci/run fetches it) and systemd-analyze are optional:
absent, their tests skip with the reason, except that MMKIT_REQUIRE_PROMTOOL=1 makes a missing
promtool an error. Nothing here touches the network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mmkit.ops.logs import EVENTS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
UNIT = DEPLOY / "systemd" / "mmkit@.service"
PROMTAIL = DEPLOY / "promtail" / "promtail.yml"
RUNNER = ROOT / "scripts" / "run_runner.sh"
OPERATIONS = ROOT / "docs" / "operations.md"

DASHBOARDS = ("trader", "engineering")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# Labels every scraped series has, and the histogram's bucket bound.
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan", "atan2", "start", "end"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


# --- the documented metrics ---------------------------------------------------------------------

def documented() -> dict[str, tuple[str, set[str]]]:
    """docs/operations.md's metric table: name -> (type, labels)."""
    text = OPERATIONS.read_text()
    section = text[text.index("\n## Metrics\n"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\|\s*`(runner_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|",
                      section, re.M)
    assert rows, "no metric rows found in docs/operations.md"
    return {name: (kind, {label.strip() for label in labels.split(",") if label.strip()})
            for name, kind, labels in rows}


DOC = documented()


def resolve(series: str) -> tuple[str, str, set[str]]:
    """A name as scraped -> (documented name, type, the labels it may carry); AssertionError
    when undocumented or used with the wrong suffix for its type."""
    if series == "up":
        return "up", "gauge", set(TARGET_LABELS)
    for name, (kind, labels) in DOC.items():
        for suffix in SUFFIXES[kind]:
            if series == name + suffix:
                extra = {"le"} if suffix == "_bucket" else set()
                return name, kind, labels | TARGET_LABELS | extra
    bare = re.sub(r"_(total|bucket|sum|count)$", "", series)
    if bare in DOC:
        raise AssertionError(f"{series}: {bare} is a {DOC[bare][0]}, scraped as "
                             f"{' / '.join(bare + s for s in SUFFIXES[DOC[bare][0]])}")
    raise AssertionError(f"{series} is not in docs/operations.md's metric table")


def strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def check_expr(expr: str, where: str) -> tuple[set[str], set[str]]:
    """Every series an expression reads is documented, every label it matches or groups by
    exists on them. Returns (the series, the labels available)."""
    text = strip_strings(expr)
    text = re.sub(r"\$\{?\w+\}?", " 0 ", text)             # Grafana variables
    selectors = re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", text)
    grouping = GROUPING.findall(text)
    bare = GROUPING.sub(" ", text)
    bare = re.sub(r"\{[^}]*\}", " ", bare)                  # label matchers
    bare = re.sub(r"\[[^\]]*\]", " ", bare)                 # ranges, subqueries
    series = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", bare):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS or re.fullmatch(r"\d[\w.]*", name):
            continue
        series.add(name)
    assert series or "vector(" in text, f"{where}: reads no metric: {expr}"
    available: set[str] = set(TARGET_LABELS)
    for name in series:
        try:
            available |= resolve(name)[2]
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}\n  in: {expr}") from None
    for name, matchers in selectors:
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
        allowed = resolve(name)[2]
        assert labels <= allowed, (f"{where}: {name} has no label {sorted(labels - allowed)} "
                                   f"(it has {sorted(allowed)})\n  in: {expr}")
    for _, labels in grouping:
        used = {label.strip() for label in labels.split(",") if label.strip()}
        assert used <= available, (f"{where}: grouping by {sorted(used - available)}, which none "
                                   f"of {sorted(series)} has\n  in: {expr}")
    return series, available


# --- the files ----------------------------------------------------------------------------------

def load(path: Path):
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(
        path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load(PROM / "alerts.yml")["groups"] for rule in group["rules"]]


def panels(dashboard: dict):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict):
    """(where, expr, legend) of every panel target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target["expr"], \
                target.get("legendFormat", "")


def test_every_deploy_file_parses():
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json"))
    names = {p.relative_to(DEPLOY).as_posix() for p in files}
    assert {"prometheus/prometheus.yml", "prometheus/alerts.yml", "grafana/trader.json",
            "grafana/engineering.json", "promtail/promtail.yml"} <= names
    for path in files:
        assert isinstance(load(path), dict), path
    assert (DEPLOY / "README.md").read_text().strip()


def test_the_metric_table_parses():
    assert len(DOC) >= 20
    assert DOC["runner_rest_requests"] == ("counter", {"method", "endpoint", "status"})
    assert DOC["runner_risk_state"] == ("gauge", {"symbol", "mode"})
    assert DOC["runner_tick_to_order_seconds"] == ("histogram", set())
    with pytest.raises(AssertionError, match="not in docs"):
        check_expr("rate(runner_made_up_total[5m])", "self-test")
    with pytest.raises(AssertionError, match="is a counter"):
        check_expr("rate(runner_quotes[5m])", "self-test")
    with pytest.raises(AssertionError, match="no label"):
        check_expr('runner_fees_quote_total{symbol="ETHUSDC"}', "self-test")
    with pytest.raises(AssertionError, match="grouping by"):
        check_expr("sum by (endpoint) (rate(runner_fills_total[5m]))", "self-test")
    assert check_expr('histogram_quantile(0.99, sum by (le) (rate('
                      'runner_tick_to_order_seconds_bucket{job="mmkit"}[$__rate_interval])))'
                      ' > 0.1 and on (job) up == 1', "self-test")[0] == {
        "runner_tick_to_order_seconds_bucket", "up"}


def test_prometheus_scrapes_the_runner_every_5s():
    config = load(PROM / "prometheus.yml")
    job, = (job for job in config["scrape_configs"] if job["job_name"] == "mmkit")
    assert job["scrape_interval"] == "5s"
    assert ["127.0.0.1:9100"] in [sc["targets"] for sc in job["static_configs"]]
    assert "alerts.yml" in config["rule_files"]


def test_alerts_use_only_documented_metrics_and_cover_the_brief():
    rules = alert_rules()
    read: dict[str, set[str]] = {}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule.get("alert")
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        read[rule["alert"]] = check_expr(rule["expr"], rule["alert"])[0]
    assert len(read) == len(rules), "duplicate alert names"
    used = set().union(*read.values())
    for series in ("up", "runner_risk_state", "runner_book_stale", "runner_quotes_total",
                   "runner_rest_errors_total", "runner_ws_reconnects_total",
                   "runner_tick_to_order_seconds_bucket", "runner_realized_pnl_quote",
                   "runner_unrealized_pnl_quote", "runner_fees_quote_total",
                   "runner_post_only_rejects_total", "runner_risk_limit"):
        assert series in used, f"no alert reads {series}"
    halted = next(r for r in rules if "runner_risk_state" in read[r["alert"]])
    assert 'mode="halted"' in halted["expr"] and halted["labels"]["severity"] == "critical"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboards_are_importable_and_use_only_documented_metrics(name):
    board = load(GRAFANA / f"{name}.json")
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] and board["title"] and board.get("id") is None
    inputs = {i["name"]: i for i in board["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    read = set()
    for panel in panels(board):
        assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if "targets" in panel:
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    queries = list(dashboard_queries(board))
    assert len(queries) >= 15
    for where, expr, legend in queries:
        series, available = check_expr(expr, where)
        read |= series
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
            assert label in available, f"{where}: legend uses {label}, not a label of {series}"
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "${DS_PROMETHEUS}"
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            assert inner, query
            series, available = check_expr(inner.group(1), f"{name} / ${var['name']}")
            assert inner.group(2) in available
    wanted = {
        "trader": {"runner_realized_pnl_quote", "runner_unrealized_pnl_quote",
                   "runner_fees_quote_total", "runner_fills_total", "runner_position",
                   "runner_inventory_ratio", "runner_risk_state", "runner_mid_price",
                   "runner_spread_ticks", "runner_config_info", "runner_risk_limit",
                   "runner_depth_fill_slippage_bps_bucket", "runner_depth_fill_orders_total",
                   "runner_depth_fill_max_slippage_bps"},
        "engineering": {"runner_rest_requests_total", "runner_rest_errors_total",
                        "runner_rest_latency_seconds_bucket",
                        "runner_tick_to_order_seconds_bucket", "runner_ws_reconnects_total",
                        "runner_ws_disconnects_total", "runner_book_resyncs_total",
                        "runner_book_age_seconds", "runner_book_age_max_seconds",
                        "runner_book_stale", "runner_orders_total"},
    }[name]
    assert wanted <= read, f"{name} lacks {sorted(wanted - read)}"
    # parameters come from the runner (runner_config_info, runner_risk_limit), never from
    # hand-kept text or dashboard variables that go stale when the config changes
    assert not any(p["type"] == "text" for p in panels(board)), "a hand-written text panel"
    assert not any(v["type"] == "textbox" for v in board["templating"]["list"])
    if name == "trader":
        params, = (p for p in panels(board) if p["title"] == "Key parameters")
        assert "runner_config_info" in params["targets"][0]["expr"]


def test_dashboard_uids_differ():
    assert len({load(GRAFANA / f"{n}.json")["uid"] for n in DASHBOARDS}) == len(DASHBOARDS)


# --- promtail -------------------------------------------------------------------------------

def test_promtail_tails_the_units_and_parses_mmkit_json_logs():
    config = load(PROMTAIL)
    job, = (job for job in config["scrape_configs"] if "journal" in job)
    keep, = (r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert keep["source_labels"] == ["__journal__systemd_unit"]
    pattern = re.compile(keep["regex"])              # Prometheus relabel regexes are anchored
    assert pattern.fullmatch("mmkit@ETHUSDC.service")
    assert not pattern.fullmatch("ssh.service") and not pattern.fullmatch("mmkit.service")
    stages = {key: stage[key] for stage in job["pipeline_stages"] for key in stage}
    fields = stages["json"]["expressions"]
    assert {"ts", "level", "event", "logger", "msg", "symbol"} <= set(fields)
    assert set(stages["labels"]) == {"level", "event", "symbol"}   # low cardinality only
    assert stages["timestamp"]["source"] == "ts"
    assert stages["timestamp"]["format"] == "RFC3339Nano"
    assert stages["timestamp"]["action_on_failure"] == "skip"

    # The fields exist in what mmkit really writes.
    from mmkit.ops.logs import JsonFormatter

    record = logging.makeLogRecord({"name": "mmkit.feeds", "levelno": logging.WARNING,
                                    "levelname": "WARNING",
                                    "msg": "book_resync symbol=%s reason=%s%s",
                                    "args": ("ETHUSDC", "gap", "")})
    line = json.loads(JsonFormatter().format(record))
    for key in ("ts", "level", "event", "logger", "msg", "symbol"):
        assert fields[key] in line, key
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])  # RFC 3339
    assert (line["level"], line["event"]) == ("warning", "book_resync")


# --- promtool -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    reason = ("promtool not on PATH (Debian: apt-get install prometheus, or .ci/run's "
              "download); the Prometheus checks need it")
    if os.environ.get("MMKIT_REQUIRE_PROMTOOL") == "1":
        pytest.fail(reason + " and MMKIT_REQUIRE_PROMTOOL=1")
    pytest.skip(reason)


def run_promtool(promtool: str, *args: str, cwd: Path = PROM) -> str:
    proc = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{out}"
    return out


def test_promtool_check_config(promtool):
    out = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_promtool_check_rules(promtool):
    out = run_promtool(promtool, "check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_promtool_alert_unit_tests(promtool):
    run_promtool(promtool, "test", "rules", "alerts_test.yml")


def test_promtool_parses_every_dashboard_query(promtool, tmp_path):
    """Each query, with Grafana's variables filled in, as a recording rule: promtool parses it."""
    rules = []
    for name in DASHBOARDS:
        board = load(GRAFANA / f"{name}.json")
        values = {"__rate_interval": "1m", "__interval": "15s", "__range": "6h"}
        for var in board["templating"]["list"]:
            values[var["name"]] = var["query"] if var["type"] == "textbox" else ".*"
        for i, (_where, expr, _legend) in enumerate(dashboard_queries(board)):
            filled = re.sub(r"\$\{?(\w+)\}?", lambda m, v=values: v[m.group(1)], expr)
            rules.append({"record": f"dashboard:{name}:q{i}", "expr": filled})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = run_promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in out


# --- systemd ------------------------------------------------------------------------------------

def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_runs_the_script_as_a_hardened_service():
    s = unit_settings()
    assert s["ExecStart"] == ["/opt/mmkit/scripts/run_runner.sh %i"]
    assert s["EnvironmentFile"] == ["/etc/mmkit/%i.env"]
    assert s["User"] != ["root"] and s["WorkingDirectory"]
    assert s["Restart"] == ["on-failure"] and s["RestartSec"]
    assert s["StartLimitIntervalSec"] and s["StartLimitBurst"]
    assert s["KillSignal"] == ["SIGTERM"] and int(s["TimeoutStopSec"][0]) >= 30
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")):
        assert s[key] == [value], key
    assert s["MemoryMax"] and any("/var/lib/mmkit/%i" in v for v in s["ReadWritePaths"])


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze not on PATH")
    unit = tmp_path / "mmkit@ETHUSDC.service"
    unit.write_text(UNIT.read_text().replace("/opt/mmkit/scripts/run_runner.sh", str(RUNNER)))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=30)
    mentions = [line for line in (proc.stdout + proc.stderr).splitlines() if "mmkit" in line]
    assert proc.returncode == 0 and not mentions, proc.stdout + proc.stderr


# --- scripts/run_runner.sh ----------------------------------------------------------------------

def test_runner_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(RUNNER)], check=True, timeout=10)
    text = RUNNER.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert os.access(RUNNER, os.X_OK)
    assert re.search(r"^exec ", text, re.M)
    assert "set -x" not in text and not re.search(r"\$\{?MM_GATEWAY_API_(KEY|SECRET)", text)


def test_runner_script_logs_catalogued_events():
    said = re.findall(r"\bsay (\w+) (\w+) ", RUNNER.read_text())
    assert {event for _, event in said} >= {"runner_start", "runner_refused"}
    for level, event in said:
        assert (EVENTS[event].level, EVENTS[event].logger) == (level, "run_runner"), event


SECRET = "s3cr3t-never-printed"
STUB = """#!/usr/bin/env bash
echo $$ > "$STUB_OUT.pid"
printf '%s\\n' "$@" > "$STUB_OUT"
"""


@pytest.fixture
def sandbox(tmp_path):
    """A fake venv with a stub `mmkit` (also on PATH) that records its argv and pid, and
    configs for each venue."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "mmkit"
    stub.write_text(STUB)
    stub.chmod(0o755)
    for venue in ("live", "testnet", "sim"):
        (tmp_path / f"{venue}.yaml").write_text(
            "# fake\ngateway:\n  apiKey:\n  venue: " + ("'live'  # real money\n"
                                                        if venue == "live" else venue + "\n")
            + "metrics:\n  listen: 127.0.0.1:9100\n")
    (tmp_path / "novenue.yaml").write_text("symbols:\n  ETHUSDC:\n    risk:\n      venue: live\n")
    return tmp_path


def run_runner(sandbox: Path, *args: str, script: Path = RUNNER, **env: str):
    base = {"PATH": f"{sandbox / 'venv' / 'bin'}:/usr/bin:/bin", "HOME": str(sandbox),
            "MMKIT_VENV": str(sandbox / "venv"), "STUB_OUT": str(sandbox / "argv"),
            "MM_GATEWAY_API_KEY": SECRET, "MM_GATEWAY_API_SECRET": SECRET}
    base.update(env)
    base = {k: v for k, v in base.items() if v is not None}
    proc = subprocess.Popen([str(script), *args], env=base, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=10)
    assert SECRET not in out + err
    argv = sandbox / "argv"
    called = argv.read_text().splitlines() if argv.exists() else None
    pid = int((sandbox / "argv.pid").read_text()) if argv.exists() else None
    if argv.exists():
        argv.unlink()
    return proc, called, pid, err


def test_runner_refuses_live_without_mmkit_live(sandbox):
    for env in ({"MMKIT_CONFIG": str(sandbox / "live.yaml")},
                {"MMKIT_CONFIG": str(sandbox / "live.yaml"), "MMKIT_LIVE": "yes"},
                {"MMKIT_CONFIG": str(sandbox / "testnet.yaml"), "MMKIT_GATEWAY_VENUE": "live"}):
        proc, called, _, err = run_runner(sandbox, "ETHUSDC", **env)
        assert proc.returncode == 2 and called is None, env
        logged = json.loads(err.strip().splitlines()[-1])
        assert logged["level"] == "error" and "MMKIT_LIVE=1" in logged["msg"]
        assert logged["event"] == "runner_refused"
        assert EVENTS["runner_refused"].level == "error"   # the script's events are catalogued
    proc, called, _, _ = run_runner(sandbox, "ETHUSDC", "--live",
                                    MMKIT_CONFIG=str(sandbox / "testnet.yaml"))
    assert proc.returncode == 2 and called is None


def test_runner_passes_live_only_with_mmkit_live(sandbox):
    proc, called, pid, _ = run_runner(sandbox, "ethusdc", "--position", "0",
                                      MMKIT_CONFIG=str(sandbox / "live.yaml"), MMKIT_LIVE="1")
    assert proc.returncode == 0
    assert called == ["--config", str(sandbox / "live.yaml"), "run", "--symbol", "ETHUSDC",
                      "--lines", "--live", "--position", "0"]
    assert pid == proc.pid, "mmkit must be exec'd so that SIGTERM reaches it"
    for config in ("testnet.yaml", "sim.yaml", "novenue.yaml"):
        proc, called, _, _ = run_runner(sandbox, "BTCUSDT", MMKIT_CONFIG=str(sandbox / config))
        assert proc.returncode == 0, config
        assert called == ["--config", str(sandbox / config), "run", "--symbol", "BTCUSDT",
                          "--lines"]


def test_runner_finds_mmkit_on_path_and_rejects_bad_input(sandbox):
    script = sandbox / "scripts" / "run_runner.sh"     # no venv beside this copy
    script.parent.mkdir()
    shutil.copy2(RUNNER, script)
    if not Path("/opt/mmkit/venv/bin/mmkit").exists():
        proc, called, _, _ = run_runner(sandbox, "ETHUSDC", script=script, MMKIT_VENV=None,
                                        MMKIT_CONFIG=str(sandbox / "sim.yaml"))
        assert proc.returncode == 0 and called[:5] == ["--config", str(sandbox / "sim.yaml"),
                                                        "run", "--symbol", "ETHUSDC"]
    for args, env in ((["ETH/USDC"], {"MMKIT_CONFIG": str(sandbox / "sim.yaml")}),
                      ([], {"MMKIT_CONFIG": str(sandbox / "sim.yaml")}),
                      (["ETHUSDC"], {"MMKIT_CONFIG": str(sandbox / "missing.yaml")}),
                      (["ETHUSDC"], {"MMKIT_CONFIG": str(sandbox / "sim.yaml"),
                                     "MMKIT_VENV": str(sandbox / "novenv")})):
        proc, called, _, _ = run_runner(sandbox, *args, **env)
        assert proc.returncode == 2 and called is None, (args, env)


def test_runner_default_config_is_etc_mmkit(sandbox):
    if Path("/etc/mmkit/config.yaml").exists():
        pytest.skip("/etc/mmkit/config.yaml exists on this machine")
    proc, called, _, err = run_runner(sandbox, "ETHUSDC", MMKIT_CONFIG=None)
    assert proc.returncode == 2 and called is None and "/etc/mmkit/config.yaml" in err

