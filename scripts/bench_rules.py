"""Benchmark of the budget rules on a real Prometheus 3 (issue 4): `make bench-rules`.

For each N in --agents (default 100,1000,10000):
1. raw data: N agents x 3 models of `<ns>_cost_total` counters (N/100 processes), one sample
   every --interval seconds (default 60), from 00:00 UTC two days ago until now, written as
   OpenMetrics one time window at a time (streamed, never held in memory) and turned into
   TSDB blocks by `promtool tsdb create-blocks-from openmetrics`;
2. a real Prometheus on that data; from now on a feeder remote-writes a sample per series
   every interval, as the collector would, so the counters stay alive;
3. the recorded history the rules read: `promtool tsdb create-blocks-from rules`, one level of
   dependent recording rules at a time (a rule that reads another rule's series is backfilled
   after it), blocks moved into the running Prometheus;
4. the rendered rules loaded; after a few evaluations it reports, per rule group, the
   evaluation time (/api/v1/rules), the samples each rule's query touches
   (/api/v1/query?stats=all: totalQueryableSamples and peakSamples), and Prometheus's memory
   (process RSS, its peak, and Go heap in use).

It also checks the recorded org day-to-date and period-to-date against what the data set
spent. The recorded history is backfilled every --backfill-step (5m by default, to keep
N=10,000 within minutes: promtool runs range queries whose subqueries cost per step); the
rules read it at midnight, so the check may be off by up to one step's worth of spend per day
boundary (live rules record every minute). promtool's backfill evaluates `@ end()` at the
end of each range query, not at each step: exact here, because every series stays alive.

Run from the repository root: `.venv/bin/python scripts/bench_rules.py --agents 100,1000`.
The rules come from `budgetwatch render` of --limits (default limits.yaml), or from
--rules-dir (e.g. alerts/rules) as they are.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "instrumentation"))

from tests.support.procs import (  # noqa: E402 - after the path set-up above
    Prometheus,
    http_get,
    prometheus_config,
    start_prometheus,
)
from tests.support.tools import tool  # noqa: E402

MODELS = (
    ("anthropic", "claude-sonnet-4"),
    ("openai", "gpt-4o"),
    ("google", "gemini-2.5-pro"),
)
AGENTS_PER_PROCESS = 100
DAY = 86400
# Raw data goes into blocks of this span: one OpenMetrics file per window, each read twice
# by promtool (once for its time range, once for the block), whatever the number of days.
WINDOW = 6 * 3600


def log(message: str) -> None:
    print(f"[bench-rules {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the data set ---------------------------------------------------------------------------


@dataclass
class Dataset:
    """N agents x 3 models; each series' counter grows by a fixed amount per minute."""

    namespace: str
    agents: int
    interval: int
    start: int  # 00:00 UTC two days before today
    labels: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    per_minute: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for agent in range(self.agents):
            for m, (provider, model) in enumerate(MODELS):
                self.labels.append(
                    (
                        ("__name__", f"{self.namespace}_cost_total"),
                        ("gen_ai_agent_id", f"agent-{agent:05d}"),
                        ("gen_ai_provider_name", provider),
                        ("gen_ai_request_model", model),
                        ("instance", f"proc-{agent // AGENTS_PER_PROCESS:03d}"),
                        ("job", "bench"),
                    )
                )
                # Agents spend 2.9 to 14.4 USD a day: below, near and over the default daily
                # limit (10), so that alerts fire as in real life.
                self.per_minute.append(0.00067 * (1 + (agent % 5)) * (m + 1) / 2)

    def value(self, series: int, t: int) -> float:
        return self.per_minute[series] * (t - self.start) / 60

    def openmetrics_names(self) -> list[str]:
        out = []
        for labels in self.labels:
            name = labels[0][1]
            inner = ",".join(f'{k}="{v}"' for k, v in labels[1:])
            out.append(f"{name}{{{inner}}} ")
        return out


