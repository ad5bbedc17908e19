"""What BudgetTelemetry pushes, as a real OTLP/HTTP receiver decodes it (contract section 2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.otlp_receiver import OtlpReceiver

import budgetwatch
from budgetwatch import BudgetTelemetry

AGENT, PROVIDER, MODEL = "gen_ai.agent.id", "gen_ai.provider.name", "gen_ai.request.model"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def cost_attrs(agent: str, provider: str, model: str) -> dict[str, str]:
    return {AGENT: agent, PROVIDER: provider, MODEL: model}


def test_names_units_temporality_attributes_resource_and_exact_values(
    receiver: OtlpReceiver,
) -> None:
    telemetry = BudgetTelemetry("synthorg-app", endpoint=receiver.base_url, export_interval_s=60)
    try:
        telemetry.record_cost(
            "cto", 0.25, provider="anthropic", model="claude-sonnet-4", input_tokens=1200,
            output_tokens=300,
        )  # fmt: skip
        telemetry.record_cost(
            "cto", 0.5, provider="anthropic", model="claude-sonnet-4", input_tokens=800,
            output_tokens=100,
        )  # fmt: skip
        telemetry.record_cost("intern", 0.125, provider="openai", model="gpt-4o")
        telemetry.record_call("intern", outcome="failed", provider="openai", model="gpt-4o")
        telemetry.record_task("cto", "completed")
        telemetry.record_task("cto", "completed")
        telemetry.record_task(None, "created")
        assert telemetry.force_flush(5)
    finally:
        telemetry.shutdown()

    points = receiver.points()
    assert points, "nothing received"
    # Every point: our scope, our resource, a monotonic cumulative sum.
    assert {p.scope for p in points} == {"budgetwatch"}
    assert {p.kind for p in points} == {"sum"}
    assert {p.temporality for p in points} == {"cumulative"}
    assert all(p.monotonic for p in points)
    resource = points[0].resource
    assert resource["service.name"] == "synthorg-app"
    assert resource["service.instance.id"] == telemetry.instance_id
    assert {p.instance for p in points} == {telemetry.instance_id}

    units = {p.metric: p.unit for p in points}
    assert units == {
        "synthorg.cost": "{USD}",
        "synthorg.tokens": "{token}",
        "synthorg.calls": "{call}",
        "synthorg.tasks": "{task}",
    }

    cto = cost_attrs("cto", "anthropic", "claude-sonnet-4")
    intern = cost_attrs("intern", "openai", "gpt-4o")
    assert receiver.latest("synthorg.cost") == {
        frozenset(cto.items()): 0.75,
        frozenset(intern.items()): 0.125,
    }
    assert receiver.latest("synthorg.tokens") == {
        frozenset({**cto, "gen_ai.token.type": "input"}.items()): 2000,
        frozenset({**cto, "gen_ai.token.type": "output"}.items()): 400,
        frozenset({**intern, "gen_ai.token.type": "input"}.items()): 0,
        frozenset({**intern, "gen_ai.token.type": "output"}.items()): 0,
    }
    assert receiver.latest("synthorg.calls") == {
        frozenset({**cto, "synthorg.call.outcome": "priced"}.items()): 2,
        frozenset({**intern, "synthorg.call.outcome": "priced"}.items()): 1,
        frozenset({**intern, "synthorg.call.outcome": "failed"}.items()): 1,
    }
    assert receiver.latest("synthorg.tasks") == {
        frozenset({AGENT: "cto", "synthorg.task.status": "completed"}.items()): 2,
        frozenset({AGENT: "_unassigned", "synthorg.task.status": "created"}.items()): 1,
    }


def test_new_series_is_exported_as_zero_first_then_its_total_and_never_decreases(
    receiver: OtlpReceiver,
) -> None:
    telemetry = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=60)
    try:
        telemetry.record_cost("cto", 1.5, provider="p", model="m")
        assert telemetry.force_flush(5)
        telemetry.record_cost("cto", 1.0, provider="p", model="m")
        telemetry.record_cost("cfo", 2.0, provider="p", model="m")  # born later
        assert telemetry.force_flush(5)
        assert telemetry.force_flush(5)  # nothing new: the totals are repeated, unchanged
    finally:
        telemetry.shutdown()

    series = receiver.series("synthorg.cost")
    cto = series[(telemetry.instance_id, frozenset(cost_attrs("cto", "p", "m").items()))]
    cfo = series[(telemetry.instance_id, frozenset(cost_attrs("cfo", "p", "m").items()))]
    # force_flush sends the 0 and, a few ms later, the total.
    assert cto[:3] == [0.0, 1.5, 2.5]
    assert cfo[:2] == [0.0, 2.0]
    assert set(cto[2:]) == {2.5} and set(cfo[1:]) == {2.0}
    for values in series.values():
        assert values == sorted(values), "a cumulative counter went down"
    # The 0 and the total carry distinct timestamps (Prometheus keeps both samples).
    times = [
        p.time_unix_nano for p in receiver.points("synthorg.cost") if p.attributes[AGENT] == "cto"
    ]
    assert len(set(times)) == len(times)


def test_periodic_export_without_any_flush(receiver: OtlpReceiver) -> None:
    telemetry = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=0.2)
    try:
        telemetry.record_task("qa", "in_progress")
        receiver.wait_for(
            lambda r: (
                r.value("synthorg.tasks", {AGENT: "qa", "synthorg.task.status": "in_progress"}) == 1
            ),
            timeout=10,
            what="the periodic export",
        )
    finally:
        telemetry.shutdown()
    values = receiver.series("synthorg.tasks")
    assert next(iter(values.values()))[0] == 0  # the first periodic export announced it as 0


def test_namespace_and_currency_shape_names_units_and_attribute_keys(
    receiver: OtlpReceiver,
) -> None:
    telemetry = BudgetTelemetry(
        "svc", namespace="acme", currency="EUR", endpoint=receiver.base_url, export_interval_s=60
    )
    try:
        telemetry.record_cost("cto", 1.0)
        telemetry.record_task("cto", "Completed")
        telemetry.record_call("cto", outcome="unpriced")
        assert telemetry.force_flush(5)
    finally:
        telemetry.shutdown()
    units = {p.metric: p.unit for p in receiver.points()}
    assert units["acme.cost"] == "{EUR}"
    assert set(units) == {"acme.cost", "acme.tokens", "acme.calls", "acme.tasks"}
    # Status lower-cased; a cost without provider/model gets explicit "_unknown" labels.
    assert receiver.value("acme.tasks", {AGENT: "cto", "acme.task.status": "completed"}) == 1
    outcomes = {p.attributes["acme.call.outcome"]: p.value for p in receiver.points("acme.calls")}
    assert outcomes == {"priced": 1, "unpriced": 1}
    assert receiver.value("acme.cost", cost_attrs("cto", "_unknown", "_unknown")) == 1.0


def test_headers_from_argument_and_from_environment(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = BudgetTelemetry(
        "svc", endpoint=receiver.base_url, headers={"Authorization": "Bearer from-arg"}
    )
    telemetry.record_cost("a", 1.0)
    assert telemetry.force_flush(5)
    telemetry.shutdown()
    assert receiver.headers[-1]["authorization"] == "Bearer from-arg"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base_url)
    telemetry = BudgetTelemetry("svc")
    assert telemetry.endpoint == receiver.endpoint  # base URL + /v1/metrics
    telemetry.record_cost("a", 1.0)
    assert telemetry.force_flush(5)
    telemetry.shutdown()
    assert receiver.headers[-1]["authorization"] == "Bearer from-env"


def test_shutdown_flushes_and_is_idempotent(receiver: OtlpReceiver) -> None:
    telemetry = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=60)
    telemetry.record_cost("cto", 0.5)
    telemetry.shutdown()
    telemetry.shutdown()  # second call: no error, nothing more sent
    received = len(receiver.requests)
    assert receiver.value("synthorg.cost", cost_attrs("cto", "_unknown", "_unknown")) == 0.5
    telemetry.record_cost("cto", 1.0)  # after shutdown: accepted silently, not exported
    assert telemetry.force_flush(1) is False
    telemetry.shutdown()
    assert len(receiver.requests) == received


def test_sdk_instruments_of_the_own_provider_go_out_with_the_store_counters(
    receiver: OtlpReceiver,
) -> None:
    """Our pipeline builds the Store's points itself (no SDK state per series); an SDK
    instrument on its MeterProvider (the kind of budgetwatch's histograms) joins the same
    export, resource and scope."""
    telemetry = BudgetTelemetry("svc", endpoint=receiver.base_url, export_interval_s=60)
    try:
        pipeline = telemetry._pipeline
        assert pipeline is not None
        meter = pipeline.provider.get_meter("budgetwatch", budgetwatch.__version__)
        meter.create_counter("synthorg.probe").add(3, {"k": "v"})
        telemetry.record_cost("cto", 0.5, provider="p", model="m")
        assert telemetry.force_flush(5)
    finally:
        telemetry.shutdown()

    points = receiver.points()
    probe = [p for p in points if p.metric == "synthorg.probe"]
    store = [p for p in points if p.metric != "synthorg.probe"]
    assert probe and {p.value for p in probe} == {3}
    assert {p.request for p in probe} == {p.request for p in store}  # in the same requests
    for request in receiver.requests:
        (resource_metrics,) = request.resource_metrics
        (scope_metrics,) = resource_metrics.scope_metrics  # one scope: budgetwatch
        assert scope_metrics.scope.name == "budgetwatch"
        assert scope_metrics.scope.version == budgetwatch.__version__
    assert {p.instance for p in points} == {telemetry.instance_id}
    # The Store's series share one start time, the Store's birth: before every point.
    (start,) = {p.start_time_unix_nano for p in store}
    assert 0 < start <= min(p.time_unix_nano for p in store)
