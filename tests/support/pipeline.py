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

from budgetwatch.dev.stack import (
    ROOT,
    Alertmanager,
    Collector,
    NotificationSink,
    Prometheus,
    render_rules,
    running_stack,
)
from budgetwatch.rules import Timing

APP_DRIVER = ROOT / "tests" / "e2e" / "app_driver.py"


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

    def task(self, agent: str | None, status: str, task_id: str | None = None) -> None:
        self.send("task", agent=agent, status=status, task_id=task_id)

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
    webhook: NotificationSink
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
    """The dev stack (budgetwatch.dev.stack) with rules rendered from `limits_path`, and the
    apps a test starts; everything stopped at the end, the logs printed on a failure."""
    started = time.monotonic()
    apps: list[App] = []
    pipe: Pipeline | None = None
    rule_files = render_rules(
        limits_path, workdir / "prometheus" / "rules", rule_interval, alert_for, timing
    )
    try:
        with running_stack(
            workdir,
            rule_files,
            interval=rule_interval,
            scrape_interval=scrape_interval,
            prometheus_args=prometheus_args,
        ) as stack:
            pipe = Pipeline(
                workdir=workdir,
                limits_path=limits_path,
                namespace=namespace,
                prometheus=stack.prometheus,
                collector=stack.collector,
                alertmanager=stack.alertmanager,
                webhook=stack.sink,
                rule_files=rule_files,
                apps=apps,
            )
            print(f"pipeline up in {time.monotonic() - started:.1f}s under {workdir}")
            try:
                yield pipe
            finally:
                for app in apps:
                    app.kill()
    except BaseException:
        if pipe is not None:
            print(pipe.logs(), file=sys.stderr)
        raise
