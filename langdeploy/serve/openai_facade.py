"""An OpenAI-compatible endpoint for the served (guarded) chat chain.

``POST /v1/chat/completions`` (streaming and not, with usage) and ``GET /v1/models``, so any
OpenAI SDK client talks to the same guarded chain as ``/chat``. Errors are OpenAI-style error
objects: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.messages import AIMessageChunk, BaseMessage, convert_to_messages
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langdeploy.errors import LangdeployError
from langdeploy.models.messages import message_text
from langdeploy.serve.context import current_request_id, current_stream_violation
from langdeploy.serve.errors import error_response, exc_payload, exc_response


class StreamOptions(BaseModel):
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat completion request that a local model can honour."""

    # Fields that change nothing here (user, metadata, store, ...) are accepted and ignored;
    # those that would change the answer and are not supported get a 400 (see UNSUPPORTED).
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    n: int = 1


# Parameters a client may send that this server cannot honour, with the value that means "not
# used" (a client library sending the default is fine): anything else is a 400 naming it.
UNSUPPORTED: dict[str, Any] = {
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "parallel_tool_calls": None,
    "logprobs": False,
    "top_logprobs": None,
    "logit_bias": None,
    "audio": None,
    "modalities": None,
    "prediction": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}


def unsupported_param(raw: dict[str, Any]) -> str | None:
    """The first parameter in ``raw`` that asks for something this server does not do."""
    for name, unused in UNSUPPORTED.items():
        value = raw.get(name, unused)
        if value != unused and value not in (None, [], {}):
            return name
    n = raw.get("n", 1)
    if n not in (1, None):
        return "n"
    return None


def llama_response_format(fmt: ResponseFormat) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` as llama.cpp's grammar request: ``json_schema`` becomes
    ``{"type": "json_object", "schema": ...}``, the form llama-cpp-python compiles."""
    if fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    schema = (fmt.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise ValueError("response_format.json_schema.schema: a JSON schema object is required")
    return {"type": "json_object", "schema": schema}


def openai_error(
    status: int, message: str, *, code: str = "invalid_request", param: str | None = None
) -> JSONResponse:
    return error_response("openai", status, code, message, param=param)


def _from_langdeploy(exc: LangdeployError) -> JSONResponse:
    return exc_response(exc, "openai", current_request_id())


def _final_error(exc: LangdeployError) -> str:
    """The final frames of an OpenAI stream that stopped early: the error object, then DONE."""
    body = exc_payload(exc, "openai", current_request_id())
    return f"data: {json.dumps(body)}\n\ndata: [DONE]\n\n"


def _usage(message: BaseMessage | None) -> dict[str, int] | None:
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    return {
        "prompt_tokens": usage.get("input_tokens", 0),
        "completion_tokens": usage.get("output_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
    }


def _finish_reason(message: BaseMessage | None) -> str:
    reason = (getattr(message, "response_metadata", None) or {}).get("finish_reason")
    return "length" if reason == "length" else "stop"


def build_router(chain: Runnable[Any, Any], model_id: str) -> APIRouter:
    """Routes under /v1 over ``chain`` (the same Runnable that /chat serves)."""
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "langdeploy"}],
        }

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        try:
            raw = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return openai_error(400, "The request body is not valid JSON.")
        if not isinstance(raw, dict):
            return openai_error(400, "The request body must be a JSON object.")
        unsupported = unsupported_param(raw)
        if unsupported is not None:
            return openai_error(
                400,
                f"{unsupported}: this server does not support it (a local model answers one "
                "plain or JSON message per request). Leave it out of the request.",
                code="unsupported_parameter",
                param=unsupported,
            )
        try:
            req = ChatCompletionRequest.model_validate(raw)
            messages = convert_to_messages(req.messages)
            grammar = llama_response_format(req.response_format) if req.response_format else None
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"])
            return openai_error(400, f"{param}: {err['msg']}.", param=param)
        except (ValueError, NotImplementedError) as exc:
            where = "response_format" if "response_format" in str(exc) else "messages"
            return openai_error(
                400,
                f"{exc}."
                if where == "response_format"
                else f"messages: {exc}. Each message needs a role (system, user, assistant) "
                "and content.",
                param=where,
            )
        if req.model != model_id:
            return openai_error(
                404,
                f"The model {req.model!r} does not exist here; this server serves {model_id!r}.",
                code="model_not_found",
                param="model",
            )
        known = {spec.id for spec in chain.config_specs}
        if grammar is not None and "response_format" not in known:
            return openai_error(
                400,
                "response_format: this server's model backend does not take it. Use the "
                "llamacpp backend, or the extract chain for schema-shaped answers.",
                code="unsupported_parameter",
                param="response_format",
            )
        configurable: dict[str, Any] = {}
        max_tokens = req.max_completion_tokens or req.max_tokens
        for key, value in (
            ("temperature", req.temperature),
            ("top_p", req.top_p),
            ("max_tokens", max_tokens),
            ("seed", req.seed),
        ):
            if value is not None:
                configurable[key] = value
        config: RunnableConfig = {"configurable": configurable}
        if req.stop:
            config["configurable"]["stop"] = [req.stop] if isinstance(req.stop, str) else req.stop
        if grammar is not None:
            config["configurable"]["response_format"] = grammar
        payload = {"messages": messages}
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        if not req.stream:
            try:
                message = await chain.ainvoke(payload, config)
            except LangdeployError as exc:
                return _from_langdeploy(exc)
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_id,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": message_text(message)},
                            "finish_reason": _finish_reason(message),
                        }
                    ],
                    "usage": _usage(message),
                }
            )

        stream = chain.astream(payload, config).__aiter__()
        # Wait for the first chunk before answering, so that a blocked prompt, a full queue or a
        # dead upstream is a proper status code, not a 200 with an error inside.
        try:
            first: Any = await stream.__anext__()
        except StopAsyncIteration:
            first = None
        except LangdeployError as exc:
            return _from_langdeploy(exc)
        # An input guard may end the stream quietly before its first chunk: still a 400.
        early = current_stream_violation()
        if early is not None:
            return _from_langdeploy(early)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def frame(delta: dict[str, Any] | None, finish: str | None, usage: Any = None) -> str:
            body: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                if delta is not None
                else [],
            }
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield frame({"role": "assistant", "content": ""}, None)
            final: AIMessageChunk | None = None
            chunk = first
            try:
                while chunk is not None:
                    if isinstance(chunk, AIMessageChunk):
                        final = chunk if final is None else final + chunk
                    text = message_text(chunk) if isinstance(chunk, BaseMessage) else str(chunk)
                    if text:
                        yield frame({"content": text}, None)
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        chunk = None
            except LangdeployError as exc:
                yield _final_error(exc)
                return
            # An output guard that blocks mid-stream ends the stream quietly and leaves the
            # violation for the front end to report.
            violation = current_stream_violation()
            if violation is not None:
                yield _final_error(violation)
                return
            yield frame({}, _finish_reason(final))
            if include_usage:
                yield frame(None, None, _usage(final))
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
