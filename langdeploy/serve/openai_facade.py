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

from langdeploy.errors import LangdeployError, ServiceUnavailable
from langdeploy.models.messages import message_text
from langdeploy.serve.guarding import current_stream_violation


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat completion request that a local model can honour."""

    # Clients send fields we do not use (user, logprobs, ...): accept and ignore them.
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
    n: Literal[1] = 1


def openai_error(
    status: int, message: str, *, type_: str, code: str | None = None, param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:  # fmt: skip
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _from_langdeploy(exc: LangdeployError) -> JSONResponse:
    headers = None
    if isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    extra = getattr(exc, "body_extra", None) or {}
    code = exc.error_type
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    if exc.status_code == 429:
        type_ = "rate_limit_error"
    response = openai_error(
        exc.status_code, exc.public_message, type_=type_, code=code, headers=headers
    )
    if extra:
        body = json.loads(bytes(response.body))
        body["error"].update(extra)
        response = JSONResponse(body, status_code=exc.status_code, headers=headers)
    return response


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
            return openai_error(
                400, "The request body is not valid JSON.", type_="invalid_request_error"
            )
        try:
            req = ChatCompletionRequest.model_validate(raw)
            messages = convert_to_messages(req.messages)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"])
            return openai_error(
                400, f"{param}: {err['msg']}", type_="invalid_request_error", param=param
            )
        except (ValueError, NotImplementedError) as exc:
            return openai_error(
                400,
                f"messages: {exc}. Each message needs a role (system, user, assistant) and content.",
                type_="invalid_request_error",
                param="messages",
            )
        if req.model != model_id:
            return openai_error(
                404,
                f"The model {req.model!r} does not exist here; this server serves {model_id!r}.",
                type_="invalid_request_error",
                code="model_not_found",
                param="model",
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
                error = json.loads(bytes(_from_langdeploy(exc).body))
                yield f"data: {json.dumps(error)}\n\n"
                yield "data: [DONE]\n\n"
                return
            # An output guard that blocks mid-stream ends the stream quietly and leaves the
            # violation for the front end to report.
            violation = current_stream_violation()
            if violation is not None:
                error = json.loads(bytes(_from_langdeploy(violation).body))
                yield f"data: {json.dumps(error)}\n\n"
                yield "data: [DONE]\n\n"
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
