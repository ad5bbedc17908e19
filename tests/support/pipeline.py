"""The whole budgetwatch pipeline on loopback, for end-to-end tests.

app (BudgetTelemetry) -> OTLP -> our otelcol (shipped otel-collector/config.yaml)
  -> Prometheus 3 (shipped alerts/prometheus.yml, rules rendered from a test limits file)
  -> Alertmanager (shipped alerts/alertmanager.yml, webhook pointed at a test receiver).

Everything runs as real processes on free 127.0.0.1 ports under one work directory, and is
torn down when the context ends; on a failure the tails of every log are printed (pytest shows
them with the failure) and the work directory is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from budgetwatch.rules import Timing

from .procs import (
    Alertmanager,
    Collector,
    Managed,
    Prometheus,
    free_port,
    prometheus_config,
    start_alertmanager,
    start_prometheus,
)
from .tools import ROOT, tool
from .webhook import WebhookReceiver

APP_DRIVER = ROOT / "tests" / "e2e" / "app_driver.py"


def render_rules(
    limits_path: Path,
    out_dir: Path,
    rule_interval: str,
    alert_for: str | None = None,
    timing: Timing | None = None,
) -> list[Path]:
    """Rules rendered by budgetwatch from `limits_path` into `out_dir`, as `budgetwatch render`
    would, but evaluated every `rule_interval` so tests do not wait on production intervals.

    `alert_for` replaces the alerts' `for:` (None keeps the generated one): the levels are
    what the tests check, not the production wait. `timing` gives a short test calendar.
    """
    from budgetwatch.limits import load_limits
    from budgetwatch.rules import render_rule_files

    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = render_rule_files(
        load_limits(limits_path),
        limits_path.name,
        evaluation_interval=rule_interval,
        for_duration=alert_for,
        timing=timing,
    )
    paths = []
    for name, text in rendered.items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths


def alertmanager_config_for(receiver_url: str) -> dict[str, Any]:
    """The shipped alerts/alertmanager.yml with every webhook sent to `receiver_url`."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    # Template globs are relative to the config file, which now lives elsewhere.
    config["templates"] = [str(ROOT / "alerts" / t) for t in config.get("templates", [])]
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook.pop("url_file", None)
            hook["url"] = receiver_url
    return config


def collector_env(ports: Mapping[str, int], remote_write_url: str) -> dict[str, str]:
    """The env var names documented in otel-collector/config.yaml's header."""
    return {
        "BUDGETWATCH_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
        "BUDGETWATCH_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
        "BUDGETWATCH_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "BUDGETWATCH_COLLECTOR_METRICS_PORT": str(ports["metrics"]),
        "BUDGETWATCH_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "BUDGETWATCH_REMOTE_WRITE_URL": remote_write_url,
    }


