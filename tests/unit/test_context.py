"""budgetwatch.context: the current agent follows the code across await, tasks and nesting."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from budgetwatch.context import agent, current_agent


def test_no_agent_outside_any_block() -> None:
    assert current_agent() is None


def test_block_sets_and_restores_the_agent() -> None:
    with agent("cto") as agent_id:
        assert agent_id == "cto"
        assert current_agent() == "cto"
    assert current_agent() is None


def test_nested_blocks_restore_the_outer_agent() -> None:
    with agent("ceo"):
        with agent("cto"):
            assert current_agent() == "cto"
            with agent(None):  # explicitly no agent inside
                assert current_agent() is None
        assert current_agent() == "ceo"
    assert current_agent() is None


def test_agent_is_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), agent("cto"):
        raise RuntimeError("boom")
    assert current_agent() is None


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_id_means_no_agent(blank: str) -> None:
    with agent("ceo"), agent(blank):
        assert current_agent() is None


@pytest.mark.parametrize("bad", [7, b"cto", ["cto"]])
def test_non_string_id_is_refused_at_once(bad: object) -> None:
    with pytest.raises(TypeError, match="agent id must be a str or None"):
        agent(bad)  # type: ignore[arg-type]


def test_same_instance_can_be_reentered() -> None:
    cto = agent("cto")
    with agent("ceo"):
        with cto:
            with agent("intern"), cto:
                assert current_agent() == "cto"
            assert current_agent() == "cto"
        assert current_agent() == "ceo"


def test_async_with_and_across_await() -> None:
    async def work() -> list[str | None]:
        seen = []
        async with agent("cto"):
            seen.append(current_agent())
            await asyncio.sleep(0)
            seen.append(current_agent())
        seen.append(current_agent())
        return seen

    assert asyncio.run(work()) == ["cto", "cto", None]


def test_concurrent_tasks_each_keep_their_own_agent() -> None:
    """Interleaved tasks never see each other's agent; tasks created inside inherit it."""

    async def one(agent_id: str) -> list[tuple[str, str | None]]:
        seen: list[tuple[str, str | None]] = []
        with agent(agent_id):
            for _ in range(5):
                await asyncio.sleep(0)  # let the other tasks run in between
                seen.append((agent_id, current_agent()))

            async def child() -> str | None:
                await asyncio.sleep(0)
                return current_agent()

            task = asyncio.create_task(child())  # created inside: copies the context
        seen.append((agent_id, await task))
        seen.append((agent_id, current_agent()))  # block ended: no agent any more
        return seen

    async def main() -> list[list[tuple[str, str | None]]]:
        return await asyncio.gather(*(one(f"agent-{i}") for i in range(20)))

    for results in asyncio.run(main()):
        agent_id = results[0][0]
        assert [seen for _, seen in results] == [agent_id] * 6 + [None]


def test_to_thread_sees_the_agent_but_a_plain_thread_does_not() -> None:
    """Documented limit: `threading.Thread` starts with an empty context."""
    plain: list[str | None] = []

    async def main() -> str | None:
        with agent("cto"):
            thread = threading.Thread(target=lambda: plain.append(current_agent()))
            thread.start()
            thread.join()
            return await asyncio.to_thread(current_agent)

    assert asyncio.run(main()) == "cto"
    assert plain == [None]


def test_copied_context_keeps_the_agent_after_the_block() -> None:
    """LiteLLM runs sync callbacks in a thread with a copy of the caller's context."""
    with agent("cto"):
        ctx = contextvars.copy_context()
    assert current_agent() is None
    assert ctx.run(current_agent) == "cto"
