"""The built-in templates: chat, rag, summarize and extract, over one shared base layer."""

from __future__ import annotations

from collections.abc import Callable

from langdeploy.templates.registry import AppTemplate

_COMMON = (
    "langdeploy.toml, pyproject.toml, README.md, .env.example",
    "guards/guards.yaml + a custom guard",
    # What `new` renders: the vm target needs deploy.hostname (its TLS certificate's name).
    "deploy/ (docker, compose, k8s); vm once deploy.hostname is set",
    "tests/ over REST against the bundled model",
)


def register_templates(register: Callable[..., None]) -> None:
    register(
        AppTemplate(
            name="chat",
            description="A chat assistant with the app's own system prompt.",
            chain="assistant",
            package="langdeploy.templates",
            layers=("files/_base", "files/chat"),
            includes=("chains/app.py: /assistant extends chat (prompt + tidy step)", *_COMMON),
        )
    )
    register(
        AppTemplate(
            name="summarize",
            description="Summaries of texts of any length, with a headline.",
            chain="brief",
            package="langdeploy.templates",
            layers=("files/_base", "files/summarize"),
            includes=(
                "chains/app.py: /brief extends summarize (headline prompt + result step)",
                *_COMMON,
            ),
        )
    )
    register(
        AppTemplate(
            name="extract",
            description="Structured output: a text in, JSON that fits the app's pydantic model out.",
            chain="contact",
            package="langdeploy.templates",
            layers=("files/_base", "files/extract"),
            includes=(
                "chains/app.py: /contact extends extract (Contact model, prompt, normalize step)",
                *_COMMON,
            ),
            # A JSON object needs more tokens than a short answer.
            test_max_tokens=128,
        )
    )
    register(
        AppTemplate(
            name="rag",
            description="Questions answered from your documents (Chroma), with citations.",
            chain="ask",
            package="langdeploy.templates",
            layers=("files/_base", "files/rag"),
            includes=(
                "chains/app.py: /ask extends rag (citations step)",
                "docs/: a sample document for `langdeploy ingest`",
                *_COMMON,
            ),
            extras=("local", "rag"),
        )
    )
