"""Turn every failure into a JSON error a client can act on; never a stack trace.

Body: ``{"error": {"type": ..., "message": ...}}`` plus ``Retry-After`` for back-pressure.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from langdeploy.errors import LangdeployError, ServiceUnavailable, sentence

log = logging.getLogger("langdeploy.serve")


def error_body(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message, **extra}}


def error_response(exc: LangdeployError, request_id: str | None = None) -> JSONResponse:
    headers = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    body = error_body(exc.error_type, exc.public_message)
    extra = getattr(exc, "body_extra", None)
    if extra:
        body["error"].update(extra)
    if request_id:
        body["error"]["request_id"] = request_id
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _describe_validation(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        if isinstance(err, str):
            parts.append(
                err if err != "Invalid JSON body" else "The request body is not valid JSON."
            )
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return sentence("; ".join(parts)) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    async def on_langdeploy(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LangdeployError)
        return error_response(exc, getattr(request.state, "request_id", None))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        message = _describe_validation(errors)
        hint = ""
        if request.url.path.endswith(
            ("/invoke", "/batch", "/stream", "/stream_log", "/stream_events")
        ):
            base = request.url.path.rsplit("/", 1)[0]
            hint = f" See GET {base}/input_schema for the expected input."
        detail = [
            e if isinstance(e, str) else {k: e[k] for k in ("loc", "msg", "type") if k in e}
            for e in errors
        ]
        return JSONResponse(
            error_body("invalid_request", message + hint, detail=_jsonable(detail)),
            status_code=422,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            chains = getattr(request.app.state, "chain_paths", {})
            listing = ", ".join(chains.values()) or "(none)"
            message = (
                f"No route {request.url.path}. Chains served here: {listing}; GET / lists them."
            )
            return JSONResponse(error_body("not_found", message), status_code=404)
        error_type = "method_not_allowed" if exc.status_code == 405 else "http_error"
        return JSONResponse(
            error_body(error_type, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled error (request %s)", request_id)
        return JSONResponse(
            error_body(
                "internal_error",
                "The server failed to handle this request; the log has the details.",
                request_id=request_id,
            ),
            status_code=500,
        )

    app.add_exception_handler(LangdeployError, on_langdeploy)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
