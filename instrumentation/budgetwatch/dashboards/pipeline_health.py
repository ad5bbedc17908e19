"""The pipeline health dashboard: is the budget data complete? The app's instrumentation,
the OpenTelemetry Collector, Prometheus's remote-write receiver and the budget rules."""

from __future__ import annotations

from ..limits import Limits
from ..spec import REASON, Names, alert_prefix
from .panels import DashboardDef, PanelDef, Query, Row, legend


def pipeline_def(limits: Limits) -> DashboardDef:
    n = Names(limits.namespace)
    return DashboardDef(
        name="pipeline-health",
        title=f"{alert_prefix(n.ns)} budget pipeline health",
        description=(
            "Is the budget data complete? The app's instrumentation, the OpenTelemetry "
            "Collector, Prometheus's remote-write receiver and the budget rules."
        ),
        tags=("pipeline",),
        items=[
            *_data_arriving(n, limits),
            *_collector(n, limits),
            *_budget_rules(n, limits),
        ],
    )


def _data_arriving(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """Is the app's cost data arriving, and is anything dropped?"""
    return [
        Row("Data arriving"),
        PanelDef(
            "stat",
            "Cost data last seen",
            "Seconds since the newest cost sample. No value means no cost sample in the "
            "last 5 minutes: check the app and the collector.",
            [Query(f"time() - max(timestamp({n.cost_total}))", "age", instant=True)],
            unit="seconds",
            width=6,
            no_value="over 5 minutes",
        ),
        PanelDef(
            "timeseries",
            "LLM calls by outcome",
            "Calls per minute: priced (cost recorded), unpriced (cost not known, so "
            "budgets under-count) and failed.",
            [
                Query(
                    f"sum by ({n.call_outcome}) (rate({n.calls_total}[$__rate_interval])) * 60",
                    legend(n.call_outcome),
                )
            ],
            width=9,
        ),
        PanelDef(
            "timeseries",
            "Instrumentation dropped events",
            "Events the app's instrumentation dropped, by reason (agent_overflow: agent ids "
            "past max_agents, folded into _overflow).",
            [
                Query(
                    f"sum by ({REASON}) (increase({n.dropped_total}[$__rate_interval]))",
                    legend(REASON),
                )
            ],
            width=9,
            bars=True,
            no_value="no event dropped",
        ),
    ]


def _collector(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """The OpenTelemetry Collector: points in, points out, its queue."""
    return [
        Row("OpenTelemetry Collector"),
        PanelDef(
            "timeseries",
            "Points received and refused",
            "Metric points per second the collector's OTLP receiver accepted and refused "
            "(refused: memory limit or bad data; the app retries).",
            [
                Query(
                    "sum(rate(otelcol_receiver_accepted_metric_points[$__rate_interval]))",
                    "accepted",
                ),
                Query(
                    "sum(rate(otelcol_receiver_refused_metric_points[$__rate_interval]))",
                    "refused",
                ),
            ],
            width=8,
            height=8,
        ),
        PanelDef(
            "timeseries",
            "Points sent and failed (remote write)",
            "Metric points per second the remote-write exporter sent to Prometheus and "
            "failed to send (after retries: lost).",
            [
                Query(
                    "sum(rate(otelcol_exporter_sent_metric_points[$__rate_interval]))",
                    "sent",
                ),
                Query(
                    # The counter appears with the first failure: until then, 0.
                    "sum(rate(otelcol_exporter_send_failed_metric_points"
                    "[$__rate_interval])) or vector(0)",
                    "failed",
                ),
            ],
            width=8,
            height=8,
        ),
        PanelDef(
            "timeseries",
            "Remote-write queue",
            "How full the remote-write exporter's queue is (batches waiting over its "
            "capacity). A full queue refuses new data: Prometheus is down or too slow.",
            [
                Query(
                    "max(otelcol_exporter_queue_size) / max(otelcol_exporter_queue_capacity)",
                    "queue used",
                ),
            ],
            unit="ratio",
            width=8,
            height=8,
        ),
    ]


def _budget_rules(n: Names, limits: Limits) -> list[PanelDef | Row]:
    """The budget rules' evaluation time and failures."""
    return [
        Row("Budget rules"),
        PanelDef(
            "timeseries",
            "Rule evaluation duration (p99)",
            "99th percentile of a rule's evaluation time in Prometheus. The budget rules "
            "must finish well within the evaluation interval.",
            [
                Query(
                    'max(prometheus_rule_evaluation_duration_seconds{quantile="0.99"})',
                    "p99",
                )
            ],
            unit="seconds",
            width=12,
        ),
        PanelDef(
            "timeseries",
            "Rule evaluation failures",
            "Failed rule evaluations per rule group: a failing budget rule means stale "
            "percentages and silent alerts.",
            [
                Query(
                    # rule_group is "<file>;<group>": show the group's name only.
                    "label_replace(sum by (rule_group) (increase("
                    "prometheus_rule_evaluation_failures_total[$__rate_interval])),"
                    ' "group", "$1", "rule_group", ".*;(.*)")',
                    "{{group}}",
                )
            ],
            width=12,
            bars=True,
        ),
    ]
