"""`make demo`: the whole budgetwatch pipeline on this machine, with a simulated organization.

    python scripts/demo.py --limits limits.yaml --seconds 0     # 0 = until Ctrl-C

Renders the rules from the limits file, starts our otelcol, Prometheus and Alertmanager
(built by `make tools`) on loopback, runs a SynthOrg-like organization of agents recording
through BudgetTelemetry (the intern overspends its daily budget so alerts fire within
minutes), and shows a live table per agent read back from Prometheus and Alertmanager.
With GRAFANA_URL and GRAFANA_TOKEN set it also imports the datasource and dashboards into
that Grafana through its HTTP API. Ctrl-C (or the end of --seconds) stops everything.
Everything it writes goes under --workdir (default out/demo), recreated on each run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = ROOT / ".tools" / "bin"

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

    def tick(self, telemetry: Any, dt: float) -> None:
        for agent, (model, cost, rate) in AGENTS.items():
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


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: connections of a previous run in TIME_WAIT do not make it busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C goes to the demo, which stops us in order
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"{self.name} exited at start; its log:\n{self.tail()}")
            with contextlib.suppress(OSError):
                if http(self.ready_url, timeout=1)[0] == 200:
                    return
            time.sleep(0.2)
        raise DemoError(f"{self.name} not ready after {timeout}s; its log:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


class NotificationSink:
    """Where Alertmanager's webhook points during the demo: counts notifications by alert."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with contextlib.suppress(ValueError):
                    sink.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def firing(self) -> list[str]:
        return [
            f"{a['labels'].get('alertname')}{{{a['labels'].get('gen_ai_agent_id', '')}}}"
            for note in self.received
            for a in note.get("alerts", [])
            if a.get("status") == "firing"
        ]


@dataclass
class Ports:
    otlp_grpc: int
    otlp_http: int
    prometheus: int
    alertmanager: int
    collector_metrics: int
    collector_health: int

    def check(self) -> None:
        names = {
            "otlp_grpc": "--otlp-grpc-port",
            "otlp_http": "--otlp-http-port",
            "prometheus": "--prometheus-port",
            "alertmanager": "--alertmanager-port",
            "collector_metrics": "--collector-metrics-port",
            "collector_health": "--collector-health-port",
        }
        busy = [
            f"port {getattr(self, attr)} on 127.0.0.1 ({attr.replace('_', ' ')}) is busy: "
            f"stop what uses it or pass {flag} PORT"
            for attr, flag in names.items()
            if not port_free(getattr(self, attr))
        ]
        if busy:
            raise DemoError("\n".join(busy))


def render_rules(limits_path: Path, out: Path, interval: str) -> tuple[Any, list[Path]]:
    """The rules `budgetwatch render` writes, evaluated every `interval` for a livelier demo."""
    from budgetwatch.limits import load_limits
    from budgetwatch.rules import render_rule_files

    limits = load_limits(limits_path)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    rendered = render_rule_files(limits, limits_path.name, evaluation_interval=interval)
    for name, text in rendered.items():
        path = out / name
        path.write_text(text)
        paths.append(path)
    return limits, paths


