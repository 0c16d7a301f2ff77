"""Reusable chain templates: factories that return typed Runnables, found through a registry."""

from langdeploy.chains.registry import ChainContext, ChainSpec, chain_registry

__all__ = ["ChainContext", "ChainSpec", "chain_registry"]
