"""`make demo`: the whole budgetwatch pipeline on this machine, with a simulated organization.

    python scripts/demo.py --limits limits.yaml --seconds 0     # 0 = until Ctrl-C

Renders the rules from the limits file, starts our otelcol, Prometheus and Alertmanager
(built by `make tools`) on loopback, runs a SynthOrg-like organization of agents recording
through BudgetTelemetry (the intern overspends its daily budget so alerts fire within
minutes; eng-qa gets stuck in a loop after --loop-after seconds and AgentSpendSpike fires about
half a minute later, the spike alert's windows being put on the demo's scale), and shows a
live table per agent read back from Prometheus and Alertmanager.
With GRAFANA_URL and GRAFANA_TOKEN set it also imports the datasource and dashboards into
that Grafana through its HTTP API. Ctrl-C (or the end of --seconds) stops everything.
Everything it writes goes under --workdir (default out/demo), recreated on each run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetwatch.dev.stack import (
    ROOT,
    TOOLS_BIN,
    Ports,
    Stack,
    port_free,
    running_stack,
)
from budgetwatch.spec import AGENT, DAILY, MONTHLY, Alerts, Names

# --- the simulated organization ------------------------------------------------------------

# agent -> (model, mean cost per call, calls per second). The intern runs a big model far
# too often: about 2 per minute against a daily budget of 1 in limits.yaml.
AGENTS: dict[str, tuple[str, float, float]] = {
    "ceo": ("claude-opus-4", 0.020, 0.20),
    "cto": ("claude-sonnet-4", 0.012, 0.40),
    "eng-backend": ("gpt-5", 0.006, 0.60),
    "eng-frontend": ("gpt-5-mini", 0.002, 0.60),
    "eng-qa": ("claude-sonnet-4", 0.004, 0.30),
    "intern": ("claude-opus-4", 0.070, 0.50),
}
PROVIDERS = {"claude": "anthropic", "gpt": "openai"}
# From --loop-after seconds on, one agent is stuck in a loop: a big model, 20 times as many
# calls (about 100x its usual spend), to show the runaway-agent alert (AgentSpendSpike).
LOOP_AGENT = "eng-qa"
LOOP: tuple[str, float, float] = ("claude-opus-4", 0.020, 6.0)
# The spike alert on the demo's time scale (the limits file's factor and min_hourly are kept):
# the last 40 s against the agent's average over the 40-second steps before it (up to 8).
# With the defaults (1 h against 7 days, 1 day of history first) nothing would fire in a demo.
DEMO_SPIKE = {"window": "40s", "baseline": "320s", "min_history": "40s", "for": "10s"}
# A task's life: created (nobody assigned yet) -> assigned -> in_progress -> an end state.
END_STATES = ["completed"] * 6 + ["failed", "blocked", "cancelled"]


@dataclass
class Task:
    agent: str | None = None
    status: str = "created"


@dataclass
class Organization:
    """Decides what happens each tick; the caller records it through BudgetTelemetry."""

    rng: random.Random
    tasks: list[Task] = field(default_factory=list)
    loop_after: float = 0  # seconds; 0 = nobody loops
    elapsed: float = 0

    def tick(self, telemetry: Any, dt: float) -> None:
        self.elapsed += dt
        looping = self.loop_after > 0 and self.elapsed >= self.loop_after
        for agent, (model, cost, rate) in AGENTS.items():
            if looping and agent == LOOP_AGENT:
                model, cost, rate = LOOP
            calls = sum(1 for _ in range(4) if self.rng.random() < rate * dt / 4)
            for _ in range(calls):
                provider = PROVIDERS["claude" if model.startswith("claude") else "gpt"]
                spent = round(cost * self.rng.uniform(0.5, 1.5), 6)
                tokens_in = int(spent * 200_000)
                telemetry.record_cost(
                    agent,
                    spent,
                    provider=provider,
                    model=model,
                    input_tokens=tokens_in,
                    output_tokens=tokens_in // 5,
                )
        if self.rng.random() < 0.5 * dt:  # new work arrives unassigned
            self._move(telemetry, Task(), "created")
        for task in list(self.tasks):
            if self.rng.random() > 0.15 * dt:
                continue
            if task.status == "created":
                task.agent = self.rng.choice(list(AGENTS))
                self._move(telemetry, task, "assigned")
            elif task.status == "assigned":
                self._move(telemetry, task, "in_progress")
            elif task.status == "in_progress":
                self._move(telemetry, task, self.rng.choice(END_STATES))

    def _move(self, telemetry: Any, task: Task, status: str) -> None:
        task.status = status
        telemetry.record_task(task.agent, status)  # None = _unassigned
        if status == "created":
            self.tasks.append(task)
        elif status not in ("assigned", "in_progress"):
            self.tasks.remove(task)


# --- servers -------------------------------------------------------------------------------


class DemoError(Exception):
    """A problem the user can fix; printed without a traceback."""


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# The flags that fix each port, for the message when one is busy.
PORT_FLAGS = {
    "otlp_grpc": "--otlp-grpc-port",
    "otlp_http": "--otlp-http-port",
    "prometheus": "--prometheus-port",
    "alertmanager": "--alertmanager-port",
    "collector_metrics": "--collector-metrics-port",
    "collector_health": "--collector-health-port",
}


def check_ports(ports: Ports) -> None:
    busy = [
        f"port {getattr(ports, attr)} on 127.0.0.1 ({attr.replace('_', ' ')}) is busy: "
        f"stop what uses it or pass {flag} PORT"
        for attr, flag in PORT_FLAGS.items()
        if not port_free(getattr(ports, attr))
    ]
    if busy:
        raise DemoError("\n".join(busy))


# --- reading back --------------------------------------------------------------------------


@dataclass
class Snapshot:
    rows: dict[str, dict[str, Any]]
    org: dict[str, float | None]
    alerts: dict[str, list[str]]  # agent ("" for org) -> ["SynthorgX(firing)", ...]


class Reader:
    def __init__(self, prometheus: str, alertmanager: str, ns: str) -> None:
        self.prometheus, self.alertmanager = prometheus, alertmanager
        self.names, self.prefix = Names(ns), Alerts(ns).prefix

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http(url)
        if status != 200:
            return []
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    def by_agent(self, series: str) -> dict[str, float]:
        return {r["metric"].get(AGENT, ""): float(r["value"][1]) for r in self.query(series)}

    def one(self, series: str) -> float | None:
        result = self.query(series)
        return float(result[0]["value"][1]) if result else None

    def _tasks(self) -> dict[str, dict[str, float]]:
        tasks: dict[str, dict[str, float]] = {}
        for r in self.query(f"{self.names.agent_tasks_day_to_date} > 0"):
            agent = r["metric"].get(AGENT, "")
            status = r["metric"].get(self.names.task_status, "?")
            tasks.setdefault(agent, {})[status] = float(r["value"][1])
        return tasks

    def _alerts(self) -> dict[str, list[str]]:
        alerts: dict[str, list[str]] = {}
        for r in self.query(f'ALERTS{{alertname=~"{self.prefix}.*"}}'):
            labels = r["metric"]
            alerts.setdefault(labels.get(AGENT, ""), []).append(
                f"{labels['alertname'].removeprefix(self.prefix)}({labels['alertstate']})"
            )
        return alerts

    def snapshot(self) -> Snapshot:
        n = self.names
        spend = self.by_agent(n.agent_to_date(DAILY))
        daily = self.by_agent(n.agent_percent(DAILY))
        period = self.by_agent(n.agent_percent(MONTHLY))
        tasks = self._tasks()
        alerts = self._alerts()
        rows: dict[str, dict[str, Any]] = {}
        for agent in sorted(set(spend) | set(tasks)):
            rows[agent] = {
                "spend": spend.get(agent),
                "daily_pct": daily.get(agent),
                "period_pct": period.get(agent),
                "tasks": tasks.get(agent, {}),
                "alerts": sorted(alerts.get(agent, [])),
            }
        org = {
            "spend": self.one(n.org_to_date(DAILY)),
            "daily_pct": self.one(n.org_percent(DAILY)),
            "period_pct": self.one(n.org_percent(MONTHLY)),
        }
        return Snapshot(rows, org, alerts)

    def alertmanager_active(self) -> list[str]:
        status, body = http(f"{self.alertmanager}/api/v2/alerts?active=true&silenced=false")
        if status != 200:
            return []
        return sorted(
            f"{a['labels'].get('alertname')}{{{a['labels'].get(AGENT, '')}}}"
            f"[{a['status']['state']}]"
            for a in json.loads(body)
        )


def _fmt(value: float | None, spec: str) -> str:
    """`spec` like "12.4f"; None (no such series, e.g. no limit) shows as a padded dash."""
    return "-".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)


def render_table(snap: Snapshot, am_active: list[str], currency: str, notified: int) -> str:
    header = f"{'agent':<14} {'spend today':>12} {'daily %':>8} {'period %':>9}  tasks  | alerts"
    lines = [header, "-" * len(header)]
    for agent, row in snap.rows.items():
        tasks = " ".join(f"{s}={int(n)}" for s, n in sorted(row["tasks"].items())) or "-"
        lines.append(
            f"{agent:<14} {_fmt(row['spend'], '12.4f')} {_fmt(row['daily_pct'], '8.1f')} "
            f"{_fmt(row['period_pct'], '9.1f')}  {tasks}  | {' '.join(row['alerts']) or '-'}"
        )
    org = snap.org
    org_alerts = " ".join(snap.alerts.get("", [])) or "-"
    lines.append("-" * len(header))
    lines.append(
        f"{'ORG':<14} {_fmt(org['spend'], '12.4f')} {_fmt(org['daily_pct'], '8.1f')} "
        f"{_fmt(org['period_pct'], '9.1f')}  ({currency})  | {org_alerts}"
    )
    lines.append(
        f"Alertmanager: {len(am_active)} active; webhook notifications received: {notified}"
    )
    lines.extend(f"  {a}" for a in am_active[:12])
    return "\n".join(lines)


# --- Grafana -------------------------------------------------------------------------------


def import_into_grafana(limits: Any, limits_name: str, prometheus_url: str) -> list[str]:
    """Datasource + dashboards through Grafana's HTTP API (GRAFANA_URL, GRAFANA_TOKEN)."""
    from budgetwatch.dashboards import render_dashboards

    base = os.environ["GRAFANA_URL"].rstrip("/")
    headers = {
        "Authorization": f"Bearer {os.environ['GRAFANA_TOKEN']}",
        "Content-Type": "application/json",
    }
    # Grafana's server must reach Prometheus: GRAFANA_PROMETHEUS_URL when it runs elsewhere.
    datasource = {
        "name": "Prometheus (budgetwatch)",  # as dashboards/provisioning/datasources/
        "uid": "budgetwatch-prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": os.environ.get("GRAFANA_PROMETHEUS_URL", prometheus_url),
    }
    status, body = http(f"{base}/api/datasources", json.dumps(datasource).encode(), headers)
    if status == 409:  # exists: update it in place
        status, body = http(
            f"{base}/api/datasources/uid/budgetwatch-prometheus",
            json.dumps(datasource).encode(),
            headers,
        )
    done = [f"datasource budgetwatch-prometheus -> HTTP {status}"]
    for name, text in render_dashboards(limits, limits_name).items():
        payload = {"dashboard": json.loads(text), "overwrite": True}
        status, body = http(f"{base}/api/dashboards/db", json.dumps(payload).encode(), headers)
        url = json.loads(body).get("url", "") if status == 200 else body[:200].decode("replace")
        done.append(
            f"dashboard {name} -> HTTP {status} {base}{url}"
            if status == 200
            else f"dashboard {name} -> HTTP {status}: {url}"
        )
    return done


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--limits", type=Path, default=ROOT / "limits.yaml")
    p.add_argument("--seconds", type=float, default=0, help="stop after N s (0: until Ctrl-C)")
    p.add_argument("--workdir", type=Path, default=ROOT / "out" / "demo")
    p.add_argument("--otlp-grpc-port", type=int, default=4317)
    p.add_argument("--otlp-http-port", type=int, default=4318)
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.add_argument("--alertmanager-port", type=int, default=9093)
    p.add_argument("--collector-metrics-port", type=int, default=8888)
    p.add_argument("--collector-health-port", type=int, default=13133)
    p.add_argument("--interval", default="5s", help="rule evaluation and scrape interval")
    p.add_argument("--refresh", type=float, default=3.0, help="table refresh, seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--loop-after",
        type=float,
        default=100,
        help=f"seconds until {LOOP_AGENT} gets stuck in a loop (0: never)",
    )
    return p.parse_args(argv)


