"""Our collector with the GenAI sources config, and real source processes pushing to it.

The collector runs the shipped otel-collector/config.yaml + sources.yaml + the pricing
statements rendered (by budgetwatch, as `budgetwatch render --prices` does) from a price
table; Prometheus runs the rules rendered from a limits file. Sources are real processes
(tests/e2e/genai_driver.py) using LiteLLM, OpenLIT or the OpenTelemetry SDK as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgetwatch.dev.servers import (
    ROOT,
    Collector,
    Managed,
    Prometheus,
    free_port,
    prometheus_config,
    start_prometheus,
    tool,
)

from .pipeline import render_rules

DRIVER = ROOT / "tests" / "e2e" / "genai_driver.py"
# OpenLIT runs in a virtual environment of its own, as in a user's app: its instrumentation
# packages pin an OpenTelemetry SDK older than the one budgetwatch's library needs, so the
# two do not install together (an OpenLIT app needs nothing of ours: the collector does it).
OPENLIT_VERSION = "1.44.0"
# pip cannot resolve openlit 1.44 alone today (the newest SDK wants semantic-conventions
# 0.66b2, the instrumentations it needs pin 0.66b1): these pins are the set that works.
OPENLIT_PINS = (
    f"openlit=={OPENLIT_VERSION}",
    "opentelemetry-api==1.45.1",
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-exporter-otlp==1.45.1",
    "opentelemetry-semantic-conventions==0.66b1",
)
OPENLIT_VENV = ROOT / ".tools" / "venvs" / f"openlit-{OPENLIT_VERSION}"


def openlit_python() -> Path:
    """The Python of a virtual environment holding OpenLIT (created on first use, ~1 min)."""
    python = OPENLIT_VENV / "bin" / "python"
    marker = OPENLIT_VENV / ".installed"
    if not marker.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(OPENLIT_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *OPENLIT_PINS],
            check=True,
            timeout=900,
        )
        marker.touch()
    return python


SOURCES_CONFIG = ROOT / "otel-collector" / "sources.yaml"


def collector_configs(pricing: Path) -> list[Path]:
    extra = [
        Path(p)
        for p in os.environ.get("BUDGETWATCH_TEST_EXTRA_COLLECTOR_CONFIG", "").split(",")
        if p
    ]
    return [ROOT / "otel-collector" / "config.yaml", SOURCES_CONFIG, pricing, *extra]


def start_genai_collector(
    workdir: Path, remote_write_url: str, pricing: Path, env: Mapping[str, str] = {}
) -> Collector:
    workdir.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port, metrics_port, health_port = (free_port() for _ in range(4))
    server = Managed(
        name="otelcol-genai",
        argv=[str(tool("otelcol")), *(f"--config={p}" for p in collector_configs(pricing))],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{health_port}/",
        env={
            "BUDGETWATCH_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
            "BUDGETWATCH_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
            "BUDGETWATCH_COLLECTOR_METRICS_PORT": str(metrics_port),
            "BUDGETWATCH_COLLECTOR_METRICS_HOST": "127.0.0.1",
            "BUDGETWATCH_HEALTH_ENDPOINT": f"127.0.0.1:{health_port}",
            "BUDGETWATCH_REMOTE_WRITE_URL": remote_write_url,
            **env,
        },
    )
    server.start()
    return Collector(server, grpc_port, http_port, metrics_port)


@dataclass
class GenAIStack:
    workdir: Path
    prometheus: Prometheus
    collector: Collector

    def run_source(
        self, spec: Mapping[str, Any], env: Mapping[str, str] = {}, timeout: float = 120
    ) -> list[dict[str, Any]]:
        """Run one source process to its end; what it reports having done."""
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "LITELLM_OTEL", "BUDGETWATCH_"))
        }
        python = openlit_python() if spec.get("source") == "openlit" else Path(sys.executable)
        result = subprocess.run(
            [str(python), str(DRIVER), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env={
                **clean,
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.collector.otlp_http,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                **env,
            },
            check=False,
        )
        if result.returncode != 0 or not result.stdout.strip():
            raise RuntimeError(
                f"source {spec.get('source')} failed ({result.returncode}):\n"
                f"{result.stderr[-4000:]}"
            )
        done: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
        return done

    def values(self, promql: str) -> dict[str, float]:
        return self.prometheus.scalar_values(promql)

    def logs(self) -> str:
        return "\n".join(
            f"--- {s.name} ---\n{s.tail(60)}"
            for s in (self.collector.server, self.prometheus.server)
        )


@contextlib.contextmanager
def genai_stack(
    workdir: Path, limits: Path, prices: Path, env: Mapping[str, str] = {}
) -> Iterator[GenAIStack]:
    from budgetwatch.prices import load_prices, render_pricing

    pricing = workdir / "pricing.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    pricing.write_text(render_pricing(load_prices(prices), prices.name))
    rule_files = render_rules(limits, workdir / "prometheus" / "rules", "1s")
    prometheus = start_prometheus(
        workdir / "prometheus", prometheus_config(rule_files=rule_files, evaluation_interval="1s")
    )
    servers = [prometheus.server]
    try:
        collector = start_genai_collector(
            workdir / "otelcol", f"{prometheus.url}/api/v1/write", pricing, env
        )
        servers.append(collector.server)
        stack = GenAIStack(workdir, prometheus, collector)
        try:
            yield stack
        except BaseException:
            print(stack.logs(), file=sys.stderr)
            raise
    finally:
        for server in reversed(servers):
            server.stop()
