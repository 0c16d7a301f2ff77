"""The extract chain: ``{"text": ...}`` in, a JSON object that fits a pydantic model out.

The model's JSON schema goes to the backend as ``response_format``: llama-cpp-python turns it into
a grammar, so even the small bundled model can only emit JSON of that shape. The answer is still
validated against the model class, because a grammar cannot express every pydantic constraint
and an answer cut off at ``max_tokens`` is not complete JSON. A failure is an
:class:`ExtractionError` (HTTP 422) that says what went wrong and what to change, never a 500.

Streaming sends the object as it parses (langchain-core's partial JSON parsing), then the
validated object last. The pieces follow rag's convention, which the output guards read:
each is a one-key dict, a string field's new text (``{"name": "Ja"}``, ``{"name": "ne"}``, so
the guards hold back and redact it as text) or, once a later key shows it is complete, a
field's whole value (``{"email": null}``); a list sends its items as each one is complete
(``{"people": ["Ada Lovelace"]}``). Summed with ``+`` the pieces give the object so far; the last event is the validated object (``invoke``'s
result), and a mismatch ends the stream with the 422 error.

An app defines its own schema and serves it with one factory call::

    class Contact(BaseModel):
        name: str = Field(max_length=60)
        email: str | None = None

    register(ChainSpec(name="contact", factory=extract_chain(Contact)))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Literal

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_core.output_parsers import JsonOutputParser
from langchain_core.outputs import ChatGeneration
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel, Field, ValidationError

from langdeploy.chains.registry import ChainContext
from langdeploy.chains.streaming import stream_step
from langdeploy.errors import InputError, LangdeployError

DEFAULT_INSTRUCTIONS = (
    "You extract facts from a text. Copy values exactly as they appear in the text. "
    "Leave a list empty or a value null when the text does not say it."
)


UpstreamFormat = Literal["json_object", "json_schema"]


class ExtractInput(BaseModel):
    """A text to extract structured data from."""

    text: str = Field(..., min_length=1, description="The text to read.")


class Entities(BaseModel):
    """The built-in extract chain's schema: named things a text mentions."""

    people: list[str] = Field(
        default_factory=list, max_length=5, description="Names of people mentioned."
    )
    organizations: list[str] = Field(
        default_factory=list, max_length=5, description="Companies and institutions mentioned."
    )
    places: list[str] = Field(
        default_factory=list, max_length=5, description="Cities, countries and places mentioned."
    )


class ExtractionError(LangdeployError):
    """The model's answer did not fit the schema (cut off, or failing a constraint)."""

    status_code = 422
    error_type = "extraction_failed"


def response_format_for(
    schema: type[BaseModel], backend: str, upstream_format: UpstreamFormat = "json_object"
) -> dict[str, Any]:
    """The ``response_format`` that makes the backend follow ``schema``.

    llama-cpp-python compiles ``{"type": "json_object", "schema": ...}`` into a grammar, in
    process and in its server, and llama.cpp's own server reads the same form. vLLM and OpenAI
    enforce a schema only in the ``json_schema`` form, which llama-cpp-python's server rejects:
    an app behind vLLM passes ``upstream_format="json_schema"``.
    """
    json_schema = schema.model_json_schema()
    if backend == "openai" and upstream_format == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": json_schema},
        }
    return {"type": "json_object", "schema": json_schema}


def parse_answer(schema: type[BaseModel], message: BaseMessage) -> BaseModel:
    """Validate the model's answer against ``schema``; errors name the field and the fix."""
    text = message.content if isinstance(message.content, str) else str(message.content)
    finish = message.response_metadata.get("finish_reason")
    if finish == "length":
        raise ExtractionError(
            f"The model's answer was cut off at its max_tokens limit, before the "
            f"{schema.__name__} JSON object was complete.",
            fix="Raise model.max_tokens (LANGDEPLOY_MODEL__MAX_TOKENS), send a shorter text, "
            "or put max_length limits on the schema's strings and lists.",
        )
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(object)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ExtractionError(
            f"The model's answer does not match the {schema.__name__} schema: {problems}.",
            fix="Simplify the schema or its constraints, or use a larger model (model.name).",
        ) from None


