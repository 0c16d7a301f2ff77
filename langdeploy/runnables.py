"""A Runnable that wraps another and shows the wrapped one's types, schemas and config; and one
core for a wrapper's sync and async methods.

Guards and the server add behaviour by wrapping a chain; LangServe derives the input and output
schemas, the config schema and the playground from the outermost Runnable, so every wrapper must
show the chain's own.

A wrapper's ``invoke`` and ``ainvoke`` (``batch`` and ``abatch``) differ only in how they call
the wrapped Runnable. So the logic is written once, as a generator (a :data:`Core`) that yields
each call it needs as a :class:`Call` and is sent back the result; :func:`run_core` makes the
calls the sync way, :func:`arun_core` awaits their async forms.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import ConfigurableFieldSpec

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One call of a Runnable's method, in its sync and its async form."""

    sync: Callable[[], Any]
    asynchronous: Callable[[], Awaitable[Any]]

    @classmethod
    def of(cls, runnable: Runnable[Any, Any], method: str, /, *args: Any, **kwargs: Any) -> Call:
        """``runnable.<method>(*args, **kwargs)``, or ``a<method>`` when awaited."""
        sync, asynchronous = getattr(runnable, method), getattr(runnable, "a" + method)
        return cls(lambda: sync(*args, **kwargs), lambda: asynchronous(*args, **kwargs))


# Yields the calls it needs, is sent their results, returns the method's result.
Core = Generator[Call, Any, T]


@dataclass(frozen=True)
class _Done(Generic[T]):
    value: T


def _send(core: Core[T], result: Any) -> Call | _Done[T]:
    try:
        return core.send(result)
    except StopIteration as done:
        return _Done(done.value)


def run_core(core: Core[T]) -> T:
    """Run ``core``, making its calls the sync way."""
    step = _send(core, None)
    while isinstance(step, Call):
        step = _send(core, step.sync())
    return step.value


async def arun_core(core: Core[T]) -> T:
    """Run ``core``, awaiting the async form of each call."""
    step = _send(core, None)
    while isinstance(step, Call):
        step = _send(core, await step.asynchronous())
    return step.value


class DelegatingRunnable(Runnable[Any, Any]):
    """Base for wrappers: types, schemas, config specs and name come from ``bound``."""

    def __init__(self, bound: Runnable[Any, Any], name: str | None = None) -> None:
        self.bound = bound
        self.name = name or bound.get_name()

    @property
    def InputType(self) -> Any:
        return self.bound.InputType

    @property
    def OutputType(self) -> Any:
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.bound.config_specs
