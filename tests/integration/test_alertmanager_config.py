"""The shipped alerts/alertmanager.yml, checked with the real amtool and a real Alertmanager.

Routing is checked with `amtool config routes test` for every alert of contract section 6 and
issue 4; grouping and inhibition by posting alerts to a running Alertmanager and reading its
API and the notifications a real webhook receiver (started here) gets.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from budgetwatch.dev.stack import (
    ROOT,
    TOOLS_BIN,
    Alertmanager,
    NotificationSink,
    http_get,
    run_tool,
    start_alertmanager,
    wait_until,
)

CONFIG = ROOT / "alerts" / "alertmanager.yml"
NS = "Synthorg"


def amtool(*args: str | Path) -> tuple[int, str]:
    result = run_tool("amtool", *args)
    return result.returncode, result.stdout + result.stderr


# --- static checks --------------------------------------------------------------------------


def test_shipped_config_passes_check_config() -> None:
    code, out = amtool("check-config", CONFIG)
    assert code == 0, out
    # The templates for the Slack and email examples are parsed too.
    assert "1 templates" in out, out


def with_examples() -> str:
    """The shipped config with the commented Slack and email examples uncommented."""
    head, receivers = CONFIG.read_text().split("\nreceivers:\n", 1)
    # Example lines are commented YAML (`# key:` or `#   nested`); prose comments are sentences.
    uncommented = re.sub(r"(?m)^(\s*)# ([a-z_]+:.*|\s+\S.*)$", r"\1\2", receivers)
    assert "slack_configs:" in uncommented and "email_configs:" in uncommented
    return head + "\nreceivers:\n" + uncommented


def test_commented_slack_and_email_examples_are_valid(tmp_path: Path) -> None:
    """Uncommenting the examples, as a user would, gives a config Alertmanager accepts."""
    text = with_examples()
    config = yaml.safe_load(text)
    critical = next(r for r in config["receivers"] if r["name"] == "budget-critical")
    assert critical["slack_configs"][0]["api_url_file"] == "secrets/slack-webhook-url"
    assert critical["email_configs"][0]["auth_password_file"] == "secrets/smtp-password"
    (tmp_path / "alertmanager.yml").write_text(text)
    shutil.copytree(ROOT / "alerts" / "templates", tmp_path / "templates")
    code, out = amtool("check-config", tmp_path / "alertmanager.yml")
    assert code == 0, out


def test_no_secret_or_url_is_written_in_the_config() -> None:
    """Receivers read their URLs and passwords from files, relative to Alertmanager's cwd."""
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            assert "url" not in webhook, receiver["name"]
            assert webhook["url_file"] == "secrets/budget-webhook-url"
    assert "http://" not in re.sub(r"(?m)^\s*#.*$", "", CONFIG.read_text())


def test_group_by_alert_agent_and_window() -> None:
    route = yaml.safe_load(CONFIG.read_text())["route"]
    assert route["group_by"] == ["alertname", "gen_ai_agent_id", "window"]
    # Sub-routes inherit it; only low coverage groups coarser (one notification for all
    # agents: one missing price hits them all), and only that alert takes that route.
    coarser = [r for r in route.get("routes", []) if "group_by" in r]
    assert coarser == [
        {
            "receiver": "budget-webhook",
            "matchers": ['alertname=~".+BudgetCoverageLow"'],
            "group_by": ["alertname"],
        }
    ]


def _labels(
    alertname: str, *, agent: str | None, window: str | None, level: str | None
) -> dict[str, str]:
    severity = "warning" if level in ("warning", None) else "critical"
    labels = {"alertname": alertname, "severity": severity}
    if level is not None:
        labels["budget_level"] = level
    if agent is not None:
        labels["gen_ai_agent_id"] = agent
    if window is not None:
        labels["window"] = window
    return labels