def build_servers(
    work: Path, ports: Ports, rule_files: list[Path], webhook_url: str, interval: str
) -> list[Server]:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    am_config: dict[str, Any] = yaml.safe_load((ROOT / "alerts/alertmanager.yml").read_text())
    # Template globs are relative to the config file, which the demo writes elsewhere.
    am_config["templates"] = [str(ROOT / "alerts" / t) for t in am_config.get("templates", [])]
    for receiver in am_config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook.pop("url_file", None)
            hook["url"] = webhook_url
    (work / "alertmanager.yml").write_text(yaml.safe_dump(am_config, sort_keys=False))

    prom_config: dict[str, Any] = yaml.safe_load((ROOT / "alerts/prometheus.yml").read_text())
    prom_config["global"]["evaluation_interval"] = interval
    prom_config["global"]["scrape_interval"] = interval
    prom_config["rule_files"] = [str(p) for p in rule_files]
    prom_config["alerting"] = {
        "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]
    }
    prom_config["scrape_configs"] = [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in (
            ("otelcol", ports.collector_metrics),
            ("prometheus", ports.prometheus),
            ("alertmanager", ports.alertmanager),
        )
    ]
    (work / "prometheus.yml").write_text(yaml.safe_dump(prom_config, sort_keys=False))

    return [
        Server(
            "alertmanager",
            [
                str(TOOLS_BIN / "alertmanager"),
                f"--config.file={work / 'alertmanager.yml'}",
                f"--storage.path={work / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
                "--cluster.listen-address=",  # a single instance: no gossip port
            ],
            f"http://127.0.0.1:{ports.alertmanager}/-/ready",
            logs / "alertmanager.log",
        ),
        Server(
            "prometheus",
            [
                str(TOOLS_BIN / "prometheus"),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports.prometheus}",
                "--web.enable-remote-write-receiver",
                "--web.enable-lifecycle",
            ],
            f"http://127.0.0.1:{ports.prometheus}/-/ready",
            logs / "prometheus.log",
        ),
        Server(
            "otelcol",
            [str(TOOLS_BIN / "otelcol"), f"--config={ROOT / 'otel-collector/config.yaml'}"],
            f"http://127.0.0.1:{ports.collector_health}/",
            logs / "otelcol.log",
            env={
                "BUDGETWATCH_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports.otlp_grpc}",
                "BUDGETWATCH_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports.otlp_http}",
                "BUDGETWATCH_REMOTE_WRITE_URL": f"http://127.0.0.1:{ports.prometheus}/api/v1/write",
                "BUDGETWATCH_HEALTH_ENDPOINT": f"127.0.0.1:{ports.collector_health}",
                "BUDGETWATCH_COLLECTOR_METRICS_HOST": "127.0.0.1",
                "BUDGETWATCH_COLLECTOR_METRICS_PORT": str(ports.collector_metrics),
            },
        ),
    ]


# --- reading back --------------------------------------------------------------------------


@dataclass
class Snapshot:
    rows: dict[str, dict[str, Any]]
    org: dict[str, float | None]
    alerts: dict[str, list[str]]  # agent ("" for org) -> ["SynthorgX(firing)", ...]


