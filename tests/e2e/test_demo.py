"""`make demo` runs scripts/demo.py: a bounded run works end to end, Ctrl-C and busy ports too.

The demo is run on free ports (the defaults 4317/4318/9090/9093 may be taken on a shared
machine) with its work directory under tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from budgetwatch.dev.stack import ROOT, free_port

pytestmark = pytest.mark.e2e

DEMO = ROOT / "scripts" / "demo.py"
PORT_FLAGS = (
    "--otlp-grpc-port",
    "--otlp-http-port",
    "--prometheus-port",
    "--alertmanager-port",
    "--collector-metrics-port",
    "--collector-health-port",
)


def _argv(tmp_path: Path, seconds: float, ports: dict[str, int]) -> list[str]:
    argv = [sys.executable, str(DEMO), "--limits", "limits.yaml", "--seconds", str(seconds)]
    argv += ["--workdir", str(tmp_path / "demo"), "--seed", "7", "--refresh", "2"]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    return argv


def _free_ports() -> dict[str, int]:
    return {flag: free_port() for flag in PORT_FLAGS}


def _summary(stdout: str) -> dict[str, Any]:
    [line] = [x for x in stdout.splitlines() if x.startswith("SUMMARY ")]
    result: dict[str, Any] = json.loads(line.removeprefix("SUMMARY "))
    return result


def test_bounded_demo_shows_spend_the_intern_alert_and_the_looping_agent(tmp_path: Path) -> None:
    # eng-qa loops from 100 s on (the demo's default --loop-after); its spike alert, on the
    # demo's time scale (40 s against the 40-second steps before, for: 10s), fires within
    # 45 s of the loop's start (measured: pending after 12 s, firing after 22 s).
    seconds = 160
    started = time.monotonic()
    result = subprocess.run(
        _argv(tmp_path, seconds, _free_ports()),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},  # no GRAFANA_* from the caller
    )
    took = time.monotonic() - started
    print(result.stdout[-4000:], result.stderr[-2000:])
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stdout)
    assert summary["stopped_by"] == f"--seconds {seconds}"
    spend = summary["agents"]
    # Every simulated agent, read back from Prometheus, spent something; unassigned tasks too.
    for agent in ("ceo", "cto", "eng-backend", "intern"):
        assert (spend.get(agent) or 0) > 0, spend
    assert "_unassigned" in spend
    # The intern overspends its daily budget of 1: its alert is at least pending by now.
    assert any(a.endswith("{intern}") and "AgentBudget" in a for a in summary["alerts_seen"]), (
        summary["alerts_seen"]
    )
    looped = summary["loop_after_s"]
    assert looped == 100
    spike = "AgentSpendSpike(firing){eng-qa}"
    assert spike in summary["first_seen_s"], summary["alerts_seen"]
    assert summary["first_seen_s"][spike] <= looped + 45, summary["first_seen_s"]
    # Nobody else spikes: the other agents keep their pace.
    assert [a for a in summary["alerts_seen"] if "SpendSpike" in a and "eng-qa" not in a] == []
    assert "intern" in result.stdout and "daily %" in result.stdout  # the table was shown
    assert "everything shut down" in result.stdout
    assert took < seconds + 90, f"the demo took {took:.0f}s to stop"


class _GrafanaAPI:
    """Records the demo's calls to Grafana's HTTP API (no Grafana server can run here)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.calls.append((self.path, self.headers.get("Authorization", ""), body))
                reply = {"url": "/d/x"} if self.path == "/api/dashboards/db" else {}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_ctrl_c_stops_everything_cleanly_and_grafana_gets_the_dashboards(tmp_path: Path) -> None:
    ports = _free_ports()
    grafana = _GrafanaAPI()
    proc = subprocess.Popen(
        _argv(tmp_path, 0, ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "GRAFANA_URL": f"http://127.0.0.1:{grafana.server.server_address[1]}/",
            "GRAFANA_TOKEN": "glsa_test",
        },
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
                break
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    grafana.server.shutdown()
    assert proc.returncode == 0, err
    assert "demo stopped (SIGINT)" in out
    # The datasource first, then every generated dashboard, with the token.
    from budgetwatch.dashboards import render_dashboards
    from budgetwatch.limits import load_limits

    expected = render_dashboards(load_limits(ROOT / "limits.yaml"), "limits.yaml")
    paths = [path for path, _, _ in grafana.calls]
    assert paths == ["/api/datasources"] + ["/api/dashboards/db"] * len(expected), paths
    assert {auth for _, auth, _ in grafana.calls} == {"Bearer glsa_test"}
    datasource = grafana.calls[0][2]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == f"http://127.0.0.1:{ports['--prometheus-port']}"
    sent = sorted(body["dashboard"]["uid"] for _, _, body in grafana.calls[1:])
    assert sent == sorted(json.loads(text)["uid"] for text in expected.values())
    assert all(body["overwrite"] is True for _, _, body in grafana.calls[1:])
    # Every server is gone: its port is free again.
    for flag in ("--prometheus-port", "--alertmanager-port", "--otlp-http-port"):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            s.bind(("127.0.0.1", ports[flag]))


def test_a_busy_port_is_named_with_the_flag_to_change_it(tmp_path: Path) -> None:
    ports = _free_ports()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["--prometheus-port"]))
        blocker.listen()
        result = subprocess.run(
            _argv(tmp_path, 5, ports), capture_output=True, text=True, timeout=60, cwd=ROOT
        )
    assert result.returncode == 2
    assert f"port {ports['--prometheus-port']}" in result.stderr
    assert "--prometheus-port" in result.stderr
    assert not (tmp_path / "demo").exists()  # nothing started, nothing written


def test_a_bad_limits_file_is_named_and_nothing_is_started(tmp_path: Path) -> None:
    bad = tmp_path / "limits.yaml"
    text = (ROOT / "limits.yaml").read_text().replace("warning: 75", "warning: 95")
    bad.write_text(text)  # warning above critical (90): thresholds must increase
    argv = _argv(tmp_path, 5, _free_ports())
    argv[argv.index("limits.yaml")] = str(bad)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep").write_text("a previous run's output")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "limits.yaml" in result.stderr and "thresholds" in result.stderr, result.stderr
    assert (tmp_path / "demo" / "keep").exists()  # nothing was wiped for a run that never began