ROUTE_CASES: list[tuple[str, dict[str, str], str]] = (
    [
        (
            f"agent-{level}-{window}",
            _labels(f"{NS}AgentBudget{level.title()}", agent="cto", window=window, level=level),
            "budget-webhook" if level == "warning" else "budget-critical",
        )
        for level in ("warning", "critical", "exhausted")
        for window in ("daily", "monthly")
    ]
    + [
        (
            f"org-{level}-{window}",
            _labels(f"{NS}Budget{level.title()}", agent=None, window=window, level=level),
            "budget-webhook" if level == "warning" else "budget-critical",
        )
        for level in ("warning", "critical", "exhausted")
        for window in ("daily", "monthly")
    ]
    + [
        (
            "forecast",
            _labels(f"{NS}AgentBudgetExhaustionForecast", agent="cto", window="daily", level=None),
            "budget-webhook",
        ),
        (
            "telemetry-absent",
            {"alertname": f"{NS}BudgetTelemetryAbsent", "severity": "critical"},
            "budget-critical",
        ),
        (
            "forecast-overrun",
            {
                "alertname": f"{NS}AgentBudgetForecastOverrun",
                "gen_ai_agent_id": "cto",
                "window": "monthly",
                "severity": "warning",
            },
            "budget-webhook",
        ),
        (
            "burn-fast",
            {
                "alertname": f"{NS}AgentBudgetBurnRateHigh",
                "gen_ai_agent_id": "cto",
                "long_window": "1h",
                "short_window": "5m",
                "severity": "critical",
            },
            "budget-critical",
        ),
        (
            "burn-slow",
            {
                "alertname": f"{NS}BudgetBurnRateHigh",
                "long_window": "3d",
                "short_window": "6h",
                "severity": "warning",
            },
            "budget-webhook",
        ),
        (
            "spike",
            {"alertname": f"{NS}AgentSpendSpike", "gen_ai_agent_id": "cto", "severity": "critical"},
            "budget-critical",
        ),
        # Per-task cost and coverage (issue 16): warnings.
        (
            "task-over-budget",
            {
                "alertname": f"{NS}AgentTaskOverBudget",
                "gen_ai_agent_id": "cto",
                "severity": "warning",
            },
            "budget-webhook",
        ),
        (
            "coverage-low",
            {
                "alertname": f"{NS}BudgetCoverageLow",
                "gen_ai_agent_id": "cto",
                "severity": "warning",
            },
            "budget-webhook",
        ),
        # Anything else (no severity) still reaches someone.
        ("unlabelled", {"alertname": "SomethingElse"}, "budget-webhook"),
    ]
)


@pytest.mark.parametrize(
    ("labels", "receiver"), [c[1:] for c in ROUTE_CASES], ids=[c[0] for c in ROUTE_CASES]
)
def test_routes(labels: dict[str, str], receiver: str) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    code, out = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receiver}",
        *args,
    )
    assert code == 0, out
    assert out.strip().splitlines()[0] == receiver, out
    # And only that one: a critical alert must not also go to the warning receiver.
    other = "budget-critical" if receiver == "budget-webhook" else "budget-webhook"
    code, out = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={other}", *args
    )
    assert code != 0, out


# --- a real Alertmanager --------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[NotificationSink]:
    with NotificationSink() as r:
        yield r


def start_test_alertmanager(
    workdir: Path, config: dict[str, Any], secrets: dict[str, str]
) -> Alertmanager:
    """A real Alertmanager on `config` with shorter waits, its secrets in workdir/secrets."""
    config["route"].update(group_wait="2s", group_interval="2s")
    config["templates"] = [str(ROOT / "alerts" / "templates" / "*.tmpl")]
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    # The receivers' url_file is relative to Alertmanager's working directory.
    (workdir / "secrets").mkdir()
    for name, value in secrets.items():
        (workdir / "secrets" / name).write_text(value + "\n")
    return start_alertmanager(workdir, config=path)


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: NotificationSink) -> Iterator[Alertmanager]:
    """The shipped config with shorter waits; routing, inhibition and receivers unchanged."""
    shipped = yaml.safe_load(CONFIG.read_text())
    config = yaml.safe_load(CONFIG.read_text())
    am = start_test_alertmanager(tmp_path, config, {"budget-webhook-url": receiver.url})
    for key in ("inhibit_rules", "receivers"):
        assert config[key] == shipped[key]
    assert config["route"]["routes"] == shipped["route"]["routes"]
    try:
        yield am
    finally:
        am.server.stop()


