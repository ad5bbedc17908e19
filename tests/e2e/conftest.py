"""Fixtures for the end-to-end tests: one real pipeline per test module.

A pipeline takes a few seconds to start; the cases of a module share it and keep out of each
other's way by using their own agent ids. When a test fails, the tails of every server's log
are printed with the failure, and pytest keeps the work directory (tmp_path_factory).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from tests.support.pipeline import Pipeline, pipeline

LIMITS = Path(__file__).with_name("limits-e2e.yaml")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    workdir = tmp_path_factory.mktemp("pipeline")
    limits = workdir / LIMITS.name
    limits.write_text(LIMITS.read_text())
    with pipeline(workdir, limits) as p:
        yield p


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        p = getattr(item, "funcargs", {}).get("pipe")
        if isinstance(p, Pipeline):
            report.sections.append(("pipeline logs", p.logs()))
    return report
