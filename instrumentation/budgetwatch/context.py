"""The agent an application is working for right now, as a context variable.

`with budgetwatch.agent("cto"): ...` (or `async with`) marks the code inside as the work of
agent "cto". Integrations that cannot see the agent in the call itself (the LiteLLM callback)
read it with `current_agent()`. A `ContextVar` follows the code across `await`, into asyncio
tasks created inside the block (each task copies the context when it is created) and into
`asyncio.to_thread`; a plain `threading.Thread` starts with an empty context and sees no agent.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

__all__ = ["agent", "current_agent"]

# None means "no agent": integrations report it as `_unassigned`, like BudgetTelemetry does.
_CURRENT_AGENT: ContextVar[str | None] = ContextVar("budgetwatch_agent", default=None)


def current_agent() -> str | None:
    """The innermost agent set with `agent(...)` in this context, or None."""
    return _CURRENT_AGENT.get()


class agent:  # lower case: used like a function, `with budgetwatch.agent("cto"):`
    """Context manager that sets the current agent for the code inside it.

    `agent_id` None or blank clears the agent inside the block (work for no agent). Nested
    blocks restore the outer agent when they end. A non-string id is a programming error and
    raises TypeError at once, not later inside a telemetry callback.
    """

    __slots__ = ("_agent_id", "_tokens")

    def __init__(self, agent_id: str | None) -> None:
        if agent_id is not None and not isinstance(agent_id, str):
            raise TypeError(f"agent id must be a str or None, got {type(agent_id).__name__}")
        self._agent_id = agent_id if agent_id and agent_id.strip() else None
        # A stack, so that one instance can be entered again while already active.
        self._tokens: list[Token[str | None]] = []

    @property
    def agent_id(self) -> str | None:
        return self._agent_id

    def __enter__(self) -> str | None:
        self._tokens.append(_CURRENT_AGENT.set(self._agent_id))
        return self._agent_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _CURRENT_AGENT.reset(self._tokens.pop())

    async def __aenter__(self) -> str | None:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"agent({self._agent_id!r})"
