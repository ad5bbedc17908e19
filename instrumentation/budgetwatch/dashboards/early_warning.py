"""Early-warning panels (docs/dashboards.md): the billing-period forecast against the limit,
burn rates, and the agents spending far above their usual rate now. Their series need history
(a day for the forecast, a window's length for a burn rate, `spike.min_history` for a spike
baseline): on a fresh Prometheus they are empty at first."""

from __future__ import annotations

from ..limits import Limits
from ..spec import AGENT, MONTHLY, Names
from .panels import (
    AGENT_LEGEND,
    PanelDef,
    Query,
    Row,
    agent_coverage,
    agent_sel,
    legend,
    org_coverage,
    with_coverage,
)

SEL = agent_sel()


def _spiking(n: Names, limits: Limits) -> str:
    """Agents over the spike alert's condition now (before its `for:`), with their hourly rate."""
    s = limits.spike
    recent, baseline = n.agent_spend_hourly, n.agent_spend_baseline
    return (
        f"sort_desc({recent} >= {s.min_hourly:g} and on({AGENT}) "
        f"({recent} >= on({AGENT}) {baseline} * {s.factor:g}))"
    )


def overview_panels(n: Names, limits: Limits) -> list[PanelDef | Row]:
    fastest = limits.burn_rate.fastest_first()[0]
    top_burn = f"topk(10, {n.agent_burn_rate(fastest.long)})"
    return [
        Row("Early warning"),
        with_coverage(
            PanelDef(
                "timeseries",
                "Billing period forecast vs limit",
                "Organisation spend expected by the end of the billing period at the pace of the "
                f"last {limits.forecast.rate_window} ({n.org_forecast}), the spend so far and the "
                f"monthly limit in force. No forecast during the period's first "
                f"{limits.forecast.min_history}.",
                [
                    Query(n.org_forecast, "forecast"),
                    Query(n.org_to_date(MONTHLY), "spent"),
                    Query(n.org_limit(MONTHLY), "limit"),
                ],
                unit="currency",
                width=8,
                height=8,
            ),
            org_coverage(n),
        ),
        with_coverage(
            PanelDef(
                "bargauge",
                f"Top agents by burn rate ({fastest.long})",
                f"Agents spending their monthly budget fastest over the last {fastest.long}, as a "
                "multiple of the even pace (monthly limit / length of the billing period); the "
                f"fastest burn-rate alert pages at {fastest.factor:g}x.",
                [Query(top_burn, AGENT_LEGEND, instant=True)],
                unit="ratio",
                width=8,
                height=8,
                agent_link=True,
            ),
            Query(
                f"{n.agent_coverage} and on({AGENT}) {top_burn}",
                legend(AGENT, suffix="coverage"),
                coverage=True,
            ),
        ),
        with_coverage(
            PanelDef(
                "table",
                "Spiking now",
                f"Agents whose spend over the last {limits.spike.window} (per hour) is at least "
                f"{limits.spike.factor:g}x their average before it and at least "
                f"{limits.spike.min_hourly:g} {limits.currency} an hour: the spike alert's "
                "condition now, before its for:.",
                [Query(_spiking(n, limits), instant=True, table=True, column="per hour")],
                unit="rate",
                width=8,
                height=8,
                no_value="no agent spiking",
                agent_link=True,
            ),
            Query(
                f"{n.agent_coverage} and on({AGENT}) ({_spiking(n, limits)})",
                coverage=True,
            ),
        ),
    ]


def agent_panels(n: Names, limits: Limits) -> list[PanelDef | Row]:
    windows = list(dict.fromkeys(p.long for p in limits.burn_rate.fastest_first()))
    return [
        Row("Early warning"),
        with_coverage(
            PanelDef(
                "timeseries",
                "Billing period forecast vs limit",
                "Spend expected by the end of the billing period at the pace of the last "
                f"{limits.forecast.rate_window} ({n.agent_forecast}; agents with a monthly limit), "
                "the spend so far and the monthly limit.",
                [
                    Query(f"{n.agent_forecast}{SEL}", legend(AGENT, suffix="forecast")),
                    Query(f"{n.agent_to_date(MONTHLY)}{SEL}", legend(AGENT, suffix="spent")),
                    Query(f"{n.agent_limit(MONTHLY)}{SEL}", legend(AGENT, suffix="limit")),
                ],
                unit="currency",
                width=12,
                height=8,
            ),
            agent_coverage(n, SEL),
        ),
        with_coverage(
            PanelDef(
                "timeseries",
                "Burn rate",
                "Spend rate over each burn-rate alert's long window as a multiple of the even pace "
                "(monthly limit / length of the billing period): 1 spends exactly the limit.",
                [Query(f"{n.agent_burn_rate(w)}{SEL}", legend(AGENT, suffix=w)) for w in windows],
                unit="ratio",
                width=12,
                height=8,
            ),
            agent_coverage(n, SEL),
        ),
    ]
