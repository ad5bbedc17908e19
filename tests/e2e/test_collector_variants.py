"""The shipped collector variants: bearer-token auth (+TLS) and remote write to Mimir.

config.auth.yaml and config.mimir.yaml are full configs (a user runs one file); the first
tests keep them identical to config.yaml except for what they are for. The e2e cases run our
otelcol with them against a real Prometheus.
"""

from __future__ import annotations

import copy
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.pipeline import start_app
from tests.support.rawotlp import cost_request

from budgetwatch.dev.stack import (
    ROOT,
    Prometheus,
    prometheus_config,
    start_collector,
    start_prometheus,
    tool,
    wait_until,
)

CONFIGS = ROOT / "otel-collector"
TOKEN = "e2e-secret-token"


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((CONFIGS / name).read_text())
    return doc


def test_auth_config_is_the_shipped_config_plus_auth_and_tls() -> None:
    base, auth = _load("config.yaml"), copy.deepcopy(_load("config.auth.yaml"))
    assert auth["extensions"].pop("bearertokenauth") == {
        "filename": "${env:BUDGETWATCH_OTLP_TOKEN_FILE:-}",
        "token": "${env:BUDGETWATCH_OTLP_TOKEN:-}",
    }
    auth["service"]["extensions"].remove("bearertokenauth")
    for protocol in ("grpc", "http"):
        settings = auth["receivers"]["otlp"]["protocols"][protocol]
        assert settings.pop("auth") == {"authenticator": "bearertokenauth"}
        assert settings.pop("tls")["enabled"] == "${env:BUDGETWATCH_OTLP_TLS_ENABLED:-false}"
    assert auth == base


def test_mimir_config_is_the_shipped_config_with_a_tenant() -> None:
    base, mimir = _load("config.yaml"), copy.deepcopy(_load("config.mimir.yaml"))
    exporter = mimir["exporters"]["prometheus_remote_write"]
    assert exporter.pop("headers") == {
        "X-Scope-OrgID": "${env:BUDGETWATCH_MIMIR_TENANT:-budgetwatch}"
    }
    assert exporter["endpoint"].endswith("/api/v1/push}")
    exporter["endpoint"] = base["exporters"]["prometheus_remote_write"]["endpoint"]
    assert mimir == base