def start_collector_fixed(
    workdir: Path,
    remote_write_url: str,
    *,
    config: Path | None = None,
    env: Mapping[str, str] = {},
    name: str = "otelcol",
) -> Collector:
    """Like procs.start_collector, but the ports stay the same across restarts of `.server`."""
    ports = {k: free_port() for k in ("grpc", "http", "metrics", "health")}
    server = Managed(
        name=name,
        argv=[
            str(tool("otelcol")),
            f"--config={config or ROOT / 'otel-collector' / 'config.yaml'}",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{ports['health']}/",
        env={**collector_env(ports, remote_write_url), **env},
    )
    server.start()
    return Collector(server, ports["grpc"], ports["http"], ports["metrics"])


@dataclass
class App:
    """One real application process recording through BudgetTelemetry (tests/e2e/app_driver.py).

    Commands go over stdin as JSON lines; each gets one JSON line back, so the test knows an
    event was recorded (or flushed) before it goes on.
    """

    proc: subprocess.Popen[str]
    instance_id: str
    log_path: Path

    def send(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"app exited ({self.proc.poll()}):\n{self.tail()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"app failed on {op}: {reply['error']}")
        return reply

    def cost(self, agent: str | None, cost: float, **kw: Any) -> None:
        self.send("cost", agent=agent, cost=cost, **kw)

    def task(self, agent: str | None, status: str) -> None:
        self.send("task", agent=agent, status=status)

    def flush(self) -> None:
        assert self.send("flush")["ok"], "force_flush returned False"

    def shutdown(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, BrokenPipeError):
                self.send("shutdown")
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def start_app(
    workdir: Path,
    endpoint: str,
    *,
    service: str = "synthorg",
    export_interval_s: float = 0.5,
    extra: Mapping[str, Any] = {},
    env: Mapping[str, str] = {},
) -> App:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"app-{service}-{time.monotonic_ns()}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(APP_DRIVER),
            json.dumps(
                {
                    "service": service,
                    "endpoint": endpoint,
                    "export_interval_s": export_interval_s,
                    **extra,
                }
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    log.close()
    assert proc.stdout is not None
    hello = proc.stdout.readline()
    if not hello:
        raise RuntimeError(f"app did not start:\n{log_path.read_text(errors='replace')}")
    return App(proc, json.loads(hello)["instance_id"], log_path)


@dataclass
class Pipeline:
    workdir: Path
    limits_path: Path
    namespace: str
    prometheus: Prometheus
    collector: Collector
    alertmanager: Alertmanager
    webhook: WebhookReceiver
    rule_files: list[Path]
    apps: list[App] = field(default_factory=list)

    @property
    def otlp_http(self) -> str:
        return self.collector.otlp_http

    def app(self, service: str = "synthorg", **kw: Any) -> App:
        app = start_app(self.workdir / "apps", self.otlp_http, service=service, **kw)
        self.apps.append(app)
        return app

    # --- reading back ----------------------------------------------------------------------

    def values(self, promql: str) -> dict[str, float]:
        return self.prometheus.scalar_values(promql)

    def value(self, promql: str) -> float | None:
        """The single value of `promql`, None when it has no series."""
        result = self.prometheus.query(promql)
        assert len(result) <= 1, f"{promql} returned {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def wait_value(
        self,
        promql: str,
        check: Callable[[float | None], bool],
        timeout: float = 60,
        what: str = "",
    ) -> float | None:
        """Poll `promql` until `check(value)`; TimeoutError with the last value seen."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                last = self.value(promql)
                if check(last):
                    return last
            time.sleep(0.2)
        raise TimeoutError(f"{what or promql}: last value {last} after {timeout}s")

    def alerts_firing(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        sel = ",".join(
            [f'alertname="{alertname}"', 'alertstate="firing"']
            + [f'{k}="{v}"' for k, v in labels.items()]
        )
        return self.prometheus.query(f"ALERTS{{{sel}}}")

    # --- faults ------------------------------------------------------------------------------

    def restart_collector(self, kill: bool = True, down_s: float = 0.0) -> None:
        self.collector.server.kill() if kill else self.collector.server.stop()
        time.sleep(down_s)
        self.collector.server.start()

    def restart_prometheus(self, kill: bool = False, down_s: float = 0.0) -> None:
        self.prometheus.server.kill() if kill else self.prometheus.server.stop()
        time.sleep(down_s)
        self.prometheus.server.start(timeout=120)

    def logs(self, lines: int = 40) -> str:
        parts = [
            f"--- {s.name} ({s.log_path}) ---\n{s.tail(lines)}"
            for s in (self.collector.server, self.prometheus.server, self.alertmanager.server)
        ]
        parts += [f"--- app {a.instance_id} ---\n{a.tail(lines)}" for a in self.apps]
        return "\n".join(parts)


@contextlib.contextmanager
def pipeline(
    workdir: Path,
    limits_path: Path,
    *,
    namespace: str = "synthorg",
    rule_interval: str = "1s",
    scrape_interval: str = "1s",
    alert_for: str | None = "5s",
    timing: Timing | None = None,
    prometheus_args: Sequence[str] = (),
) -> Iterator[Pipeline]:
    """Start webhook receiver, Alertmanager, Prometheus and otelcol; stop them all at the end."""
    started = time.monotonic()
    webhook = WebhookReceiver().start()
    servers: list[Managed] = []
    apps: list[App] = []
    pipe: Pipeline | None = None
    try:
        am_dir = workdir / "alertmanager"
        am_dir.mkdir(parents=True, exist_ok=True)
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(alertmanager_config_for(webhook.url), sort_keys=False))
        alertmanager = start_alertmanager(am_dir, config=am_config)
        servers.append(alertmanager.server)

        rule_files = render_rules(
            limits_path, workdir / "prometheus" / "rules", rule_interval, alert_for, timing
        )
        prometheus = start_prometheus(
            workdir / "prometheus",
            prometheus_config(
                rule_files=rule_files,
                alertmanager_port=alertmanager.port,
                evaluation_interval=rule_interval,
                scrape_interval=scrape_interval,
            ),
            extra_args=prometheus_args,
        )
        servers.append(prometheus.server)

        collector = start_collector_fixed(
            workdir / "otelcol", remote_write_url=f"{prometheus.url}/api/v1/write"
        )
        servers.append(collector.server)
        pipe = Pipeline(
            workdir=workdir,
            limits_path=limits_path,
            namespace=namespace,
            prometheus=prometheus,
            collector=collector,
            alertmanager=alertmanager,
            webhook=webhook,
            rule_files=rule_files,
            apps=apps,
        )
        print(f"pipeline up in {time.monotonic() - started:.1f}s under {workdir}")
        yield pipe
    except BaseException:
        if pipe is not None:
            print(pipe.logs(), file=sys.stderr)
        else:
            for server in servers:
                print(f"--- {server.name} ---\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        for app in apps:
            app.kill()
        for server in reversed(servers):
            server.stop()
        webhook.stop()
