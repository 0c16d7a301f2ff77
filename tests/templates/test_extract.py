"""The extract chain: JSON that fits the schema, through the real model and LangServe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from langdeploy.chains.extract import (
    Entities,
    ExtractionError,
    parse_answer,
    response_format_for,
)
from langdeploy.models.factory import ModelHandle
from langdeploy.serve import create_app
from langdeploy.settings import Settings
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