def test_the_variants_validate_and_auth_fails_closed() -> None:
    for name, env in (
        ("config.mimir.yaml", {}),
        ("config.auth.yaml", {"BUDGETWATCH_OTLP_TOKEN": TOKEN}),
        ("config.auth.yaml", {"BUDGETWATCH_OTLP_TOKEN_FILE": "token-file"}),
    ):
        result = subprocess.run(
            [str(tool("otelcol")), "validate", f"--config={CONFIGS / name}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert result.returncode == 0, (name, result.stdout + result.stderr)
    # Without any token the auth config must refuse to start, never fall back to open.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_OTLP_TOKEN")}
    result = subprocess.run(
        [str(tool("otelcol")), "validate", f"--config={CONFIGS / 'config.auth.yaml'}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0
    assert "no bearer token provided" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), prometheus_config())
    try:
        yield prom
    finally:
        prom.server.stop()


def _post(url: str, body: bytes, token: str | None, context: ssl.SSLContext | None = None) -> int:
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.mark.e2e
def test_with_auth_only_the_app_holding_the_token_gets_through(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    collector = start_collector(
        tmp_path / "otelcol",
        f"{prometheus.url}/api/v1/write",
        config=CONFIGS / "config.auth.yaml",
        env={"BUDGETWATCH_OTLP_TOKEN_FILE": str(token_file)},
    )
    try:
        url = f"{collector.otlp_http}/v1/metrics"
        assert _post(url, cost_request("forger", 99.0, "no-token"), None) == 401
        assert _post(url, cost_request("forger", 99.0, "bad-token"), "wrong") == 401

        app = start_app(
            tmp_path / "app",
            collector.otlp_http,
            service="authed",
            extra={"headers": {"Authorization": f"Bearer {TOKEN}"}},
        )
        app.cost("cto", 0.5)
        app.flush()
        query = f'synthorg_cost_total{{instance="{app.instance_id}",gen_ai_agent_id="cto"}}'
        wait_until(lambda: bool(prometheus.query(query)), 60, "the authenticated app's cost")
        assert float(prometheus.query(query)[0]["value"][1]) == 0.5
        app.shutdown()
        # The refused requests left nothing behind, and no Prometheus sample names them.
        assert prometheus.query('synthorg_cost_total{gen_ai_agent_id="forger"}') == []
        assert prometheus.query('{instance=~"no-token|bad-token"}') == []
        # The same app without the token is refused too (its export fails, nothing arrives).
        anonymous = start_app(tmp_path / "app", collector.otlp_http, service="anonymous")
        anonymous.cost("cto", 0.25)
        assert anonymous.send("flush")["ok"] is False
        anonymous.kill()
        assert prometheus.query('synthorg_cost_total{job="anonymous"}') == []
    finally:
        collector.server.stop()


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_auth_with_tls_refuses_plain_http_and_accepts_the_token_over_tls(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    collector = start_collector(
        tmp_path / "otelcol",
        f"{prometheus.url}/api/v1/write",
        config=CONFIGS / "config.auth.yaml",
        env={
            "BUDGETWATCH_OTLP_TOKEN": TOKEN,
            "BUDGETWATCH_OTLP_TLS_ENABLED": "true",
            "BUDGETWATCH_OTLP_TLS_CERT_FILE": str(cert),
            "BUDGETWATCH_OTLP_TLS_KEY_FILE": str(key),
        },
    )
    try:
        https = f"https://127.0.0.1:{collector.http_port}/v1/metrics"
        context = ssl.create_default_context(cafile=str(cert))
        # Plain HTTP, even with the token, gets Go's "HTTP request to an HTTPS server" 400.
        plain = _post(
            f"http://127.0.0.1:{collector.http_port}/v1/metrics",
            cost_request("cto", 1.0, "plain"),
            TOKEN,
        )
        assert plain == 400
        assert _post(https, cost_request("cto", 1.0, "tls-no-token"), None, context) == 401
        assert _post(https, cost_request("cto", 0.75, "tls-token"), TOKEN, context) == 200
        query = 'synthorg_cost_total{instance="tls-token"}'
        wait_until(lambda: bool(prometheus.query(query)), 60, "the TLS request's sample")
        assert float(prometheus.query(query)[0]["value"][1]) == 0.75
        assert prometheus.query('synthorg_cost_total{instance=~"plain|tls-no-token"}') == []
    finally:
        collector.server.stop()


class _TenantProxy:
    """Stands where Mimir would: records each push's tenant header, forwards to Prometheus."""

    def __init__(self, upstream: str) -> None:
        self.tenants: list[str | None] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.tenants.append(self.headers.get("X-Scope-OrgID"))
                forward = urllib.request.Request(upstream, data=body, method="POST")
                for name in (
                    "Content-Type",
                    "Content-Encoding",
                    "X-Prometheus-Remote-Write-Version",
                ):
                    if self.headers.get(name):
                        forward.add_header(name, self.headers[name])
                try:
                    with urllib.request.urlopen(forward, timeout=10) as response:
                        status = response.status
                except urllib.error.HTTPError as err:
                    status = err.code
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/push"


@pytest.mark.e2e
def test_mimir_variant_sends_the_tenant_header(prometheus: Prometheus, tmp_path: Path) -> None:
    proxy = _TenantProxy(f"{prometheus.url}/api/v1/write")
    collector = start_collector(
        tmp_path / "otelcol",
        proxy.url,
        config=CONFIGS / "config.mimir.yaml",
        env={"BUDGETWATCH_MIMIR_TENANT": "team-agents"},
    )
    try:
        assert (
            _post(
                f"{collector.otlp_http}/v1/metrics", cost_request("cto", 0.125, "mimir-test"), None
            )
            == 200
        )
        query = 'synthorg_cost_total{instance="mimir-test"}'
        wait_until(lambda: bool(prometheus.query(query)), 60, "the sample through the tenant proxy")
        assert float(prometheus.query(query)[0]["value"][1]) == 0.125
        time.sleep(0.5)
        assert proxy.tenants and set(proxy.tenants) == {"team-agents"}
    finally:
        collector.server.stop()
        proxy.server.shutdown()