class PartialObject:
    """The stream fold of an extract chain: partial fields as they parse, the object at the end."""

    def __init__(self, schema: type[BaseModel]) -> None:
        self.schema = schema
        self.parser = JsonOutputParser()
        self.message: BaseMessage | None = None
        self.sent: dict[str, Any] = {}

    def feed(self, piece: BaseMessage) -> Iterator[AddableDict]:
        if not isinstance(piece, BaseMessageChunk):
            self.message = piece  # invoke: one whole answer, validated at the end
            return
        last = self.message
        self.message = last + piece if isinstance(last, BaseMessageChunk) else piece
        partial = self.parser.parse_result([ChatGeneration(message=self.message)], partial=True)
        if isinstance(partial, dict):
            yield from self._news(partial)

    def _news(self, partial: dict[str, Any]) -> Iterator[AddableDict]:
        keys = list(partial)
        for i, key in enumerate(keys):
            value, sent = partial[key], self.sent.get(key)
            if isinstance(value, str) and (sent is None or isinstance(sent, str)):
                sent = sent or ""
                # A partial parse is a prefix of the final string; anything else (a half-read
                # escape) waits for a later piece or for the validated object.
                if len(value) > len(sent) and value.startswith(sent):
                    self.sent[key] = value
                    yield AddableDict({key: value[len(sent) :]})
                continue
            # JSON keys arrive in order: a later key means this value is complete.
            settled = i < len(keys) - 1
            if isinstance(value, list) and (sent is None or isinstance(sent, list)):
                # A list's items are complete once a later item (or key) follows them.
                done, sent = (value if settled else value[:-1]), sent or []
                if len(done) > len(sent):
                    self.sent[key] = list(done)
                    yield AddableDict({key: done[len(sent) :]})
            elif settled and key not in self.sent:
                self.sent[key] = value
                yield AddableDict({key: value})

    def end(self) -> Iterator[BaseModel]:
        if self.message is None:
            raise ExtractionError(
                f"The model gave no answer to validate against the {self.schema.__name__} schema.",
                fix="Check the model backend's log.",
            )
        yield parse_answer(self.schema, self.message)


def extract_chain(
    schema: type[BaseModel],
    *,
    instructions: str = DEFAULT_INSTRUCTIONS,
    run_name: str = "extract",
    upstream_format: UpstreamFormat = "json_object",
) -> Callable[[ChainContext], Runnable[Any, Any]]:
    """A chain factory that extracts ``schema`` from a text; register it under any name.

    ``upstream_format`` matters only for the openai backend (see :func:`response_format_for`).
    """
    schema_text = json.dumps(schema.model_json_schema())
    # Partial variables are substituted, not parsed, so the schema's braces need no escaping.
    prompt = ChatPromptTemplate.from_messages(
        [
            (
                "system",
                "{instructions}\nAnswer with one JSON object that matches this JSON schema:\n"
                "{schema}",
            ),
            ("human", "{text}"),
        ]
    ).partial(instructions=instructions, schema=schema_text)

    def factory(ctx: ChainContext) -> Runnable[Any, Any]:
        model = ctx.model.bind(
            response_format=response_format_for(schema, ctx.settings.model.backend, upstream_format)
        )

        def prepare(payload: dict[str, Any] | ExtractInput) -> dict[str, str]:
            data = (
                payload
                if isinstance(payload, ExtractInput)
                else ExtractInput.model_validate(payload)
            )
            if not data.text.strip():
                raise InputError("The text to extract from is blank.", fix="Send non-empty 'text'.")
            return {"text": data.text}

        chain = (
            RunnableLambda(prepare, name="prepare_text")
            | prompt
            | model
            | stream_step(lambda: PartialObject(schema), name=f"validate_{schema.__name__}")
        )
        return chain.with_types(input_type=ExtractInput, output_type=schema).with_config(
            run_name=run_name
        )

    return factory


# The built-in chain: people, organizations and places.
entities_chain = extract_chain(Entities)
