"""Registers the built-in chains, exactly as a plugin would."""

from __future__ import annotations

from collections.abc import Callable

from langdeploy.chains.chat import chat_chain
from langdeploy.chains.extract import entities_chain
from langdeploy.chains.rag import rag_chain
from langdeploy.chains.registry import ChainSpec
from langdeploy.chains.summarize import summarize_chain


def register_chains(register: Callable[..., None]) -> None:
    register(
        ChainSpec(
            name="chat",
            factory=chat_chain,
            description="Chat: a list of messages in, the assistant's message out.",
            playground_type="chat",
        )
    )
    register(
        ChainSpec(
            name="summarize",
            factory=summarize_chain,
            description="Summarize a text of any length (token-aware split, then map-reduce).",
        )
    )
    register(
        ChainSpec(
            name="rag",
            factory=rag_chain,
            description="Answer a question from the ingested documents, citing the sources.",
        )
    )
    register(
        ChainSpec(
            name="extract",
            factory=entities_chain,
            description="Extract people, organizations and places from a text as JSON "
            "(schema-constrained output).",
        )
    )
