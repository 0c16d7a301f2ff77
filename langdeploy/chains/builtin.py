"""Registers the built-in chains, exactly as a plugin would, each with its policy."""

from __future__ import annotations

from collections.abc import Callable

from langdeploy.chains.chat import chat_chain
from langdeploy.chains.extract import entities_chain
from langdeploy.chains.rag import rag_chain, serve_by_default
from langdeploy.chains.registry import ChainSpec
from langdeploy.chains.summarize import summarize_chain

_TEXT = (
    "Ada Lovelace worked with Charles Babbage in London on the Analytical Engine, a design for "
    "a general-purpose mechanical computer. She wrote what many call the first program for it."
)


def register_chains(register: Callable[..., None]) -> None:
    register(
        ChainSpec(
            name="chat",
            factory=chat_chain,
            description="Chat: a list of messages in, the assistant's message out.",
            sample_input={"messages": [{"type": "human", "content": "What is a llama?"}]},
            playground_type="chat",
            guard_profile="chat",
            openai_route=True,
        )
    )
    register(
        ChainSpec(
            name="summarize",
            factory=summarize_chain,
            description="Summarize a text of any length (token-aware split, then map-reduce).",
            sample_input={"text": _TEXT},
        )
    )
    register(
        ChainSpec(
            name="rag",
            factory=rag_chain,
            description="Answer a question from the ingested documents, citing the sources.",
            sample_input={"question": "What do the documents say about getting started?"},
            serve_when=serve_by_default,
            needs=frozenset({"chroma"}),
        )
    )
    register(
        ChainSpec(
            name="extract",
            factory=entities_chain,
            description="Extract people, organizations and places from a text as JSON "
            "(schema-constrained output).",
            sample_input={"text": _TEXT},
        )
    )
