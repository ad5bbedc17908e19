"""Sizing the budget bundle on Thanos (thanos/): `make bench-thanos`.

For each N in --agents (default 1,000 and 10,000): the deployment of thanos/ without the
collector (three Receive nodes on the shipped hashring with replication factor 2, Query
deduplicating `replica` and `receive_replica`, a stateful Thanos Rule with the rules rendered
from limits.yaml), fed as the HA pair would feed it: N agents x 3 models of `<ns>_cost_total`
(bench_rules.Dataset: N/100 processes), remote-written twice, as replica A and replica B, one
sample per series every --interval seconds (10 s: the instrumentation's default export
interval). After --rounds evaluations of every rule group it reports:
- each rule group's evaluation time through Query (median and max, Thanos Rule /api/v1/rules);
- Receive's head series and resident memory per node, and the memory per active series
  (the difference between the two sizes divided by the difference in series, so the fixed
  cost of a process cancels out); Query's and Rule's memory;
- the series the ruler records per agent.

A fresh ruler counts from first sight (the figures are flagged partial), and its own history
is minutes long, whereas bench_rules.py gives Prometheus two days of it; the rules' reads of
their own history are bounded by checkpoints (a few points per series), so this changes little.
Numbers depend on the machine: run it alone. From the repository root:
`.venv/bin/python scripts/bench_thanos.py --agents 1000`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_rules import Dataset, Feeder, _field, log  # same data set and writer
from budgetwatch.dev.servers import ROOT, Managed, free_port, http_get, wait_until
from budgetwatch.dev.stack import render_rules
from budgetwatch.dev.thanos import (
    RECEIVERS,
    Ports,
    ThanosQuery,
    hashring_for,
    query_node,
    receive_node,
    rule_node,
)


class ReplicaFeeder(Feeder):
    """bench_rules' writer, each series with the external label of one Prometheus replica."""

    def __init__(self, ds: Dataset, url: str, since: int, replica: str) -> None:
        super().__init__(ds, url, since)
        extra = _field(1, _field(1, b"replica") + _field(2, replica.encode()))
        self.labels = [lbls + extra for lbls in self.labels]  # sorted: "replica" > "job"


def metrics(port: int) -> dict[str, float]:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert status == 200
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def rss(port: int) -> float:
    return metrics(port)["process_resident_memory_bytes"]


@dataclass
class Result:
    agents: int
    raw_series: int
    groups: dict[str, tuple[float, float]]  # group -> (median s, max s)
    receive_series: list[float]
    receive_rss: list[float]
    query_rss: float
    rule_rss: float
    recorded_per_agent: float


def rule_groups(port: int) -> dict[str, Any]:
    status, body = http_get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=30)
    assert status == 200, body[:300]
    return {g["name"]: g for g in json.loads(body)["data"]["groups"]}


