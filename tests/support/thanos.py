"""The budget bundle on Thanos, on loopback, for end-to-end tests (the deployment in thanos/).

app (BudgetTelemetry) -> OTLP -> our otelcol (shipped config + thanos/otelcol-ha.yaml)
  -> Prometheus replicas A and B (agent mode, thanos/prometheus-replica.yml, label `replica`)
  -> Thanos Receive x3 (hashring thanos/hashring.json, replication factor 2)
  -> Thanos Query (deduplicates `replica` and `receive_replica`)
  <- Thanos Rule (stateful: the rendered rules, evaluated through Query; its TSDB is a store of
     Query) -> Alertmanager (shipped alerts/alertmanager.yml) -> a test webhook.

Every process is real, on free 127.0.0.1 ports, restartable on the same ports (fault tests), and
stopped at the end. The launchers are budgetwatch.dev.thanos (shared with `make bench-thanos`);
this module adds the test app processes and the whole stack as one fixture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from budgetwatch.dev.servers import (
    Managed,
    alertmanager_config_for,
    free_port,
    http_get,
    start_alertmanager,
    wait_until,
)
from budgetwatch.dev.sink import NotificationSink as WebhookReceiver
from budgetwatch.dev.stack import render_rules
from budgetwatch.dev.thanos import (
    RECEIVERS,
    REPLICAS,
    Ports,
    ThanosQuery,
    ha_collector,
    hashring_for,
    prometheus_replica,
    query_node,
    receive_node,
    rule_node,
)
from budgetwatch.rules import Timing

from .pipeline import App, Pipeline, start_app


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
