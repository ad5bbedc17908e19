"""The dev stack: the real collector, Prometheus and Alertmanager, and a notification sink, on
127.0.0.1, with the repository's shipped configs pointed at each other.

The one place that starts and stops them for the tests, `make demo` (scripts/demo.py) and the
rule benchmark (scripts/bench_rules.py): `running_stack` starts the whole pipeline, the
`start_*` functions (servers.py) one server each. The binaries are the ones `make tools`
builds into .tools/bin; ports are free ones unless the caller fixes them (the demo's
well-known ports). Each server logs to a file in its work directory (`Managed.tail`).

Works from a checkout (the editable install of `make venv`): it reads the shipped configs
(otel-collector/config.yaml, alerts/prometheus.yml, alerts/alertmanager.yml) from there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .servers import (
    COLLECTOR_PORTS,
    ROOT,
    TOOL_NAMES,
    TOOLS_BIN,
    Alertmanager,
    Collector,
    Managed,
    Prometheus,
    alertmanager_config_for,
    collector_env,
    free_port,
    http_get,
    port_free,
    prometheus_config,
    run_tool,
    running,
    start_alertmanager,
    start_collector,
    start_prometheus,
    tool,
    wait_until,
)
from .sink import Notification, NotificationSink

# --- the whole stack --------------------------------------------------------------------------


def render_rules(
    limits_path: Path,
    out_dir: Path,
    rule_interval: str,
    alert_for: str | None = None,
    timing: Any = None,
) -> list[Path]:
    """Rules rendered from `limits_path` into `out_dir` as `budgetwatch render` would, but
    evaluated every `rule_interval`; `alert_for` replaces the alerts' `for:` (None keeps the
    generated one) and `timing` (a `budgetwatch.rules.Timing`) gives a short test calendar."""
    from ..limits import load_limits
    from ..rules import render_rule_files

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


@dataclass(frozen=True)
class Ports:
    """Fixed ports for the stack (the demo's well-known ones); 0 = a free port."""

    prometheus: int = 0
    alertmanager: int = 0
    otlp_grpc: int = 0
    otlp_http: int = 0
    collector_metrics: int = 0
    collector_health: int = 0

    def collector(self) -> dict[str, int]:
        return {
            "grpc": self.otlp_grpc,
            "http": self.otlp_http,
            "metrics": self.collector_metrics,
            "health": self.collector_health,
        }


@dataclass
class Stack:
    """The running stack: app -> collector -> Prometheus (rules) -> Alertmanager -> sink."""

    workdir: Path
    prometheus: Prometheus
    collector: Collector
    alertmanager: Alertmanager
    sink: NotificationSink
    rule_files: list[Path]

    @property
    def servers(self) -> list[Managed]:
        """In start order (stopped in the reverse one)."""
        return [self.alertmanager.server, self.prometheus.server, self.collector.server]

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {s.name} ({s.log_path}) ---\n{s.tail(lines)}" for s in self.servers)


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    rule_files: Sequence[Path],
    *,
    interval: str = "1s",
    scrape_interval: str | None = None,
    ports: Ports | None = None,
    scrape_own_metrics: bool = False,
    prometheus_args: Sequence[str] = (),
    announce: Callable[[str], None] | None = None,
) -> Iterator[Stack]:
    """Start the sink, Alertmanager, Prometheus (loading `rule_files`, evaluated every
    `interval`) and the collector; stop them all when the block ends, whatever happened.

    `scrape_own_metrics`: Prometheus also scrapes the collector's, its own and Alertmanager's
    metrics (the pipeline health dashboard reads them). `announce` is told each server's name
    before it starts (the demo prints it).
    """
    ports = ports or Ports()
    sink = NotificationSink().start()
    started: list[Managed] = []
    try:
        (workdir / "alertmanager").mkdir(parents=True, exist_ok=True)
        am_config = workdir / "alertmanager" / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(alertmanager_config_for(sink.url), sort_keys=False))
        if announce:
            announce("alertmanager")
        alertmanager = start_alertmanager(
            workdir / "alertmanager", config=am_config, port=ports.alertmanager or None
        )
        started.append(alertmanager.server)
        prometheus_port = ports.prometheus or free_port()
        collector_ports = {k: v or free_port() for k, v in ports.collector().items()}
        targets = {
            "otelcol": f"127.0.0.1:{collector_ports['metrics']}",
            "prometheus": f"127.0.0.1:{prometheus_port}",
            "alertmanager": f"127.0.0.1:{alertmanager.port}",
        }
        config = prometheus_config(
            rule_files=rule_files,
            alertmanager_port=alertmanager.port,
            scrape_targets=targets if scrape_own_metrics else None,
            evaluation_interval=interval,
            scrape_interval=scrape_interval or interval,
        )
        if announce:
            announce("prometheus")
        prometheus = start_prometheus(
            workdir / "prometheus", config, port=prometheus_port, extra_args=prometheus_args
        )
        started.append(prometheus.server)
        if announce:
            announce("otelcol")
        collector = start_collector(
            workdir / "otelcol", f"{prometheus.url}/api/v1/write", ports=collector_ports
        )
        started.append(collector.server)
        yield Stack(workdir, prometheus, collector, alertmanager, sink, list(rule_files))
    finally:
        for server in reversed(started):
            server.stop()
        sink.stop()


__all__ = [
    "COLLECTOR_PORTS",
    "ROOT",
    "TOOLS_BIN",
    "TOOL_NAMES",
    "Alertmanager",
    "Collector",
    "Managed",
    "Notification",
    "NotificationSink",
    "Ports",
    "Prometheus",
    "Stack",
    "alertmanager_config_for",
    "collector_env",
    "free_port",
    "http_get",
    "port_free",
    "prometheus_config",
    "render_rules",
    "run_tool",
    "running",
    "running_stack",
    "start_alertmanager",
    "start_collector",
    "start_prometheus",
    "tool",
    "wait_until",
]
