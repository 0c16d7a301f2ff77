"""LangServe's chat playground for chat-shaped chains, fed schemas it recognises.

LangServe 0.3.3's chat playground decides from the chain's schemas whether it can show a chat:
the input must be a dict with one list-of-messages key (or that plus one string key), and the
output must be a string or an ``anyOf``/``oneOf`` whose option has ``type.enum`` holding "ai".
Pydantic 2 writes an AIMessage output as one object with ``type: {"const": "ai"}``, so the page
shows its "only supported for chains that take ..." notice instead of a chat.

This module serves the same playground build at ``/{chain}/playground/`` (registered before
LangServe's own route, so it wins) with copies of the chain's schemas in that shape embedded in
the page. The page asks the server for its schemas (``/c/<config>/input_schema`` and
``/output_schema``) rather than reading the embedded ones, so a small script
(``data/playground_fetch.js``), put in front of the bundle, answers those requests from the
embedded copies. Nothing changes for any other client: the REST routes, their strict
validation and their schema endpoints stay as they are, and the page posts ``{"messages":
[...]}`` to ``/{chain}/stream_log`` like any client, through the guards.

The page also needs the server's errors. Its stream client throws away a non-200 answer's body
(a guard's 400 says only "Expected content-type to be text/event-stream") and ignores ``event:
error`` mid-stream. The same script turns both into a failed stream whose message is the
server's, which the page shows in its error toast. Two small edits to the served bundle are
listed at ``_BUNDLE_EDITS``.
"""

from __future__ import annotations

import copy
import functools
import logging
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from langchain_core.runnables import Runnable
from langserve.playground import serve_playground
from pydantic import BaseModel

log = logging.getLogger("langdeploy.serve")

PlaygroundType = Literal["default", "chat"]

# Two edits to the pinned bundle (langserve==0.3.3); in another build they match nothing and
# change nothing. The suffix it adds to every error toast (a template literal holding a real
# newline) is wrong for a guard's message, which is complete. And it shows an answer only when
# its type is "AIMessageChunk" or "AIMessage", but a chain that ends in a step returning an
# AIMessage (an app's tidy step) streams it whole, serialised with its own type, "ai".
_BUNDLE_EDITS = (
    ("+`\nCheck your backend logs for errors.`", ""),
    ('["AIMessageChunk","AIMessage"].includes(', '["AIMessageChunk","AIMessage","ai"].includes('),
)


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a local ``#/$defs/...`` reference followed (one level is what we read)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict):
            return target
    return node


def chat_input_supported(schema: dict[str, Any]) -> bool:
    """The chat page's own test: one array key, or an array key and a string key."""
    root = _resolve(schema, schema)
    props = root.get("properties") or {}
    types = sorted(str(_resolve(schema, p).get("type")) for p in props.values())
    return types == ["array"] or types == ["array", "string"]


def chat_output_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The output schema in the shape the chat page looks for, or None when the chain does not
    answer with a message or a string."""
    root = _resolve(schema, schema)
    if root.get("type") == "string":
        return schema
    options = [root] if "properties" in root else list(root.get("anyOf") or root.get("oneOf") or [])
    shaped = []
    for option in options:
        option = copy.deepcopy(_resolve(schema, option))
        kind = (option.get("properties") or {}).get("type") or {}
        values = kind.get("enum") or ([kind["const"]] if "const" in kind else [])
        if values:
            # The same constraint, spelled as the page reads it.
            option["properties"]["type"] = {**kind, "enum": list(values)}
        shaped.append(option)
    if not any("ai" in (o.get("properties", {}).get("type", {}).get("enum") or []) for o in shaped):
        return None
    return {"anyOf": shaped, "$defs": schema.get("$defs", {}), "title": root.get("title", "Output")}


def _schema_type(schema: dict[str, Any], name: str) -> type[BaseModel]:
    """A pydantic type whose JSON schema is ``schema``: serve_playground asks types for it."""

    class Fixed(BaseModel):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return schema

    Fixed.__name__ = name
    return Fixed


@functools.cache
def _error_script() -> str:
    return (resources.files("langdeploy.serve") / "data" / "playground_fetch.js").read_text("utf-8")


def install_playground(
    app: FastAPI, name: str, runnable: Runnable[Any, Any], wanted: PlaygroundType
) -> PlaygroundType:
    """Serve the chat playground for ``name`` when the chain is chat-shaped; return the
    playground type LangServe should register (its default playground otherwise)."""
    if wanted != "chat":
        return wanted
    input_schema = runnable.get_input_jsonschema()
    output_schema = chat_output_schema(runnable.get_output_jsonschema())
    if not chat_input_supported(input_schema) or output_schema is None:
        log.warning(
            "chain %r asks for the chat playground, but its input is not a dict with a list of "
            "messages (and at most one string) or its output is not a message or a string: "
            "serving the default playground instead",
            name,
        )
        return "default"
    input_type = _schema_type(input_schema, f"{name}_playground_input")
    output_type = _schema_type(output_schema, f"{name}_playground_output")

    async def chat_playground(request: Request, file_path: str) -> Response:
        base_url = str(request.scope.get("root_path", "")).rstrip("/") + f"/{name}/playground"
        response = await serve_playground(
            runnable,
            input_type,
            output_type,
            ["configurable"],
            base_url,
            file_path,
            False,
            False,
            playground_type="chat",
        )
        media = response.media_type or ""
        if media == "text/html" and response.status_code == 200:
            page = bytes(response.body).decode("utf-8")
            # Before the bundle (a module script runs after classic ones), so fetch is wrapped
            # by the time the page first streams.
            page = page.replace("<head>", f"<head>\n<script>{_error_script()}</script>", 1)
            return Response(page, media_type=media)
        if media == "application/javascript" and response.status_code == 200:
            bundle = bytes(response.body).decode("utf-8")
            for before, after in _BUNDLE_EDITS:
                bundle = bundle.replace(before, after)
            return Response(bundle, media_type=media)
        return response

    # The page's Share button links to /{name}/c/<config>/playground/: the same page (it takes
    # no configuration; LangServe reads the config from the path for the page's requests).
    for path in (f"/{name}/playground/{{file_path:path}}",
                 f"/{name}/c/{{config_hash}}/playground/{{file_path:path}}"):  # fmt: skip
        app.add_api_route(path, chat_playground, methods=["GET"], include_in_schema=False)
    return "chat"
