"""GET / for API clients and browsers, offline /docs and /redoc, the chat playground's schemas,
and what clients never see (the model's path on the server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel

from langdeploy.models.factory import ModelHandle, public_model_name
from langdeploy.serve.pages import wants_html
from langdeploy.serve.playground import (
    chat_input_supported,
    chat_output_schema,
    install_playground,
)

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _model_dir(model: ModelHandle) -> str:
    return str(Path(str(getattr(model, "path", "/nowhere/x.gguf"))).parent)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
    ],
)
def test_wants_html(accept: str, html: bool) -> None:
    assert wants_html(accept) is html


def test_index_json_for_clients_html_for_browsers(client: TestClient, model: ModelHandle) -> None:
    r = client.get("/")
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["vary"] == "Accept"
    info = r.json()
    assert [c["name"] for c in info["chains"]] == ["chat", "summarize"]
    assert info["chains"][0]["playground"] == "/chat/playground/"
    assert info["openai"] == "/v1/chat/completions"
    assert info["model"]["name"] == "smollm2-135m" and info["model"]["ready"] is True

    page = client.get("/", headers={"accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for link in ("chat/playground/", "summarize/playground/", "docs#/chat", "redoc"):
        assert f'href="{link}"' in html
    assert 'id="readiness" class="ready"' in html
    assert "/v1/chat/completions" in html
    assert "93.8 MiB" in html and "8,192 tokens" in html  # the card, with units
    # Only local links: nothing on the page loads from elsewhere.
    assert not re.search(r'(src|href)="https?://', html)


def test_no_server_path_reaches_clients(client: TestClient, model: ModelHandle) -> None:
    where = _model_dir(model)
    for path, headers in (("/", {}), ("/", {"accept": "text/html"}), ("/readyz", {})):
        body = client.get(path, headers=headers).text
        assert where not in body, path
    assert client.get("/readyz").json()["model"]["file"].endswith(".gguf")
    assert public_model_name("/srv/models/tiny.gguf") == "tiny.gguf"
    assert public_model_name("./tiny.gguf") == "tiny.gguf"
    # An upstream's hub id keeps its slash.
    assert public_model_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_docs_and_redoc_use_local_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert urls and all(u.startswith("/_docs-assets/") for u in urls), urls
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "cdn.jsdelivr" not in client.get("/docs").text
    assert "validatorUrl" in client.get("/docs").text  # no spec sent to validator.swagger.io
    assert "cdn.redoc.ly" not in client.get("/_docs-assets/redoc.standalone.js").text
    assert "fonts.googleapis" not in client.get("/redoc").text


def _embedded(html: str, name: str) -> Any:
    match = re.search(rf"window\.{name} = (.*?);\n", html)
    assert match, name
    return json.loads(match.group(1))


def test_chat_playground_gets_chat_shaped_schemas(client: TestClient) -> None:
    html = client.get("/chat/playground/").text
    out = _embedded(html, "OUTPUT_SCHEMA")
    kinds = [o["properties"]["type"] for o in out["anyOf"]]
    assert any("ai" in k.get("enum", []) for k in kinds)
    assert list(_embedded(html, "INPUT_SCHEMA")["properties"]) == ["messages"]
    assert "langdeploy: LangServe's chat playground" in html  # the fetch wrapper comes first
    assert html.index("<script>") < html.index('type="module"')
    bundle_path = re.search(r'src="(/chat/playground/assets/[^"]+\.js)"', html)
    assert bundle_path
    # The page's share links open the same page.
    shared = client.get("/chat/c/N4XyA/playground/")
    assert shared.status_code == 200 and "langdeploy: LangServe's chat playground" in shared.text
    bundle = client.get(bundle_path.group(1)).text
    assert "Check your backend logs" not in bundle
    assert '["AIMessageChunk","AIMessage","ai"].includes(' in bundle


def test_rest_validation_stays_strict(client: TestClient) -> None:
    # The playground's schema copy changes nothing a client sees or may send.
    schema = client.get("/chat/input_schema").json()
    assert schema["properties"]["messages"]["minItems"] == 1
    assert client.get("/chat/output_schema").json()["properties"]["type"]["const"] == "ai"
    r = client.post("/chat/invoke", json={"input": {"messages": []}})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    # Whole sentences: the hint does not run into the reason.
    assert ", not 0. See GET /chat/input_schema" in message


def test_schema_shapes() -> None:
    message = AIMessage.model_json_schema()
    shaped = chat_output_schema(message)
    assert shaped is not None and shaped["anyOf"][0]["properties"]["type"]["enum"] == ["ai"]
    assert chat_output_schema({"type": "string"}) == {"type": "string"}
    assert chat_output_schema({"type": "object", "properties": {"answer": {}}}) is None
    assert chat_input_supported({"properties": {"messages": {"type": "array"}}})
    two = {"properties": {"history": {"type": "array"}, "question": {"type": "string"}}}
    assert chat_input_supported(two)
    assert not chat_input_supported({"properties": {"text": {"type": "string"}}})


class _ThreeKeys(BaseModel):
    a: str
    b: str
    c: list[str]


def test_a_chain_that_is_not_chat_shaped_keeps_the_default_playground(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    runnable = RunnableLambda(lambda x: AIMessage(content="hi")).with_types(
        input_type=_ThreeKeys, output_type=AIMessage
    )
    assert install_playground(app, "odd", runnable, "chat") == "default"
    assert "serving the default playground instead" in caplog.text
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/odd/")]
    assert install_playground(app, "plain", runnable, "default") == "default"
