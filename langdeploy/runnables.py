"""A Runnable that wraps another and shows the wrapped one's types, schemas and config.

Guards and the server add behaviour by wrapping a chain; LangServe derives the input and output
schemas, the config schema and the playground from the outermost Runnable, so every wrapper must
show the chain's own.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import ConfigurableFieldSpec


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