class Reader:
    def __init__(self, prometheus: str, alertmanager: str, ns: str) -> None:
        self.prometheus, self.alertmanager, self.ns = prometheus, alertmanager, ns

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http(url)
        if status != 200:
            return []
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    def by_agent(self, series: str) -> dict[str, float]:
        return {
            r["metric"].get("gen_ai_agent_id", ""): float(r["value"][1])
            for r in self.query(f"{self.ns}_{series}")
        }

    def one(self, series: str) -> float | None:
        result = self.query(f"{self.ns}_{series}")
        return float(result[0]["value"][1]) if result else None

    def snapshot(self) -> Snapshot:
        spend = self.by_agent("agent_cost_day_to_date")
        daily = self.by_agent("agent_budget_used_percent")
        period = self.by_agent("agent_budget_monthly_used_percent")
        tasks: dict[str, dict[str, float]] = {}
        for r in self.query(f"{self.ns}_agent_tasks_day_to_date > 0"):
            agent = r["metric"].get("gen_ai_agent_id", "")
            status = r["metric"].get(f"{self.ns}_task_status", "?")
            tasks.setdefault(agent, {})[status] = float(r["value"][1])
        alerts: dict[str, list[str]] = {}
        for r in self.query(f'ALERTS{{alertname=~"{self.ns.capitalize()}.*"}}'):
            labels = r["metric"]
            alerts.setdefault(labels.get("gen_ai_agent_id", ""), []).append(
                f"{labels['alertname'].removeprefix(self.ns.capitalize())}({labels['alertstate']})"
            )
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
            "spend": self.one("cost_day_to_date"),
            "daily_pct": self.one("budget_daily_used_percent"),
            "period_pct": self.one("budget_used_percent"),
        }
        return Snapshot(rows, org, alerts)

    def alertmanager_active(self) -> list[str]:
        status, body = http(f"{self.alertmanager}/api/v2/alerts?active=true&silenced=false")
        if status != 200:
            return []
        return sorted(
            f"{a['labels'].get('alertname')}{{{a['labels'].get('gen_ai_agent_id', '')}}}"
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


def run(args: argparse.Namespace) -> int:
    missing = [
        n for n in ("otelcol", "prometheus", "alertmanager") if not (TOOLS_BIN / n).is_file()
    ]
    if missing:
        raise DemoError(f"{', '.join(missing)} missing from .tools/bin: run `make tools` first")
    if not args.limits.is_file():
        raise DemoError(f"limits file {args.limits} not found")
    ports = Ports(
        args.otlp_grpc_port,
        args.otlp_http_port,
        args.prometheus_port,
        args.alertmanager_port,
        args.collector_metrics_port,
        args.collector_health_port,
    )
    ports.check()

    from budgetwatch.limits import LimitsError, load_limits

    try:
        load_limits(args.limits)  # a bad file stops the demo before anything is touched
    except LimitsError as err:
        raise DemoError(str(err)) from None
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)  # each run starts from an empty day
    work.mkdir(parents=True)
    limits, rule_files = render_rules(args.limits, work / "rules", args.interval)

    stop = Stop()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    sink = NotificationSink()
    servers = build_servers(work, ports, rule_files, sink.url, args.interval)
    telemetry = None
    started = time.monotonic()
    fired: set[str] = set()
    last: Snapshot | None = None
    failed = ""
    try:
        for server in servers:
            print(f"starting {server.name} ...", flush=True)
            server.start()
        prometheus = f"http://127.0.0.1:{ports.prometheus}"
        alertmanager = f"http://127.0.0.1:{ports.alertmanager}"
        print(
            f"\nbudgetwatch demo: {len(AGENTS)} agents, rules from {args.limits.name}, "
            f"evaluated every {args.interval}\n"
            f"  Prometheus    {prometheus}  (API; try {prometheus}/api/v1/query?query="
            f"{limits.namespace}_agent_budget_used_percent)\n"
            f"  Alertmanager  {alertmanager}/#/alerts  (API: {alertmanager}/api/v2/alerts)\n"
            f"  OTLP          http://127.0.0.1:{ports.otlp_http} (HTTP), "
            f"127.0.0.1:{ports.otlp_grpc} (gRPC)\n"
            f"  logs          {work / 'logs'}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        if os.environ.get("GRAFANA_URL") and os.environ.get("GRAFANA_TOKEN"):
            for line in import_into_grafana(limits, args.limits.name, prometheus):
                print(f"  grafana: {line}", flush=True)
        else:
            print("  (set GRAFANA_URL and GRAFANA_TOKEN to import the dashboards into Grafana)\n")

        from budgetwatch import BudgetTelemetry

        telemetry = BudgetTelemetry(
            "synthorg-demo",
            namespace=limits.namespace,
            currency=limits.currency,
            endpoint=f"http://127.0.0.1:{ports.otlp_http}",
            protocol="http/protobuf",
            export_interval_s=2.0,
        )
        org = Organization(random.Random(args.seed))
        reader = Reader(prometheus, alertmanager, limits.namespace)
        interactive = sys.stdout.isatty()
        next_table = 0.0
        tick = 0.5
        while not stop.event.wait(tick):
            org.tick(telemetry, tick)
            elapsed = time.monotonic() - started
            dead = [s.name for s in servers if not s.alive()]
            if dead:
                failed = f"{', '.join(dead)} stopped unexpectedly"
                break
            if elapsed >= next_table:
                # Non-interactive output (CI, a pipe) gets a table every 5 refreshes.
                next_table = elapsed + (args.refresh if interactive else args.refresh * 5)
                last = reader.snapshot()
                for agent, names in last.alerts.items():
                    fired.update(f"{n}{{{agent}}}" for n in names)
                table = render_table(
                    last, reader.alertmanager_active(), limits.currency, len(sink.received)
                )
                prefix = "\x1b[H\x1b[2J" if interactive else ""
                print(f"{prefix}[{elapsed:5.0f}s] budgetwatch demo\n{table}\n", flush=True)
            if args.seconds and elapsed >= args.seconds:
                stop.reason = f"--seconds {args.seconds:g}"
                break
        if last is not None and not failed:  # the state at the end, for the summary
            last = reader.snapshot()
            for agent, names in last.alerts.items():
                fired.update(f"{n}{{{agent}}}" for n in names)
    finally:
        if telemetry is not None:
            telemetry.shutdown()
        for server in reversed(servers):
            server.stop()
        sink.server.shutdown()

    if failed:
        for server in servers:
            print(f"--- {server.name} log ---\n{server.tail()}", file=sys.stderr)
        raise DemoError(failed)
    summary = {
        "stopped_by": stop.reason,
        "seconds": round(time.monotonic() - started, 1),
        "agents": {a: r["spend"] for a, r in (last.rows.items() if last else [])},
        "alerts_seen": sorted(fired),
        "notifications": sink.firing(),
    }
    print(f"demo stopped ({stop.reason}); everything shut down.")
    print("SUMMARY " + json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
