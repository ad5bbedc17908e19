"""The dev stack's servers: the real collector, Prometheus and Alertmanager on 127.0.0.1, each
with the repository's shipped config pointed at the others (see stack.py for the whole stack).

One place starts and stops the servers for the tests, `make demo` (scripts/demo.py) and the
rule benchmark (scripts/bench_rules.py). The binaries are the ones `make tools` builds into
.tools/bin; ports are free ones unless the caller fixes them (the demo's well-known ports).
Each server logs to a file in its work directory; `Managed.tail` shows the end of it.

Works from a checkout (the editable install of `make venv`): it reads the shipped configs
(otel-collector/config.yaml, alerts/prometheus.yml, alerts/alertmanager.yml) from there.
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

# instrumentation/budgetwatch/dev/servers.py -> the repository's root
ROOT = Path(__file__).resolve().parents[3]
TOOLS_BIN = ROOT / ".tools" / "bin"
TOOL_NAMES = ("otelcol", "prometheus", "promtool", "alertmanager", "amtool", "dashcheck", "thanos")


def tool(name: str) -> Path:
    """Path of a binary from `make tools`; a clear failure when it was not built."""
    path = TOOLS_BIN / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make tools` (make test does it for you)")
    return path


def run_tool(
    name: str, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion and return its result (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(tool(name)), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be listened on (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
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
    """One real server process with its log file; its own process group, so that Ctrl-C in
    a terminal reaches the caller, which stops the servers in order."""

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
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        try:
            wait_until(self._ready, timeout, f"{self.name} at {self.ready_url}")
        except (TimeoutError, RuntimeError) as err:
            self.stop()
            raise TimeoutError(f"{err}\n--- {self.name} log ---\n{self.tail()}") from None
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
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
    scrape_targets: Mapping[str, str] | None = None,
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
) -> dict[str, Any]:
    """The shipped example config (alerts/prometheus.yml), pointed at these servers."""
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
        for job, target in (scrape_targets or {}).items()
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

COLLECTOR_PORTS = ("grpc", "http", "metrics", "health")


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


def start_collector(
    workdir: Path,
    remote_write_url: str,
    *,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "otelcol",
    ports: Mapping[str, int] | None = None,
) -> Collector:
    """Our otelcol with the shipped otel-collector/config.yaml (or `config`); `ports` (grpc,
    http, metrics, health) default to free ones, and stay the same across restarts."""
    chosen = {key: (ports or {}).get(key) or free_port() for key in COLLECTOR_PORTS}
    server = Managed(
        name=name,
        argv=[
            str(tool("otelcol")),
            f"--config={config or ROOT / 'otel-collector' / 'config.yaml'}",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{chosen['health']}/",
        env={**collector_env(chosen, remote_write_url), **(env or {})},
    )
    server.start()
    return Collector(server, chosen["grpc"], chosen["http"], chosen["metrics"])


# --- Alertmanager and where it notifies -----------------------------------------------------


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


def start_alertmanager(
    workdir: Path,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Alertmanager:
    """A single Alertmanager, running in `workdir` (receivers' `url_file` paths are relative to
    it). Clustering is off, as in compose.yaml: with a cluster port an instance waits for its
    peers to settle before its first notification (about 10 s)."""
    port = port or free_port()
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
        env=env or {},
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