class Stop:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def __call__(self, signum: int, _frame: Any) -> None:
        self.reason = signal.Signals(signum).name
        self.event.set()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 2


@dataclass
class Run:
    """What one demo run has seen so far."""

    started: float = field(default_factory=time.monotonic)
    fired: set[str] = field(default_factory=set)
    first_seen: dict[str, float] = field(default_factory=dict)  # alert -> seconds into the run
    last: Snapshot | None = None
    failed: str = ""

    def saw(self, snapshot: Snapshot) -> None:
        self.last = snapshot
        now = round(time.monotonic() - self.started, 1)
        for agent, names in snapshot.alerts.items():
            seen = {f"{n}{{{agent}}}" for n in names}
            self.fired.update(seen)
            for name in seen:
                self.first_seen.setdefault(name, now)


def prepare(args: argparse.Namespace) -> tuple[Ports, Any, list[Path]]:
    """Check everything, then render the rules into a fresh work directory."""
    missing = [
        n for n in ("otelcol", "prometheus", "alertmanager") if not (TOOLS_BIN / n).is_file()
    ]
    if missing:
        raise DemoError(f"{', '.join(missing)} missing from .tools/bin: run `make tools` first")
    if not args.limits.is_file():
        raise DemoError(f"limits file {args.limits} not found")
    ports = Ports(
        otlp_grpc=args.otlp_grpc_port,
        otlp_http=args.otlp_http_port,
        prometheus=args.prometheus_port,
        alertmanager=args.alertmanager_port,
        collector_metrics=args.collector_metrics_port,
        collector_health=args.collector_health_port,
    )
    check_ports(ports)

    from budgetwatch.limits import LimitsError, load_limits

    try:
        limits = load_limits(args.limits)  # a bad file stops the demo before anything is touched
    except LimitsError as err:
        raise DemoError(str(err)) from None
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)  # each run starts from an empty day
    work.mkdir(parents=True)
    return ports, limits, _render_demo_rules(args, limits, work / "rules")