def bench(args: argparse.Namespace, agents: int, scratch: Path) -> Result:
    servers: list[Managed] = []
    feeders: list[Feeder] = []
    try:
        ports = [Ports() for _ in range(RECEIVERS)]
        hashring = scratch / "hashring.json"
        hashring.write_text(json.dumps(hashring_for([p.grpc for p in ports])))
        for i, p in enumerate(ports):
            servers.append(receive_node(scratch / f"receive-{i}", i, p, hashring).start())
        q_http, r_http, r_grpc = free_port(), free_port(), free_port()
        query_server = query_node(scratch / "query", q_http, [p.grpc for p in ports], r_grpc)
        servers.append(query_server.start())
        query = ThanosQuery(query_server, q_http)

        now = int(time.time())
        today = now - now % 86400
        ds = Dataset(args.namespace, agents, args.interval, today, today, args.daily_limit)
        since = now - 150  # the rules' first look at a process reads 120 s back
        for replica, port in zip(("A", "B"), ports[:2], strict=True):
            url = f"http://127.0.0.1:{port.write}/api/v1/receive"
            feeders.append(ReplicaFeeder(ds, url, since, replica))
        log(f"N={agents}: writing {len(ds.labels)} series x 2 replicas since {since}")
        for feeder in feeders:
            feeder.start()
        wait_until(
            lambda: (
                (query.query("count(synthorg_cost_total)") or [{"value": [0, "0"]}])[0]["value"][1]
                == str(len(ds.labels))
            ),
            300,
            "Query to see every raw series",
            interval=2,
        )

        rule_files = render_rules(ROOT / "limits.yaml", scratch / "rules", args.rule_interval)
        ruler = rule_node(scratch / "rule", rule_files, args.rule_interval, q_http, r_http, r_grpc)
        servers.append(ruler.start())
        samples: dict[str, list[float]] = {}
        seen: dict[str, str] = {}
        deadline = time.monotonic() + args.timeout
        while min((len(v) for v in samples.values()), default=0) < args.rounds:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {args.rounds} evaluations: {samples}")
            for feeder in feeders:
                if feeder.error:
                    raise RuntimeError(f"feeder failed: {feeder.error}")
            for name, group in rule_groups(r_http).items():
                last = group.get("lastEvaluation", "")
                if last and not last.startswith("0001") and seen.get(name) != last:
                    if name in seen:  # skip the first evaluation: state recovery, cold caches
                        samples.setdefault(name, []).append(float(group["evaluationTime"]))
                    seen[name] = last
            time.sleep(1)

        recorded = query.query(
            f'count({{__name__=~"{args.namespace}(:|_agent_).*",gen_ai_agent_id!=""}})'
        )
        agents_seen = query.query(f"count({args.namespace}_agent_cost_day_to_date)")
        n_seen = float(agents_seen[0]["value"][1]) if agents_seen else 0
        if n_seen != agents:
            raise RuntimeError(f"day-to-date for {n_seen:.0f} agents, expected {agents}")
        receive = [metrics(p.http) for p in ports]
        return Result(
            agents=agents,
            raw_series=len(ds.labels) * 2,
            groups={n: (statistics.median(v), max(v)) for n, v in samples.items()},
            receive_series=[
                m["prometheus_tsdb_head_series" + '{tenant="default-tenant"}'] for m in receive
            ],
            receive_rss=[m["process_resident_memory_bytes"] for m in receive],
            query_rss=rss(q_http),
            rule_rss=rss(r_http),
            recorded_per_agent=float(recorded[0]["value"][1]) / agents if recorded else 0,
        )
    finally:
        for feeder in feeders:
            feeder.stop()
        for server in reversed(servers):
            server.stop()


def report(results: Sequence[Result], interval: int) -> str:
    mib = 1 << 20
    lines = [
        f"raw samples at one export every {interval}s: 2 replicas x 3 series per agent",
        "",
        "| agents | raw series (2 replicas) | samples/s in | Receive head series (3 nodes) "
        "| Receive RSS (3 nodes) | Query RSS | Rule RSS | recorded series per agent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.agents:,} | {r.raw_series:,} | {r.raw_series / interval:,.0f} "
            f"| {sum(r.receive_series):,.0f} | {sum(r.receive_rss) / mib:,.0f} MiB "
            f"| {r.query_rss / mib:,.0f} MiB | {r.rule_rss / mib:,.0f} MiB "
            f"| {r.recorded_per_agent:.1f} |"
        )
    lines += [
        "",
        "| agents | rule group | evaluation through Query, median | max |",
        "|---|---|---|---|",
    ]
    for r in results:
        for name, (median, worst) in sorted(r.groups.items()):
            lines.append(f"| {r.agents:,} | {name} | {median:.3f} s | {worst:.3f} s |")
    if len(results) >= 2:
        small, big = results[0], results[-1]
        per_series = (sum(big.receive_rss) - sum(small.receive_rss)) / (
            sum(big.receive_series) - sum(small.receive_series)
        )
        lines += [
            "",
            f"Receive memory per active head series (marginal): {per_series / 1024:.1f} KiB",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1000,10000")
    parser.add_argument("--interval", type=int, default=10, help="raw sample interval (s)")
    parser.add_argument("--rule-interval", default="15s")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--namespace", default="synthorg")
    args = parser.parse_args(argv)
    from budgetwatch.limits import load_limits

    # the agents' load of bench_rules (its bad day) against the shipped limits
    args.daily_limit = load_limits(ROOT / "limits.yaml").revisions[-1].default_limit("daily")
    if args.daily_limit is None:
        parser.error("limits.yaml: the bench needs an agent default daily limit")
    results = []
    for agents in sorted(int(a) for a in args.agents.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-thanos-") as scratch:
            started = time.monotonic()
            results.append(bench(args, agents, Path(scratch)))
            log(f"N={agents}: done in {time.monotonic() - started:.0f}s")
    print(report(results, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
