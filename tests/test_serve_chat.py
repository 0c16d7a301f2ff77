"""The served chat and summarize chains, through TestClient and a real uvicorn."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from fastapi.testclient import TestClient
from langserve import RemoteRunnable

from langdeploy.models.factory import ModelHandle
from tests.servers import UvicornThread
from tests.sse import parse_sse

HELLO = {"input": {"messages": [{"type": "human", "content": "Say hello to Ada."}]}}
# Long enough to outrun the default output guards' hold-back window (96 characters), so that a
# stream shows as a stream; passed per request through LangServe's config.
LONG = {**HELLO, "config": {"configurable": {"max_tokens": 80}}}


def test_meta_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    index = client.get("/").json()
    assert {c["name"] for c in index["chains"]} == {"chat", "summarize"}
    assert index["chains"][0]["invoke"].endswith("/invoke")


def test_chat_invoke(client: TestClient) -> None:
    r = client.post("/chat/invoke", json=HELLO)
    assert r.status_code == 200, r.text
    out = r.json()["output"]
    assert out["type"] == "ai"
    assert isinstance(out["content"], str) and out["content"].strip()
    usage = out["usage_metadata"]
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 24
    assert r.headers["x-request-id"]


def test_chat_stream_gives_ordered_data_then_end(client: TestClient) -> None:
    r = client.post("/chat/stream", json=LONG)
    assert r.status_code == 200
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert names[0] == "metadata" and names[-1] == "end"
    data = [d for e, d in events if e == "data"]
    # Token by token: many small chunks, not one answer at the end.
    assert len(data) >= 5
    assert "error" not in names
    text = "".join(d.get("content", "") for d in data)
    invoke = client.post("/chat/invoke", json=LONG).json()["output"]["content"]
    assert text == invoke  # temperature 0: the stream is the invoke answer, in order


def test_chat_batch_of_three(client: TestClient) -> None:
    inputs = [{"messages": [{"type": "human", "content": f"Count to {n}."}]} for n in (1, 2, 3)]
    r = client.post("/chat/batch", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    outputs = r.json()["output"]
    assert len(outputs) == 3 and all(o["type"] == "ai" for o in outputs)


def test_schema_endpoints(client: TestClient) -> None:
    schema = client.get("/chat/input_schema").json()
    assert "messages" in schema["properties"] and schema["required"] == ["messages"]
    assert client.get("/chat/output_schema").status_code == 200
    assert client.get("/chat/config_schema").status_code == 200
    summarize = client.get("/summarize/input_schema").json()
    assert summarize["properties"]["text"]["type"] == "string"
    assert client.get("/summarize/output_schema").json()["type"] == "string"


def test_playgrounds_answer(client: TestClient) -> None:
    for chain in ("chat", "summarize"):
        r = client.get(f"/{chain}/playground/")
        assert r.status_code == 200 and "<html" in r.text.lower()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input": {}}, "messages"),  # missing field
        ({"input": {"messages": "hello"}}, "messages"),  # wrong type
        ({"input": {"messages": []}}, "at least 1"),  # empty list
        ({"input": {"messages": [{"type": "nope", "content": "x"}]}}, "messages"),
        ({}, "input"),  # no input at all
        ({"input": {"messages": [3]}}, "must be an object"),
        ({"input": {"messages": [["wizard", "hi"]]}}, "unknown message role"),
    ],
)
def test_bad_input_is_a_clear_4xx(client: TestClient, body: dict[str, object], needle: str) -> None:
    r = client.post("/chat/invoke", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request"
    assert needle in err["message"]
    assert "input_schema" in err["message"]


def test_malformed_json_and_unknown_chain(client: TestClient) -> None:
    r = client.post(
        "/chat/invoke", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]
    r = client.post("/nope/invoke", json=HELLO)
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert "/chat" in message and "/summarize" in message
    r = client.post("/summarize/invoke", json={"input": {"text": ""}})
    assert r.status_code == 422
    r = client.get("/chat/invoke")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"


def test_summarize_long_text_calls_model_several_times(
    client: TestClient, model: ModelHandle
) -> None:
    paragraph = (
        "The committee met on Tuesday to review the harbour project. Engineers reported that the "
        "northern breakwater is complete and that dredging will finish in March. The budget "
        "stands at 42 million euros, two million under the forecast. "
    )
    text = paragraph * 150  # several times the 2048-token context
    assert model.count_tokens(text) > 3 * model.n_ctx
    before = model.engine.requests_served  # type: ignore[attr-defined]
    r = client.post("/summarize/invoke", json={"input": {"text": text}})
    assert r.status_code == 200, r.text
    summary = r.json()["output"]
    assert isinstance(summary, str) and summary.strip()
    calls = model.engine.requests_served - before  # type: ignore[attr-defined]
    assert calls >= 4  # map over each piece, then reduce


def test_remote_runnable_against_uvicorn(live_server: UvicornThread) -> None:
    chat = RemoteRunnable(f"{live_server.url}/chat")
    # The README's form: (role, content) pairs.
    msg = {"messages": [("human", "Name a colour.")]}
    longer = {"configurable": {"max_tokens": 80}}
    out = chat.invoke(msg, longer)
    assert out.type == "ai" and out.content
    chunks = list(chat.stream(msg, longer))
    assert len(chunks) >= 5
    assert "".join(c.content for c in chunks) == out.content
    assert len(chat.batch([msg, msg, msg])) == 3


def test_four_concurrent_streams_all_complete(live_server: UvicornThread) -> None:
    def one(i: int) -> tuple[int, str, list[str]]:
        body = {"input": {"messages": [{"type": "human", "content": f"Tell me fact {i}."}]}}
        with httpx.Client(timeout=120) as c:
            r = c.post(f"{live_server.url}/chat/stream", json=body)
        events = parse_sse(r.text)
        text = "".join(d.get("content", "") for e, d in events if e == "data")
        return r.status_code, text, [e for e, _ in events]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    for status, text, names in results:
        assert status == 200
        assert names[-1] == "end" and "error" not in names
        assert text.strip()