def _render_demo_rules(args: argparse.Namespace, limits: Any, out: Path) -> list[Path]:
    """The limits file's rules, with the spike alert on the demo's time scale."""
    from budgetwatch.limits_early_warning import Spike
    from budgetwatch.rules import render_rule_files

    spike = Spike.model_validate(
        {**DEMO_SPIKE, "factor": limits.spike.factor, "min_hourly": limits.spike.min_hourly}
    )
    demo = limits.model_copy(update={"spike": spike})
    out.mkdir(parents=True)
    paths = []
    for name, text in render_rule_files(
        demo, args.limits.name, evaluation_interval=args.interval
    ).items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths


def announce(args: argparse.Namespace, limits: Any, stack: Stack) -> None:
    prometheus, alertmanager = stack.prometheus.url, stack.alertmanager.url
    print(
        f"\nbudgetwatch demo: {len(AGENTS)} agents, rules from {args.limits.name}, "
        f"evaluated every {args.interval}\n"
        f"  Prometheus    {prometheus}  (API; try {prometheus}/api/v1/query?query="
        f"{Names(limits.namespace).agent_percent(DAILY)})\n"
        f"  Alertmanager  {alertmanager}/#/alerts  (API: {alertmanager}/api/v2/alerts)\n"
        f"  OTLP          {stack.collector.otlp_http} (HTTP), "
        f"127.0.0.1:{stack.collector.grpc_port} (gRPC)\n"
        f"  logs          {stack.workdir}/*/*.log\n"
        f"  {LOOP_AGENT} gets stuck in a loop after {args.loop_after:g} s: watch for "
        f"AgentSpendSpike (spike windows on the demo's scale: {DEMO_SPIKE})\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    if os.environ.get("GRAFANA_URL") and os.environ.get("GRAFANA_TOKEN"):
        for line in import_into_grafana(limits, args.limits.name, prometheus):
            print(f"  grafana: {line}", flush=True)
    else:
        print("  (set GRAFANA_URL and GRAFANA_TOKEN to import the dashboards into Grafana)\n")


def simulate(args: argparse.Namespace, limits: Any, stack: Stack, stop: Stop, run: Run) -> None:
    """The organization at work, and the table, until stopped or a server dies."""
    from budgetwatch import BudgetTelemetry

    telemetry = BudgetTelemetry(
        "synthorg-demo",
        namespace=limits.namespace,
        currency=limits.currency,
        endpoint=stack.collector.otlp_http,
        protocol="http/protobuf",
        export_interval_s=2.0,
    )
    try:
        org = Organization(random.Random(args.seed), loop_after=args.loop_after)
        reader = Reader(stack.prometheus.url, stack.alertmanager.url, limits.namespace)
        interactive = sys.stdout.isatty()
        next_table = 0.0
        tick = 0.5
        while not stop.event.wait(tick):
            org.tick(telemetry, tick)
            elapsed = time.monotonic() - run.started
            dead = [s.name for s in stack.servers if not s.alive()]
            if dead:
                run.failed = f"{', '.join(dead)} stopped unexpectedly"
                print(stack.logs(20), file=sys.stderr)
                return
            if elapsed >= next_table:
                # Non-interactive output (CI, a pipe) gets a table every 5 refreshes.
                next_table = elapsed + (args.refresh if interactive else args.refresh * 5)
                run.saw(reader.snapshot())
                assert run.last is not None
                notified = len(stack.sink.snapshot())
                table = render_table(
                    run.last, reader.alertmanager_active(), limits.currency, notified
                )
                prefix = "\x1b[H\x1b[2J" if interactive else ""
                print(f"{prefix}[{elapsed:5.0f}s] budgetwatch demo\n{table}\n", flush=True)
            if args.seconds and elapsed >= args.seconds:
                stop.reason = f"--seconds {args.seconds:g}"
                break
        if run.last is not None:  # the state at the end, for the summary
            run.saw(reader.snapshot())
    finally:
        telemetry.shutdown()


def run(args: argparse.Namespace) -> int:
    ports, limits, rule_files = prepare(args)
    stop = Stop()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    state = Run()
    try:
        with running_stack(
            args.workdir,
            rule_files,
            interval=args.interval,
            ports=ports,
            scrape_own_metrics=True,
            announce=lambda name: print(f"starting {name} ...", flush=True),
        ) as stack:
            announce(args, limits, stack)
            simulate(args, limits, stack, stop, state)
            notifications = stack.sink.firing_names()
    except TimeoutError as err:  # a server did not start: its log is in the message
        raise DemoError(str(err)) from None
    if state.failed:
        raise DemoError(state.failed)
    summary = {
        "stopped_by": stop.reason,
        "seconds": round(time.monotonic() - state.started, 1),
        "agents": {a: r["spend"] for a, r in (state.last.rows.items() if state.last else [])},
        "alerts_seen": sorted(state.fired),
        "first_seen_s": state.first_seen,
        "loop_after_s": args.loop_after,
        "notifications": notifications,
    }
    print(f"demo stopped ({stop.reason}); everything shut down.")
    print("SUMMARY " + json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
