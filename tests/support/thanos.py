"""The budget bundle on Thanos, on loopback, for end-to-end tests (the deployment in thanos/).

app (BudgetTelemetry) -> OTLP -> our otelcol (shipped config + thanos/otelcol-ha.yaml)
  -> Prometheus replicas A and B (agent mode, thanos/prometheus-replica.yml, label `replica`)
  -> Thanos Receive x3 (hashring thanos/hashring.json, replication factor 2)
  -> Thanos Query (deduplicates `replica` and `receive_replica`)
  <- Thanos Rule (stateful: the rendered rules, evaluated through Query; its TSDB is a store of
     Query) -> Alertmanager (shipped alerts/alertmanager.yml) -> a test webhook.

Every process is real, on free 127.0.0.1 ports, restartable on the same ports (fault tests), and
stopped at the end. The helpers from procs.py and pipeline.py this module needs are imported
here only, so tests of this deployment depend on this module alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from budgetwatch.rules import Timing

from .pipeline import (
    App,
    Pipeline,
    alertmanager_config_for,
    collector_env,
    render_rules,
    start_app,
)
from .procs import (
    Collector,
    Managed,
    Prometheus,
    free_port,
    http_get,
    start_alertmanager,
    wait_until,
)
from .tools import ROOT, tool
from .webhook import WebhookReceiver

DEPLOYMENT = ROOT / "thanos"
REPLICAS = ("A", "B")
RECEIVERS = 3


def thanos() -> str:
    return str(tool("thanos"))


@dataclass
class Ports:
    http: int = field(default_factory=free_port)
    grpc: int = field(default_factory=free_port)
    write: int = field(default_factory=free_port)
    capnproto: int = field(default_factory=free_port)  # replication listener, unused here


def receive_node(workdir: Path, index: int, ports: Ports, hashring: Path) -> Managed:
    """One Receive node (router and ingestor), flags as in thanos/README.md."""
    return Managed(
        name=f"receive-{index}",
        argv=[
            thanos(),
            "receive",
            f"--tsdb.path={workdir / 'data'}",
            f"--http-address=127.0.0.1:{ports.http}",
            f"--grpc-address=127.0.0.1:{ports.grpc}",
            f"--remote-write.address=127.0.0.1:{ports.write}",
            f"--receive.capnproto-address=127.0.0.1:{ports.capnproto}",
            f"--receive.local-endpoint=127.0.0.1:{ports.grpc}",
            f"--receive.hashrings-file={hashring}",
            "--receive.hashrings-algorithm=ketama",
            "--receive.replication-factor=2",
            f'--label=receive_replica="{index}"',
            "--tsdb.retention=1d",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{ports.http}/-/ready",
    )


def hashring_for(grpc_ports: Sequence[int]) -> list[dict[str, Any]]:
    """The shipped thanos/hashring.json with its endpoints on this test's ports."""
    rings: list[dict[str, Any]] = json.loads((DEPLOYMENT / "hashring.json").read_text())
    assert len(rings) == 1 and len(rings[0]["endpoints"]) == len(grpc_ports), rings
    rings[0]["endpoints"] = [f"127.0.0.1:{p}" for p in grpc_ports]
    return rings


def query_endpoints_for(receive_grpc: Sequence[int], rule_grpc: int) -> dict[str, Any]:
    """The shipped thanos/query-endpoints.yml on this test's ports (the ruler's entry last)."""
    config: dict[str, Any] = yaml.safe_load((DEPLOYMENT / "query-endpoints.yml").read_text())
    *receivers, ruler = config["endpoints"]
    assert len(receivers) == len(receive_grpc) and ruler.get("strict") is True, config
    for entry, port in zip(receivers, receive_grpc, strict=True):
        entry["address"] = f"127.0.0.1:{port}"
    ruler["address"] = f"127.0.0.1:{rule_grpc}"
    return config