def write_openmetrics(ds: Dataset, path: Path, t0: int, t1: int) -> int:
    """Samples for t0 <= t < t1, time after time (each series in order); returns the count."""
    names = ds.openmetrics_names()
    rates = [r / 60 for r in ds.per_minute]
    count = 0
    with path.open("w", buffering=1 << 22) as out:
        for t in range(t0, t1, ds.interval):
            elapsed = t - ds.start
            ts = f" {t}\n"
            out.write(
                "".join(f"{n}{r * elapsed:.6f}{ts}" for n, r in zip(names, rates, strict=True))
            )
            count += len(names)
        out.write("# EOF\n")
    return count


def backfill_raw(ds: Dataset, end: int, data_dir: Path, scratch: Path) -> int:
    total = 0
    t = ds.start
    while t < end:
        t1 = min(end, (t // WINDOW + 1) * WINDOW)
        path = scratch / f"raw-{t}.om"
        total += write_openmetrics(ds, path, t, t1)
        run(
            tool("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=6h",
            "--quiet",
            path,
            data_dir,
        )
        path.unlink()
        t = t1
    return total


def run(*argv: str | Path, timeout: float = 3600) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


# --- remote write (the collector's protocol), without extra dependencies -------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _snappy_literal(data: bytes) -> bytes:
    """Snappy block format holding one literal: valid, uncompressed, accepted by Prometheus."""
    return _varint(len(data)) + bytes([63 << 2]) + struct.pack("<I", len(data) - 1) + data


class Feeder:
    """Remote-writes the current value of every series each interval, in a thread."""

    def __init__(self, ds: Dataset, url: str, since: int) -> None:
        self.ds, self.url, self.next_t = ds, url, since
        self.labels = [
            b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in lbls)
            for lbls in ds.labels
        ]
        self.stop_event = threading.Event()
        self.error: Exception | None = None
        self.failures = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def push(self, t: int) -> None:
        batch = 20000
        for i in range(0, len(self.labels), batch):
            body = b"".join(
                _field(
                    1,
                    lbls
                    + _field(
                        2,
                        b"\x09"
                        + struct.pack("<d", self.ds.value(i + j, t))
                        + b"\x10"
                        + _varint(t * 1000),
                    ),
                )
                for j, lbls in enumerate(self.labels[i : i + batch])
            )
            request = urllib.request.Request(
                self.url,
                data=_snappy_literal(body),
                headers={
                    "Content-Encoding": "snappy",
                    "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()

    def catch_up(self) -> None:
        while self.next_t <= time.time():
            self.push(self.next_t)
            self.next_t += self.ds.interval

    def _try_catch_up(self) -> None:
        try:
            self.catch_up()
            self.failures = 0
        except OSError as err:  # Prometheus restarting: the same samples are sent again
            self.failures += 1
            if self.failures > 100:
                raise RuntimeError(f"remote write keeps failing: {err}") from err

    def _loop(self) -> None:
        try:
            while not self.stop_event.wait(max(1.0, self.next_t - time.time())):
                self._try_catch_up()
        except Exception as err:  # reported by the main thread
            self.error = err

    def start(self) -> None:
        self.catch_up()
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=120)


# --- rules ----------------------------------------------------------------------------------


def load_rule_files(args: argparse.Namespace) -> dict[str, str]:
    if args.rules_dir:
        return {p.name: p.read_text() for p in sorted(Path(args.rules_dir).glob("*.yml"))}
    from budgetwatch.limits import load_limits
    from budgetwatch.rules import render_rule_files

    files: dict[str, str] = render_rule_files(load_limits(args.limits), Path(args.limits).name)
    return files


def recording_levels(files: dict[str, str]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Recording rules by dependency level: level k reads only series of levels < k.

    Rules that read each other (one the other's history, the other its current value) form a
    cycle; they are backfilled together, in the level of their cycle.
    """
    rules: list[tuple[str, dict[str, Any]]] = []  # (group name, rule)
    for text in files.values():
        for group in yaml.safe_load(text).get("groups", []):
            rules.extend((group["name"], r) for r in group.get("rules", []) if "record" in r)
    names = {r["record"] for _, r in rules}
    deps: dict[str, set[str]] = {n: set() for n in names}
    for _, rule in rules:
        for n in names:
            if n != rule["record"] and re.search(
                rf"(?<![\w:]){re.escape(n)}(?![\w:])", rule["expr"]
            ):
                deps[rule["record"]].add(n)
    # Strongly connected components (Kosaraju), then levels over the components.
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        stack = [(n, iter(sorted(deps[n])))]
        seen.add(n)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                order.append(node)
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(sorted(deps[child]))))

    for n in sorted(names):
        if n not in seen:
            visit(n)
    users: dict[str, set[str]] = {n: {m for m in names if n in deps[m]} for n in names}
    component: dict[str, int] = {}
    for n in reversed(order):
        if n in component:
            continue
        cid, todo = len(set(component.values())), [n]
        while todo:
            m = todo.pop()
            if m not in component:
                component[m] = cid
                todo.extend(users[m] - component.keys())
    level: dict[int, int] = {}
    for n in order:  # dependencies come first in this order
        c = component[n]
        below = [
            level[component[d]] for d in deps[n] if component[d] != c and component[d] in level
        ]
        level[c] = max(level.get(c, 0), 1 + max(below, default=-1))
    out: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(max(level.values()) + 1)]
    for group_name, rule in rules:
        out[level[component[rule["record"]]]].append((group_name, rule))
    return out


def backfill_recorded(
    prom: Prometheus, files: dict[str, str], start: int, data_dir: Path, scratch: Path, step: str
) -> list[float]:
    seconds = []
    for k, rules in enumerate(recording_levels(files)):
        began = time.monotonic()
        groups: dict[str, list[dict[str, Any]]] = {}
        for group_name, rule in rules:
            groups.setdefault(group_name, []).append(rule)
        path = scratch / f"level-{k}.yml"
        path.write_text(
            yaml.safe_dump(
                {"groups": [{"name": g, "interval": step, "rules": r} for g, r in groups.items()]}
            )
        )
        out_dir = scratch / f"level-{k}-blocks"
        # End one minute ago: the live rules take over from there.
        end = int(time.time()) - 60
        run(
            tool("promtool"),
            "tsdb",
            "create-blocks-from",
            "rules",
            f"--url={prom.url}",
            f"--start={start}",
            f"--end={end}",
            f"--output-dir={out_dir}",
            path,
        )
        moved = 0
        for block in sorted(out_dir.iterdir()) if out_dir.exists() else []:
            if (block / "meta.json").exists():
                shutil.move(str(block), data_dir / block.name)
                moved += 1
        shutil.rmtree(out_dir, ignore_errors=True)
        # A restart loads the new blocks at once (a running Prometheus would pick them up
        # within a minute, merged with others by compaction, which is harder to wait for).
        prom.server.stop()
        prom.server.start()
        seconds.append(time.monotonic() - began)
        log(f"  level {k}: {len(rules)} rules, {moved} blocks, {seconds[-1]:.0f} s")
    return seconds


# --- measurements ---------------------------------------------------------------------------


def self_metrics(prom: Prometheus) -> dict[str, float]:
    _, body = http_get(f"{prom.url}/metrics", timeout=30)
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def peak_rss(prom: Prometheus) -> float:
    assert prom.server.proc is not None
    status = Path(f"/proc/{prom.server.proc.pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return float(match.group(1)) * 1024 if match else float("nan")


def query_stats(prom: Prometheus, expr: str) -> tuple[int, int]:
    query = urllib.parse.urlencode({"query": expr, "stats": "all"})
    status, body = http_get(f"{prom.url}/api/v1/query?{query}", timeout=600)
    data = json.loads(body)
    if status != 200:
        raise RuntimeError(f"query failed: {expr}: {body[:300]!r}")
    samples = data["data"]["stats"]["samples"]
    return int(samples["totalQueryableSamples"]), int(samples["peakSamples"])


def wait_evaluations(prom: Prometheus, rounds: int, timeout: float) -> list[dict[str, Any]]:
    """Per group, the evaluation times of `rounds` successive evaluations."""
    seen: dict[str, list[tuple[str, float]]] = {}
    deadline = time.monotonic() + timeout
    groups: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        groups = prom.api("/api/v1/rules")["groups"]
        for g in groups:
            history = seen.setdefault(g["name"], [])
            if g["lastEvaluation"].startswith("0001"):
                continue
            if not history or history[-1][0] != g["lastEvaluation"]:
                history.append((g["lastEvaluation"], float(g["evaluationTime"])))
        if groups and all(len(seen.get(g["name"], [])) >= rounds for g in groups):
            break
        time.sleep(1)
    for g in groups:
        g["evaluations"] = [s for _, s in seen.get(g["name"], [])]
    return groups


def sanity_checks(prom: Prometheus, ds: Dataset, today: int) -> dict[str, tuple[float, float]]:
    """Recorded org spend against what the data set spent: {series: (recorded, expected)}.

    A benchmark of rules that compute the wrong figure would be worthless. Expected values are
    taken at the recorded sample's timestamp, from the last raw sample before it.
    """
    rate = sum(ds.per_minute) / 60
    out: dict[str, tuple[float, float]] = {}
    for series, since in (
        (f"{ds.namespace}_cost_day_to_date", today),
        (f"{ds.namespace}_cost_period_to_date", ds.start),  # the data begins in this period
    ):
        result = prom.query(f"timestamp({series})")
        values = prom.query(series)
        if not result or not values:
            out[series] = (float("nan"), float("nan"))
            continue
        at = float(result[0]["value"][1])
        last_raw = at - at % ds.interval
        out[series] = (float(values[0]["value"][1]), rate * (last_raw - since))
    return out


@dataclass
class Result:
    agents: int
    series: int
    raw_samples: int
    raw_backfill_s: float
    rules_backfill_s: list[float]
    groups: list[dict[str, Any]]
    rule_stats: list[dict[str, Any]]
    rss: float
    rss_peak: float
    heap: float
    head_series: float
    checks: dict[str, tuple[float, float]] = field(default_factory=dict)


def bench(args: argparse.Namespace, agents: int, files: dict[str, str], scratch: Path) -> Result:
    now = int(time.time())
    today = now - now % DAY
    ds = Dataset(args.namespace, agents, args.interval, today - 2 * DAY)
    work = scratch / f"n{agents}"
    data_dir = work / "data"
    data_dir.mkdir(parents=True)
    end = now - now % args.interval
    log(
        f"N={agents}: writing {len(ds.labels)} series x {(end - ds.start) // args.interval} samples"
    )
    began = time.monotonic()
    raw = backfill_raw(ds, end, data_dir, work)
    raw_s = time.monotonic() - began
    log(f"N={agents}: {raw:,} raw samples in blocks in {raw_s:.0f} s")

    config = prometheus_config(evaluation_interval=args.eval_interval)
    prom = start_prometheus(
        work,
        config,
        extra_args=["--storage.tsdb.retention.time=30d", "--query.max-samples=50000000"],
    )
    feeder = Feeder(ds, f"{prom.url}/api/v1/write", end)
    try:
        feeder.start()
        log(f"N={agents}: backfilling recorded history ({args.backfill_step} steps)")
        levels = backfill_recorded(prom, files, ds.start, data_dir, work, args.backfill_step)

        rules_dir = work / "rules"
        rules_dir.mkdir()
        for name, text in files.items():
            (rules_dir / name).write_text(text)
        config = prometheus_config(
            rule_files=sorted(rules_dir.glob("*.yml")), evaluation_interval=args.eval_interval
        )
        (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        req = urllib.request.Request(f"{prom.url}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
        log(f"N={agents}: rules loaded, waiting for {args.rounds} evaluations")
        groups = wait_evaluations(prom, args.rounds, timeout=args.rounds * 600)
        if feeder.error:
            raise RuntimeError(f"remote write failed: {feeder.error}")

        rule_stats = []
        for g in groups:
            for rule in g["rules"]:
                if rule.get("health") not in ("ok", None):
                    log(f"  rule {rule['name']} health {rule['health']}: {rule.get('lastError')}")
                total, peak = query_stats(prom, rule["query"])
                rule_stats.append(
                    {
                        "group": g["name"],
                        "rule": rule["name"],
                        "eval_s": float(rule.get("evaluationTime", 0.0)),
                        "samples": total,
                        "peak": peak,
                    }
                )
        metrics = self_metrics(prom)
        checks = sanity_checks(prom, ds, today)
        return Result(
            agents=agents,
            series=len(ds.labels),
            raw_samples=raw,
            raw_backfill_s=raw_s,
            rules_backfill_s=levels,
            groups=groups,
            rule_stats=rule_stats,
            rss=metrics.get("process_resident_memory_bytes", float("nan")),
            rss_peak=peak_rss(prom),
            heap=metrics.get("go_memstats_heap_inuse_bytes", float("nan")),
            head_series=metrics.get("prometheus_tsdb_head_series", float("nan")),
            checks=checks,
        )
    finally:
        feeder.stop()
        prom.server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(results: Sequence[Result], interval: int) -> str:
    mib = 1024 * 1024
    lines = [
        f"sample interval {interval} s; data from 00:00 UTC two days ago until now",
        "",
        "| agents | series | raw samples | raw backfill | rules backfill | RSS | peak RSS |"
        " Go heap | head series |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.agents:,} | {r.series:,} | {r.raw_samples:,} | {r.raw_backfill_s:.0f} s"
            f" | {sum(r.rules_backfill_s):.0f} s | {r.rss / mib:.0f} MiB"
            f" | {r.rss_peak / mib:.0f} MiB | {r.heap / mib:.0f} MiB | {r.head_series:,.0f} |"
        )
    lines += ["", "| agents | check | recorded | expected from the data | error |"]
    lines.append("|---:|---|---:|---:|---:|")
    for r in results:
        for name, (got, want) in r.checks.items():
            error = (got - want) / want * 100 if want else float("nan")
            lines.append(f"| {r.agents:,} | {name} | {got:,.2f} | {want:,.2f} | {error:+.3f} % |")
    lines += ["", "| agents | rule group | rules | evaluation time (s), each round | max samples |"]
    lines.append("|---:|---|---:|---|---:|")
    for r in results:
        for g in r.groups:
            samples = max(
                (s["samples"] for s in r.rule_stats if s["group"] == g["name"]), default=0
            )
            evals = ", ".join(f"{e:.3f}" for e in g["evaluations"])
            lines.append(
                f"| {r.agents:,} | {g['name']} | {len(g['rules'])} | {evals} | {samples:,} |"
            )
    lines += ["", "| agents | rule | eval (s) | samples touched | peak samples |"]
    lines.append("|---:|---|---:|---:|---:|")
    for r in results:
        top = sorted(r.rule_stats, key=lambda s: -s["samples"])[:8]
        for s in top:
            lines.append(
                f"| {r.agents:,} | {s['rule']} | {s['eval_s']:.3f} | {s['samples']:,}"
                f" | {s['peak']:,} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="100,1000,10000", help="comma-separated N values")
    parser.add_argument("--interval", type=int, default=60, help="raw sample interval, seconds")
    parser.add_argument("--limits", default="limits.yaml")
    parser.add_argument("--rules-dir", help="benchmark these rule files instead of rendering")
    parser.add_argument("--namespace", default="synthorg")
    parser.add_argument("--eval-interval", default="30s", help="rule evaluation interval")
    parser.add_argument(
        "--backfill-step", default="5m", help="step of the recorded history (coarser: faster)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="evaluations to observe")
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    agents = [int(a.replace("_", "")) for a in args.agents.split(",") if a]

    files = load_rule_files(args)
    results = []
    with _scratch(args.workdir) as scratch:
        for n in agents:
            results.append(bench(args, n, files, scratch))
            print(report(results[-1:], args.interval), flush=True)
    print("\n" + report(results, args.interval))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0


class _scratch:
    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        if self.path:
            self.path.mkdir(parents=True, exist_ok=True)
            return self.path
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-rules-")
        return Path(self.tmp.name)

    def __exit__(self, *exc: object) -> None:
        if self.tmp:
            self.tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
