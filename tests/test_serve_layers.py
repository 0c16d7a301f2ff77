"""The request path's layers on a real server: one request id, one admission decision, the body
limit, input guards run once, one error vocabulary (checked with the official openai client on
/v1), and /v1's response_format and unsupported parameters."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import openai
import pytest

from langdeploy.chains import ChainSpec, chain_registry
from langdeploy.guards import Finding, Guard, GuardContext
from langdeploy.guards.registry import guard_registry
from langdeploy.models.engine import GenParams, _Job
from langdeploy.models.factory import LocalModel, ModelHandle, build_model
from langdeploy.serve import create_app
from langdeploy.settings import Settings
from tests.conftest import make_settings
from tests.servers import UvicornThread
from tests.sse import parse_sse

HELLO = {"input": {"messages": [{"type": "human", "content": "Say hello."}]}}


class CountingGuard(Guard):
    """Warns on every text and counts how often it ran."""

    name = "test_counting"
    stages: ClassVar = ("input",)
    default_action: ClassVar = "warn"
    calls: ClassVar[list[str]] = []

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        CountingGuard.calls.append(text)
        return [Finding("counted", 0, min(1, len(text)))]


@pytest.fixture(scope="module")
def server(empty_dir: Path, model: ModelHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornThread]:  # fmt: skip
    guard_registry.register(CountingGuard, replace=True)
    config = tmp_path_factory.mktemp("guards") / "guards.yaml"
    config.write_text("chains:\n  chat:\n    input:\n      - guard: test_counting\n")
    settings = make_settings(empty_dir, guards={"config": str(config)})
    try:
        with UvicornThread(create_app(settings, model=model)) as running:
            yield running
    finally:
        guard_registry.unregister("test_counting")


@pytest.fixture(scope="module")
def client(server: UvicornThread) -> Iterator[openai.OpenAI]:
    yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_one_request_id_in_and_out(server: UvicornThread) -> None:
    r = httpx.post(f"{server.url}/chat/invoke", json=HELLO, headers={"x-request-id": "abc-1"})
    assert r.status_code == 200
    assert r.headers.get_list("x-request-id") == ["abc-1"]
    fresh = httpx.get(f"{server.url}/healthz")
    assert len(fresh.headers.get_list("x-request-id")) == 1


def test_a_streams_input_guards_run_once(server: UvicornThread) -> None:
    CountingGuard.calls.clear()
    body = {"input": {"messages": [{"type": "human", "content": "Count me once, please."}]}}
    r = httpx.post(f"{server.url}/chat/stream", json=body, timeout=120)
    assert r.status_code == 200
    assert [e for e, _ in parse_sse(r.text)][-1] == "end"
    # Checked before the stream starts, remembered for the chain: one run.
    assert CountingGuard.calls == ["Count me once, please."]


@pytest.mark.parametrize("path", ["/chat/invoke", "/v1/chat/completions"])
def test_an_oversized_body_is_a_413_before_it_is_parsed(server: UvicornThread, path: str) -> None:
    big = b'{"input": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    declared = httpx.post(f"{server.url}{path}", content=big, headers={"content-type": "application/json"})  # fmt: skip
    assert declared.status_code == 413, declared.text
    assert "server.max_body_bytes" in declared.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    chunked = httpx.post(f"{server.url}{path}", content=chunks(), headers={"content-type": "application/json"})  # fmt: skip
    assert chunked.status_code == 413, chunked.text
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_v1_errors_are_openai_objects(client: openai.OpenAI, server: UvicornThread) -> None:
    messages: Any = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=messages,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    assert bad.value.body["param"] == "tools" and bad.value.body["code"] == "unsupported_parameter"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as many:
        client.chat.completions.create(model="smollm2-135m", messages=messages, n=2)
    assert many.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nope", messages=messages)
    with pytest.raises(openai.APIStatusError) as large:
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "x" * 1_100_000}])  # fmt: skip
    assert large.value.status_code == 413 and large.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_v1_response_format_json_schema_is_followed(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
    }
    reply = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Name a city in France."}],
        max_tokens=24,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data, dict) and isinstance(data["city"], str)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 300  # only catches a hang
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        threading.Event().wait(0.01)


def test_full_capacity_is_a_429_in_each_route_familys_shape(empty_dir: Path) -> None:
    settings = make_settings(empty_dir, model={"queue_size": 1})
    handle = build_model(settings.model, shared=True)
    assert isinstance(handle, LocalModel)
    handle.load()
    holding, release = threading.Event(), threading.Event()

    def hold(item: Any) -> None:
        holding.set()
        release.wait(300)

    with UvicornThread(create_app(settings, model=handle)) as running:
        handle.engine._submit(_Job(messages=[{"role": "user", "content": "Hi"}], params=GenParams(max_tokens=2), sink=hold))  # fmt: skip
        assert holding.wait(300)
        admitted = [
            threading.Thread(
                target=httpx.post,
                args=(f"{running.url}/chat/invoke",),
                kwargs={"json": HELLO, "timeout": 300},
            )
            for _ in range(2)
        ]
        for t in admitted:
            t.start()
        try:
            _until(lambda: handle.engine.queue_depth == 2, "two requests waiting")
            api = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.RateLimitError) as limited:
                api.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
            assert int(limited.value.response.headers["retry-after"]) >= 1
            assert limited.value.body["code"] == "overloaded"  # type: ignore[index]
            served = httpx.post(f"{running.url}/chat/invoke", json=HELLO)
            assert served.status_code == 429 and served.json()["error"]["type"] == "overloaded"
        finally:
            release.set()
            for t in admitted:
                t.join(300)


class StillLoading(LocalModel):
    """The loaded engine, seen as not ready yet: a server whose model is loading."""

    @property
    def ready(self) -> bool:
        return False


def test_a_loading_model_is_a_503_with_retry_after(settings: Settings, model: ModelHandle) -> None:
    assert isinstance(model, LocalModel)
    loading = StillLoading(settings.model, engine=model.engine)
    with UvicornThread(create_app(settings, model=loading)) as running:
        api = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as unavailable:
            api.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
        assert unavailable.value.status_code == 503
        assert int(unavailable.value.response.headers["retry-after"]) >= 1
        assert unavailable.value.body["code"] == "model_loading"  # type: ignore[index]
        r = httpx.post(f"{running.url}/chat/stream", json=HELLO)
        assert r.status_code == 503 and r.json()["error"]["type"] == "model_loading"
        assert httpx.get(f"{running.url}/readyz").status_code == 503


def test_an_app_chat_shaped_chain_gets_the_openai_route(
    empty_dir: Path, model: ModelHandle
) -> None:
    def assistant(ctx: Any) -> Any:
        return chain_registry.get("chat").factory(ctx)

    chain_registry.register(ChainSpec(name="test-helper", factory=assistant, extends="chat"))
    try:
        settings = make_settings(empty_dir, server={"chains": ["test-helper", "summarize"]})
        with UvicornThread(create_app(settings, model=model)) as running:
            index = httpx.get(f"{running.url}/").json()
            assert index["openai"] == "/v1/chat/completions"
            assert index["openai_chain"] == "test-helper"
            api = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
            reply = api.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)  # fmt: skip
            assert reply.choices[0].message.content
    finally:
        chain_registry.unregister("test-helper")