def query_node(
    workdir: Path,
    http_port: int,
    receive_grpc: Sequence[int],
    rule_grpc: int,
    lookback: str | None = None,
) -> Managed:
    """Thanos Query over the Receive nodes and the ruler, deduplicating both copy labels."""
    workdir.mkdir(parents=True, exist_ok=True)
    endpoints = workdir / "query-endpoints.yml"
    endpoints.write_text(yaml.safe_dump(query_endpoints_for(receive_grpc, rule_grpc)))
    return Managed(
        name="query",
        argv=[
            thanos(),
            "query",
            f"--http-address=127.0.0.1:{http_port}",
            f"--grpc-address=127.0.0.1:{free_port()}",
            f"--endpoint.sd-config-file={endpoints}",
            "--query.replica-label=replica",
            "--query.replica-label=receive_replica",
            *([f"--query.lookback-delta={lookback}"] if lookback else []),
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{http_port}/-/ready",
    )


def rule_node(
    workdir: Path,
    rule_files: Sequence[Path],
    eval_interval: str,
    query_http: int,
    http_port: int,
    grpc_port: int,
    alertmanager_port: int | None = None,
) -> Managed:
    """Stateful Thanos Rule: evaluates through Query, keeps its results in its own TSDB."""
    am = [f"--alertmanagers.url=http://127.0.0.1:{alertmanager_port}"] if alertmanager_port else []
    return Managed(
        name="rule",
        argv=[
            thanos(),
            "rule",
            f"--data-dir={workdir / 'data'}",
            *(f"--rule-file={p}" for p in rule_files),
            f"--eval-interval={eval_interval}",
            f"--query=http://127.0.0.1:{query_http}",
            *am,
            f"--http-address=127.0.0.1:{http_port}",
            f"--grpc-address=127.0.0.1:{grpc_port}",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{http_port}/-/ready",
    )


def replica_config(remote_write_url: str, scrape: dict[str, int]) -> dict[str, Any]:
    """The shipped thanos/prometheus-replica.yml, writing to `remote_write_url`, scraping each
    job at the port `scrape` gives it, every second."""
    config: dict[str, Any] = yaml.safe_load((DEPLOYMENT / "prometheus-replica.yml").read_text())
    [remote] = config["remote_write"]
    remote["url"] = remote_write_url
    config["global"]["scrape_interval"] = "1s"
    assert {job["job_name"] for job in config["scrape_configs"]} == set(scrape), config
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{scrape[job['job_name']]}"]}]
    return config


def prometheus_replica(
    workdir: Path, name: str, port: int, remote_write_url: str, scrape: dict[str, int]
) -> Managed:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(replica_config(remote_write_url, scrape), sort_keys=False))
    return Managed(
        name=f"prometheus-{name}",
        argv=[
            str(tool("prometheus")),
            "--agent",
            f"--config.file={config}",
            f"--storage.agent.path={workdir / 'wal'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
        env={"BUDGETWATCH_REPLICA": name},
    )


def ha_collector(workdir: Path, replica_a: str, replica_b: str) -> Collector:
    """Our otelcol: the shipped config, overlaid with thanos/otelcol-ha.yaml (the collector
    merges its --config files), writing every point to both Prometheus replicas."""
    ports = {k: free_port() for k in ("grpc", "http", "metrics", "health")}
    server = Managed(
        name="otelcol",
        argv=[
            str(tool("otelcol")),
            f"--config={ROOT / 'otel-collector' / 'config.yaml'}",
            f"--config={DEPLOYMENT / 'otelcol-ha.yaml'}",
        ],
        workdir=workdir,
        ready_url=f"http://127.0.0.1:{ports['health']}/",
        env={**collector_env(ports, replica_a), "BUDGETWATCH_REMOTE_WRITE_URL_B": replica_b},
    )
    return Collector(server, ports["grpc"], ports["http"], ports["metrics"])


@dataclass
class ThanosQuery(Prometheus):
    """Thanos Query's Prometheus-compatible API, with its deduplication switch."""

    def raw(self, promql: str, dedup: bool) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": promql, "dedup": str(dedup).lower()})
        status, body = http_get(f"{self.url}/api/v1/query?{params}", timeout=30)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", body[:500]
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def store_count(self) -> int:
        status, body = http_get(f"{self.url}/api/v1/stores")
        assert status == 200, body
        return sum(len(v) for v in json.loads(body)["data"].values())


@dataclass
class ThanosStack(Pipeline):
    """A Pipeline (values, wait_value, apps, webhook ...) whose `prometheus` is Thanos Query."""

    replicas: dict[str, Managed] = field(default_factory=dict)
    receivers: list[Managed] = field(default_factory=list)
    ruler: Managed | None = None
    ruler_port: int = 0

    @property
    def query(self) -> ThanosQuery:
        assert isinstance(self.prometheus, ThanosQuery)
        return self.prometheus

    def servers(self) -> list[Managed]:
        ruler = [self.ruler] if self.ruler else []
        return [
            self.collector.server,
            *self.replicas.values(),
            *self.receivers,
            self.prometheus.server,
            *ruler,
            self.alertmanager.server,
        ]

    def ruler_metric(self, name: str) -> dict[str, float]:
        """A metric of Thanos Rule's own /metrics, by its label string."""
        status, body = http_get(f"http://127.0.0.1:{self.ruler_port}/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            match = re.match(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", line)
            if match:
                out[match.group(1) or ""] = float(match.group(2))
        return out

    def with_ruler_as_evaluator(self) -> ThanosStack:
        """This stack as the single-server tests see it: they stop and start
        `pipe.prometheus.server` as "the rule evaluator", which here is Thanos Rule; reads still
        go to Query. For running those stories (tests/e2e/test_outages.py) here unchanged."""
        assert self.ruler is not None
        return dataclasses.replace(
            self, prometheus=ThanosQuery(server=self.ruler, port=self.query.port)
        )

    def logs(self, lines: int = 40) -> str:
        parts = [f"--- {s.name} ({s.log_path}) ---\n{s.tail(lines)}" for s in self.servers()]
        parts += [f"--- app {a.instance_id} ---\n{a.tail(lines)}" for a in self.apps]
        return "\n".join(parts)


@contextlib.contextmanager
def thanos_stack(
    workdir: Path,
    limits_path: Path,
    *,
    rule_interval: str = "1s",
    alert_for: str | None = "5s",
    timing: Timing | None = None,
    lookback: str | None = None,
) -> Iterator[ThanosStack]:
    """Start the whole deployment; stop it all at the end (logs printed on a failure)."""
    started = time.monotonic()
    webhook = WebhookReceiver().start()
    servers: list[Managed] = []
    apps: list[App] = []
    stack: ThanosStack | None = None

    def up(server: Managed, timeout: float = 60) -> Managed:
        servers.append(server)
        return server.start(timeout=timeout)

    try:
        am_dir = workdir / "alertmanager"
        am_dir.mkdir(parents=True, exist_ok=True)
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(alertmanager_config_for(webhook.url), sort_keys=False))
        alertmanager = start_alertmanager(am_dir, config=am_config)
        servers.append(alertmanager.server)

        recv_ports = [Ports() for _ in range(RECEIVERS)]
        hashring = workdir / "hashring.json"
        hashring.write_text(json.dumps(hashring_for([p.grpc for p in recv_ports])))
        receivers = [
            up(receive_node(workdir / f"receive-{i}", i, p, hashring))
            for i, p in enumerate(recv_ports)
        ]

        query_http, rule_http, rule_grpc = free_port(), free_port(), free_port()
        query_server = up(
            query_node(
                workdir / "query", query_http, [p.grpc for p in recv_ports], rule_grpc, lookback
            )
        )
        query = ThanosQuery(server=query_server, port=query_http)

        rule_files = render_rules(
            limits_path, workdir / "rule" / "rules", rule_interval, alert_for, timing
        )
        ruler = up(
            rule_node(
                workdir / "rule",
                rule_files,
                rule_interval,
                query_http,
                rule_http,
                rule_grpc,
                alertmanager_port=alertmanager.port,
            )
        )
        # Query learns its stores asynchronously: wait until it has every receiver and the ruler.
        wait_until(lambda: query.store_count() == RECEIVERS + 1, 60, "Thanos Query's stores")

        replica_ports = {name: free_port() for name in REPLICAS}
        write_urls = [f"http://127.0.0.1:{replica_ports[n]}/api/v1/write" for n in REPLICAS]
        collector = ha_collector(workdir / "otelcol", write_urls[0], write_urls[1])
        scrape = {"otelcol": collector.metrics_port, "thanos-rule": rule_http}
        replicas = {
            name: up(
                prometheus_replica(
                    workdir / f"prometheus-{name}",
                    name,
                    replica_ports[name],
                    f"http://127.0.0.1:{recv_ports[i].write}/api/v1/receive",
                    scrape,
                )
            )
            for i, name in enumerate(REPLICAS)
        }
        up(collector.server)

        stack = ThanosStack(
            workdir=workdir,
            limits_path=limits_path,
            namespace="synthorg",
            prometheus=query,
            collector=collector,
            alertmanager=alertmanager,
            webhook=webhook,
            rule_files=rule_files,
            apps=apps,
            replicas=replicas,
            receivers=receivers,
            ruler=ruler,
            ruler_port=rule_http,
        )
        print(f"thanos stack up in {time.monotonic() - started:.1f}s under {workdir}")
        yield stack
    except BaseException:
        if stack is not None:
            print(stack.logs(), file=sys.stderr)
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


__all__ = ["App", "ThanosQuery", "ThanosStack", "start_app", "thanos_stack"]
