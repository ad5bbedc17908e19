"""Thanos on loopback: the launchers of the deployment in thanos/ (Receive nodes with a
hashring, Query with deduplication, a stateful Rule, the HA pair of Prometheus replicas and the
collector that writes to both), for the Thanos tests and `make bench-thanos`.

app -> OTLP -> our otelcol (shipped config + thanos/otelcol-ha.yaml)
  -> Prometheus replicas A and B (agent mode, thanos/prometheus-replica.yml, label `replica`)
  -> Thanos Receive x3 (hashring thanos/hashring.json, replication factor 2)
  -> Thanos Query (deduplicates `replica` and `receive_replica`)
  <- Thanos Rule (stateful: the rendered rules, evaluated through Query) -> Alertmanager.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .servers import (
    ROOT,
    Collector,
    Managed,
    Prometheus,
    collector_env,
    free_port,
    http_get,
    tool,
)

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