def _post_raw(am: Alertmanager, body: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{am.url}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def _post(am: Alertmanager, alerts: list[dict[str, str]]) -> None:
    """Fire alerts as Prometheus does (no endsAt: they last until resolve_timeout)."""
    now = datetime.now(UTC).isoformat()
    _post_raw(
        am,
        [
            {
                "labels": labels,
                "annotations": {
                    "summary": f"{labels['alertname']} {labels.get('gen_ai_agent_id', 'org')}",
                    "description": "value 95.0 of limit 20 USD",
                    "runbook_url": "alerts/runbooks.md#agent-budget-warning",
                },
                "startsAt": now,
            }
            for labels in alerts
        ],
    )


def _key(labels: dict[str, str]) -> tuple[str, str, str]:
    return (labels["alertname"], labels.get("gen_ai_agent_id", ""), labels.get("window", ""))


def _state(am: Alertmanager, **params: str) -> set[tuple[str, str, str]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = http_get(f"{am.url}/api/v2/alerts?{query}")
    assert status == 200, body
    return {_key(a["labels"]) for a in json.loads(body)}


def test_inhibition_and_notifications(
    alertmanager: Alertmanager, receiver: NotificationSink
) -> None:
    am = alertmanager

    def agent(level: str, who: str, window: str = "daily") -> dict[str, str]:
        return _labels(f"{NS}AgentBudget{level.title()}", agent=who, window=window, level=level)

    def org(level: str, window: str = "daily") -> dict[str, str]:
        return _labels(f"{NS}Budget{level.title()}", agent=None, window=window, level=level)

    def forecast(who: str) -> dict[str, str]:
        name = f"{NS}AgentBudgetExhaustionForecast"
        return _labels(name, agent=who, window="daily", level=None)

    sources = [agent("exhausted", "cto"), org("critical")]
    inhibited = [
        agent("critical", "cto"),
        agent("warning", "cto"),
        org("warning"),
        forecast("cto"),
    ]
    free = [
        agent("warning", "intern"),  # another agent
        agent("warning", "cto", "monthly"),  # the same agent, another window
        forecast("intern"),
    ]
    # Sources first, so that the inhibitor knows them before the targets' groups flush.
    _post(am, sources)
    wait_until(lambda: len(am.alerts()) == len(sources), 10, "source alerts listed")
    _post(am, inhibited + free)
    wait_until(lambda: len(am.alerts()) == 9, 10, "all alerts listed")

    want_inhibited = {_key(a) for a in inhibited}
    want_active = {_key(a) for a in sources + free}
    wait_until(
        lambda: _state(am, inhibited="true", active="false") == want_inhibited,
        10,
        "inhibition",
    )
    assert _state(am, inhibited="false") == want_active
    # Each inhibited alert names what inhibits it: the higher level of its own agent and window.
    listed = am.alerts()
    fingerprints = {_key(a["labels"]): a["fingerprint"] for a in listed}
    for a in listed:
        key, by = _key(a["labels"]), set(a["status"]["inhibitedBy"])
        if key not in want_inhibited:
            assert by == set(), a
        elif key[1] == "cto":
            assert by == {fingerprints[_key(agent("exhausted", "cto"))]}, a
        else:
            assert by == {fingerprints[_key(org("critical"))]}, a

    # The webhook gets one notification per uninhibited alert group, and nothing else.
    def notified() -> dict[tuple[str, str, str], dict[str, Any]]:
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        for n in receiver.payloads():
            for alert in n["alerts"]:
                out[_key(alert["labels"])] = n
        return out

    wait_until(lambda: set(notified()) >= want_active, 20, "notifications", interval=0.5)
    # Let a few group intervals pass: an inhibited alert must still not be notified.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: bool(set(notified()) & want_inhibited), 5, "", interval=0.5)
    got = notified()
    assert set(got) == want_active, sorted(got)
    for key, n in got.items():
        assert n["status"] == "firing"
        assert len(n["alerts"]) == 1  # grouped by alertname, agent and window
        group = {"alertname": key[0], "gen_ai_agent_id": key[1], "window": key[2]}
        assert n["groupLabels"] == {k: v for k, v in group.items() if v}, n["groupLabels"]
        severity = n["alerts"][0]["labels"]["severity"]
        want_receiver = "budget-critical" if severity == "critical" else "budget-webhook"
        assert n["receiver"] == want_receiver, n
    assert got[_key(agent("warning", "intern"))]["commonLabels"]["gen_ai_agent_id"] == "intern"
    assert got[_key(agent("exhausted", "cto"))]["commonLabels"]["gen_ai_agent_id"] == "cto"


def test_early_warning_inhibition(alertmanager: Alertmanager) -> None:
    """A faster burn-rate pair silences the slower ones of the same agent (and of the org for
    the org's alert); an exhausted monthly budget silences the forecast of its overrun."""
    am = alertmanager

    def burn(long: str, short: str, severity: str, who: str | None) -> dict[str, str]:
        name = f"{NS}AgentBudgetBurnRateHigh" if who else f"{NS}BudgetBurnRateHigh"
        labels = {"alertname": name, "long_window": long, "short_window": short}
        labels["severity"] = severity
        if who:
            labels["gen_ai_agent_id"] = who
        return labels

    def overrun(who: str) -> dict[str, str]:
        return {
            "alertname": f"{NS}AgentBudgetForecastOverrun",
            "gen_ai_agent_id": who,
            "window": "monthly",
            "severity": "warning",
        }

    def key(labels: dict[str, str]) -> tuple[str, str, str]:
        return (
            labels["alertname"],
            labels.get("gen_ai_agent_id", ""),
            labels.get("long_window", ""),
        )

    exhausted = _labels(
        f"{NS}AgentBudgetExhausted", agent="cto", window="monthly", level="exhausted"
    )
    sources = [burn("1h", "5m", "critical", "cto"), burn("6h", "30m", "critical", "ops"), exhausted]
    inhibited = [
        burn("6h", "30m", "critical", "cto"),
        burn("3d", "6h", "warning", "cto"),
        burn("3d", "6h", "warning", "ops"),
        overrun("cto"),
    ]
    free = [
        burn("3d", "6h", "warning", "intern"),
        burn("3d", "6h", "warning", None),
        overrun("intern"),
    ]
    _post(am, sources)
    wait_until(lambda: len(am.alerts()) == len(sources), 10, "source alerts listed")
    _post(am, inhibited + free)
    total = len(sources + inhibited + free)
    wait_until(lambda: len(am.alerts()) == total, 10, "all alerts listed")

    def state(inhibited_: bool) -> set[tuple[str, str, str]]:
        return {
            key(a["labels"]) for a in am.alerts() if bool(a["status"]["inhibitedBy"]) == inhibited_
        }

    want = {key(a) for a in inhibited}
    wait_until(lambda: state(True) == want, 10, "inhibition")
    assert state(False) == {key(a) for a in sources + free}


def test_lower_level_notifies_when_the_higher_one_resolves(
    alertmanager: Alertmanager, receiver: NotificationSink
) -> None:
    """Inhibition is not silencing: once Exhausted resolves, the Critical alert comes through."""
    am = alertmanager
    exhausted = _labels(f"{NS}AgentBudgetExhausted", agent="cto", window="daily", level="exhausted")
    critical = _labels(f"{NS}AgentBudgetCritical", agent="cto", window="daily", level="critical")
    _post(am, [exhausted])
    wait_until(lambda: len(am.alerts()) == 1, 10, "source alert listed")
    _post(am, [critical])
    wait_until(
        lambda: _state(am, inhibited="true", active="false") == {_key(critical)}, 10, "inhibition"
    )
    wait_until(lambda: len(receiver.payloads()) >= 1, 20, "first notification", interval=0.5)
    assert {_key(a["labels"]) for n in receiver.payloads() for a in n["alerts"]} == {
        _key(exhausted)
    }

    # Resolve Exhausted (endsAt now), as Prometheus does when the alert stops firing.
    now = datetime.now(UTC).isoformat()
    _post_raw(am, [{"labels": exhausted, "startsAt": now, "endsAt": now}])
    wait_until(
        lambda: any(
            _key(a["labels"]) == _key(critical) and n["status"] == "firing"
            for n in receiver.payloads()
            for a in n["alerts"]
        ),
        20,
        "critical notified after exhausted resolved",
        interval=0.5,
    )


def test_slack_example_renders_the_templates(tmp_path: Path, receiver: NotificationSink) -> None:
    """The Slack example, pointed at a local endpoint, sends the templated title and text."""
    config = yaml.safe_load(with_examples())
    for r in config["receivers"]:
        r.pop("email_configs", None)  # no SMTP server here
    am = start_test_alertmanager(
        tmp_path,
        config,
        {"budget-webhook-url": receiver.url, "slack-webhook-url": receiver.url + "/slack"},
    )
    try:
        labels = _labels(f"{NS}AgentBudgetCritical", agent="cto", window="daily", level="critical")
        _post(am, [labels])

        def slack() -> list[dict[str, Any]]:
            return [n for n in receiver.payloads() if "attachments" in n]

        wait_until(lambda: bool(slack()), 20, "the Slack notification", interval=0.5)
    finally:
        am.server.stop()
    message = slack()[0]
    assert message["channel"] == "#llm-budgets"
    attachment = message["attachments"][0]
    assert attachment["title"] == f"[FIRING:1] {NS}AgentBudgetCritical agent=cto window=daily"
    text = attachment["text"]
    assert f"{NS}AgentBudgetCritical cto" in text  # the summary annotation
    assert "value 95.0 of limit 20 USD" in text  # the description
    assert "Runbook: alerts/runbooks.md#agent-budget-warning" in text
    assert re.search(r"Started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text), text


# --- the runbooks' commands, run against the real tools -----------------------------------

RUNBOOKS = ROOT / "alerts" / "runbooks.md"


def test_runbook_queries_parse(tmp_path: Path) -> None:
    """Every query the runbooks tell you to paste is valid PromQL (promtool's own parser)."""
    blocks = re.findall(r"```promql\n(.*?)```", RUNBOOKS.read_text(), flags=re.S)
    queries = [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(queries) >= 30, queries
    rules = {
        "groups": [
            {
                "name": "runbook-queries",
                "rules": [
                    {"record": f"runbook:query_{i}", "expr": q} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "runbook-queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = run_tool("promtool", "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runbook_silence_commands_silence_their_alert(alertmanager: Alertmanager) -> None:
    """The `amtool silence add` lines work as written and mute exactly the alert they name."""
    am = alertmanager
    commands = re.findall(r"^amtool silence add .*$", RUNBOOKS.read_text(), flags=re.M)
    assert len(commands) >= 8, commands
    env = {"PATH": f"{TOOLS_BIN}:/usr/bin:/bin"}
    targets: list[dict[str, str]] = []
    for command in commands:
        assert "--alertmanager.url=http://127.0.0.1:9093" in command, command
        local = command.replace("http://127.0.0.1:9093", am.url)
        # bash, as a reader would paste it: some commands use $(date ...).
        result = subprocess.run(
            ["bash", "-c", local], capture_output=True, text=True, timeout=30, env=env
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        assert re.fullmatch(r"[0-9a-f-]{36}\n", result.stdout), result.stdout
        matchers = [a for a in shlex.split(command) if not a.startswith("-") and "=" in a]
        targets.append(dict(a.split("=", 1) for a in matchers))
    _post(am, [{**labels, "severity": "warning"} for labels in targets])
    # The same agent's other window is not muted by a silence for one window.
    other = {**targets[0], "window": "monthly", "severity": "warning"}
    assert targets[0]["window"] == "daily"
    _post(am, [other])
    want = {_key(labels) for labels in targets}
    wait_until(
        lambda: _state(am, silenced="true", active="false", inhibited="false") == want,
        10,
        "silences applied",
    )
    assert _key(other) in _state(am, silenced="false")


def _route_path(labels: dict[str, str]) -> str:
    """The route tree's path amtool prints for an alert (`--tree`), to tell sub-routes apart."""
    code, out = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", "--tree",
        *(f"{k}={v}" for k, v in labels.items()),
    )  # fmt: skip
    assert code == 0, out
    return out


def test_coverage_and_task_alerts_take_their_routes() -> None:
    """Low coverage takes its own route (grouped by alertname only); an over-limit task takes
    the warning route (grouped per agent), whatever agent or window label they carry."""
    coverage = _route_path(
        {"alertname": f"{NS}BudgetCoverageLow", "gen_ai_agent_id": "cto", "severity": "warning"}
    )
    assert "BudgetCoverageLow" in coverage and 'severity="warning"' not in coverage, coverage
    task = _route_path(
        {"alertname": f"{NS}AgentTaskOverBudget", "gen_ai_agent_id": "cto", "severity": "warning"}
    )
    assert 'severity="warning"' in task and "BudgetCoverageLow" not in task, task


def test_coverage_alerts_of_many_agents_make_one_notification(
    alertmanager: Alertmanager, receiver: NotificationSink
) -> None:
    """Three agents with low coverage: one notification listing all three; two agents with
    over-limit tasks: one notification each."""
    coverage = [
        {"alertname": f"{NS}BudgetCoverageLow", "gen_ai_agent_id": a, "severity": "warning"}
        for a in ("cto", "intern", "writer")
    ]
    tasks = [
        {"alertname": f"{NS}AgentTaskOverBudget", "gen_ai_agent_id": a, "severity": "warning"}
        for a in ("cto", "intern")
    ]
    _post(alertmanager, coverage + tasks)

    def by_group() -> dict[tuple[str, str], list[dict[str, Any]]]:
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for n in receiver.payloads():
            key = (n["groupLabels"]["alertname"], n["groupLabels"].get("gen_ai_agent_id", ""))
            out[key] = n["alerts"]
        return out

    want = {
        (f"{NS}BudgetCoverageLow", ""),
        (f"{NS}AgentTaskOverBudget", "cto"),
        (f"{NS}AgentTaskOverBudget", "intern"),
    }
    wait_until(lambda: set(by_group()) == want, 20, "notifications", interval=0.5)
    got = by_group()
    agents = sorted(a["labels"]["gen_ai_agent_id"] for a in got[(f"{NS}BudgetCoverageLow", "")])
    assert agents == ["cto", "intern", "writer"], got
    for agent in ("cto", "intern"):
        (alert,) = got[(f"{NS}AgentTaskOverBudget", agent)]
        assert alert["labels"]["gen_ai_agent_id"] == agent
    assert all(n["receiver"] == "budget-webhook" for n in receiver.payloads())
