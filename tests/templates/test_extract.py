"""The extract chain: JSON that fits the schema, through the real model and LangServe; its
stream fold, through a fake model that streams a known answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel, Field

from langdeploy.chains.extract import (
    Entities,
    ExtractionError,
    PartialObject,
    extract_chain,
    parse_answer,
    response_format_for,
)
from langdeploy.chains.registry import ChainContext
from langdeploy.models.factory import ModelHandle
from langdeploy.serve import create_app
from langdeploy.settings import Settings
from tests.sse import parse_sse
from tests.test_openai_backend import Upstream, openai_settings

TEXT = "Ada Lovelace met Charles Babbage in London to talk about the Analytical Engine."


@pytest.fixture(scope="module")
def extract_client(settings: Settings, model: ModelHandle) -> Iterator[TestClient]:
    served = settings.model_copy(
        update={"server": settings.server.model_copy(update={"chains": ["extract"]})}
    )
    with TestClient(create_app(served, model=model), raise_server_exceptions=False) as c:
        yield c


def test_extract_returns_json_that_fits_the_schema(extract_client: TestClient) -> None:
    body = {"input": {"text": TEXT}, "config": {"configurable": {"max_tokens": 160}}}
    response = extract_client.post("/extract/invoke", json=body)
    assert response.status_code == 200, response.text
    Entities.model_validate(response.json()["output"])


def test_extract_streams_fields_as_they_parse_then_the_object(
    extract_client: TestClient,
) -> None:
    body = {"input": {"text": TEXT}, "config": {"configurable": {"max_tokens": 160}}}
    response = extract_client.post("/extract/stream", json=body)
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert [e for e, _ in events][-1] == "end" and "error" not in {e for e, _ in events}
    data = [d for e, d in events if e == "data"]
    assert len(data) > 1, data  # the fields as they parse, then the validated object
    final = Entities.model_validate(data[-1])
    for piece in data[:-1]:
        assert len(piece) == 1 and set(piece) <= set(Entities.model_fields)
    # Summed as rag's chunks sum, the pieces are the start of the final object's fields (the
    # last field's last item comes only with the validated object).
    summed = AddableDict()
    for piece in data[:-1]:
        summed = summed + AddableDict(piece)
    for key, value in summed.items():
        assert getattr(final, key)[: len(value)] == value


def test_a_stream_cut_off_ends_with_the_422_error(extract_client: TestClient) -> None:
    body = {"input": {"text": TEXT}, "config": {"configurable": {"max_tokens": 4}}}
    response = extract_client.post("/extract/stream", json=body)
    events = parse_sse(response.text)
    assert [e for e, _ in events][-2:] == ["error", "end"], events
    assert events[-2][1]["status_code"] == 422


class Contact(BaseModel):
    name: str | None = None
    email: str | None = None
    tags: list[str] = Field(default_factory=list)


def _fake_ctx(settings: Settings, answer: str) -> ChainContext:
    # GenericFakeChatModel streams the answer in whitespace-separated pieces.
    model = GenericFakeChatModel(messages=iter([AIMessage(content=answer)]))
    return ChainContext(settings=settings, model=model, count_tokens=len, n_ctx=2048)


def test_the_stream_sends_string_fields_as_text_and_others_once_complete(
    settings: Settings,
) -> None:
    answer = '{"name": "Ada King Lovelace", "email": null, "tags": ["math", "poetry"]}'
    chain = extract_chain(Contact)(_fake_ctx(settings, answer))
    pieces = list(chain.stream({"text": "x"}))
    assert pieces[-1] == Contact(name="Ada King Lovelace", tags=["math", "poetry"])
    names = [p["name"] for p in pieces[:-1] if "name" in p]
    assert len(names) > 1 and "".join(names) == "Ada King Lovelace"
    assert {"email": None} in pieces
    # A list item is sent once the next one starts; the last comes with the validated object.
    assert [p for p in pieces[:-1] if "tags" in p] == [{"tags": ["math"]}]


def test_invoke_returns_only_the_validated_object(settings: Settings) -> None:
    chain = extract_chain(Contact)(_fake_ctx(settings, '{"name": "Ada", "tags": []}'))
    assert chain.invoke({"text": "x"}) == Contact(name="Ada")


def test_the_async_stream_is_the_same(settings: Settings) -> None:
    answer = '{"name": "Ada King Lovelace", "email": null, "tags": []}'
    sync = list(extract_chain(Contact)(_fake_ctx(settings, answer)).stream({"text": "x"}))
    chain = extract_chain(Contact)(_fake_ctx(settings, answer))

    async def collect() -> list[Any]:
        return [p async for p in chain.astream({"text": "x"})]

    assert asyncio.run(collect()) == sync


def test_a_streamed_answer_against_the_schema_raises_at_the_end() -> None:
    fold = PartialObject(Reading)
    out = [p for c in ['{"cel', 'sius": ', "99}"] for p in fold.feed(AIMessageChunk(content=c))]
    assert out == []  # a number is only sent once it is complete
    with pytest.raises(ExtractionError) as err:
        list(fold.end())
    assert "celsius" in str(err.value)


def test_the_schema_is_served(extract_client: TestClient) -> None:
    schema = extract_client.get("/extract/output_schema").json()
    assert set(schema["properties"]) == {"people", "organizations", "places"}
    assert extract_client.get("/extract/input_schema").json()["required"] == ["text"]


def test_an_answer_cut_off_is_a_422_that_names_the_fix(extract_client: TestClient) -> None:
    body = {"input": {"text": TEXT}, "config": {"configurable": {"max_tokens": 4}}}
    response = extract_client.post("/extract/invoke", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "extraction_failed"
    assert "max_tokens" in error["message"]


def test_a_blank_text_is_a_400(extract_client: TestClient) -> None:
    response = extract_client.post("/extract/invoke", json={"input": {"text": "  "}})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


class Reading(BaseModel):
    celsius: float = Field(ge=-90, le=60)


def test_an_answer_against_a_constraint_names_the_field() -> None:
    with pytest.raises(ExtractionError) as err:
        parse_answer(Reading, AIMessage(content='{"celsius": 99}'))
    assert "celsius" in str(err.value) and err.value.status_code == 422


def test_response_format_per_backend() -> None:
    local = response_format_for(Reading, "llamacpp")
    assert local["type"] == "json_object"
    assert local["schema"]["properties"]["celsius"]["type"] == "number"
    assert response_format_for(Reading, "openai") == local
    strict = response_format_for(Reading, "openai", "json_schema")
    assert strict["type"] == "json_schema"
    assert json.dumps(strict["json_schema"]["schema"]) == json.dumps(local["schema"])


def test_extract_over_an_openai_compatible_upstream(tmp_path: Path) -> None:
    """llama.cpp's OpenAI-compatible server, the stand-in GPU server, gets the schema too."""
    upstream = Upstream()
    upstream.start()
    try:
        settings = openai_settings(tmp_path, upstream.base_url, max_tokens=160)
        served = settings.model_copy(
            update={"server": settings.server.model_copy(update={"chains": ["extract"]})}
        )
        with TestClient(create_app(served), raise_server_exceptions=False) as client:
            response = client.post("/extract/invoke", json={"input": {"text": TEXT}})
            assert response.status_code == 200, response.text
            Entities.model_validate(response.json()["output"])
    finally:
        upstream.stop()
