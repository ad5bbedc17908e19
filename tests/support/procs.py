"""Real server processes for tests: started on 127.0.0.1 with free ports, always stopped.

Each process writes its output to a log file in its own directory; on failure the tests
print the tail of the logs (see `Managed.tail`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .tools import ROOT, tool


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as err:  # a server still starting refuses connections
            last_error = err
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@dataclass
class Managed:
    """One real server process with its log file."""

    name: str
    argv: Sequence[str]
    workdir: Path
    ready_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> Managed:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(self._ready, timeout, f"{self.name} at {self.ready_url}")
        except TimeoutError as err:
            self.stop()
            raise TimeoutError(f"{err}\n--- {self.name} log ---\n{self.tail()}") from None
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        status, _ = http_get(self.ready_url, timeout=2)
        return status == 200

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


# --- Prometheus ---------------------------------------------------------------------------


@dataclass
class Prometheus:
    server: Managed
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}{path}?{query}", timeout=30)
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {status} {body[:500]!r}")
        return data["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        result: list[dict[str, Any]] = self.api("/api/v1/query", **params)["result"]
        return result

    def scalar_values(self, promql: str) -> dict[str, float]:
        """{label-string: value} for a query's instant vector, for readable assertions."""
        out: dict[str, float] = {}
        for item in self.query(promql):
            labels = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()))
            out[labels] = float(item["value"][1])
        return out


def prometheus_config(
    *,
    rule_files: Sequence[Path] = (),
    alertmanager_port: int | None = None,
    scrape_targets: Mapping[str, str] = {},
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
) -> dict[str, Any]:
    """The shipped example config (alerts/prometheus.yml), pointed at this test's servers."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "alerts" / "prometheus.yml").read_text())
    config["global"]["evaluation_interval"] = evaluation_interval
    config["global"]["scrape_interval"] = scrape_interval
    config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager_port is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        }
    config["scrape_configs"] = [
        {"job_name": job, "static_configs": [{"targets": [target]}]}
        for job, target in scrape_targets.items()
    ]
    return config


def start_prometheus(
    workdir: Path,
    config: Mapping[str, Any],
    port: int | None = None,
    extra_args: Sequence[str] = (),
) -> Prometheus:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = port or free_port()
    server = Managed(
        name="prometheus",
        argv=[
            str(tool("prometheus")),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            *extra_args,
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
    )
    server.start()
    return Prometheus(server=server, port=port)


# --- OpenTelemetry Collector ----------------------------------------------------------------


@dataclass
class Collector:
    server: Managed
    grpc_port: int
    http_port: int
    metrics_port: int

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"


def start_collector(
    workdir: Path,
    remote_write_url: str,
    config: Path | None = None,
    env: Mapping[str, str] = {},
) -> Collector:
    """Our otelcol with the shipped otel-collector/config.yaml, on free loopback ports."""
    grpc_port, http_port, metrics_port, health_port = (free_port() for _ in range(4))
    server = Managed(
        name="otelcol",
        argv=[
            str(tool("otelcol")),
            f"--config={config or ROOT / 'otel-collector' / 'config.yaml'}",
        ],
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


# --- Alertmanager ---------------------------------------------------------------------------


@dataclass
class Alertmanager:
    server: Managed
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        status, body = http_get(f"{self.url}/api/v2/alerts")
        assert status == 200, body
        result: list[dict[str, Any]] = json.loads(body)
        return result


def start_alertmanager(
    workdir: Path,
    config: Path | None = None,
    env: Mapping[str, str] = {},
) -> Alertmanager:
    """A single Alertmanager, running in `workdir` (receivers' `url_file` paths are relative to
    it). Clustering is off, as in compose.yaml: with a cluster port an instance waits for its
    peers to settle before its first notification (about 10 s)."""
    port = free_port()
    server = Managed(
        name="alertmanager",
        argv=[
            str(tool("alertmanager")),
            f"--config.file={config or ROOT / 'alerts' / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
        env=env,
    )
    server.start()
    return Alertmanager(server, port)


@contextlib.contextmanager
def running(*servers: Managed) -> Iterator[None]:
    """Stop every server when the block ends, whatever happened."""
    try:
        yield
    finally:
        for server in reversed(servers):
            server.stop()
