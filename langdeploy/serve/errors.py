"""One error vocabulary: every error body the server sends is built here, never a stack trace.

Two families, chosen by the route:

- LangServe routes (and everything else): ``{"error": {"type", "message", ...}}``;
- ``/v1`` routes: OpenAI's error object ``{"error": {"message", "type", "param", "code"}}``, so
  the official clients raise their matching exception classes.

Back-pressure errors carry ``Retry-After`` in both. A stream's final error event carries the
same body (plus LangServe's ``status_code`` and ``message``), built by :func:`error_payload`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from langdeploy.errors import LangdeployError, ServiceUnavailable

log = logging.getLogger("langdeploy.serve")

Family = Literal["langserve", "openai"]
MODEL_ROUTE_SUFFIXES = ("/invoke", "/batch", "/stream", "/stream_log", "/stream_events")

# OpenAI's error types, by status: what its clients map to exception classes.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def family_of(path: str) -> Family:
    return "openai" if path == "/v1" or path.startswith("/v1/") else "langserve"


def error_payload(
    family: Family,
    status: int,
    error_type: str,
    message: str,
    *,
    param: str | None = None,
    extra: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The body of one error, in the route family's shape."""
    if family == "openai":
        body: dict[str, Any] = {
            "message": message,
            "type": _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "api_error"),
            "param": param,
            "code": error_type,
        }
    else:
        body = {"type": error_type, "message": message}
        if param is not None:
            body["param"] = param
    body.update(extra or {})
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def error_response(
    family: Family,
    status: int,
    error_type: str,
    message: str,
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> JSONResponse:
    out = dict(headers or {})
    if retry_after is not None:
        out["Retry-After"] = str(max(1, round(retry_after)))
    return JSONResponse(
        error_payload(family, status, error_type, message, **kwargs),
        status_code=status,
        headers=out,
    )


def exc_payload(
    exc: LangdeployError, family: Family, request_id: str | None = None
) -> dict[str, Any]:
    extra = getattr(exc, "body_extra", None)
    return error_payload(
        family,
        exc.status_code,
        exc.error_type,
        exc.public_message,
        extra=extra if isinstance(extra, dict) else None,
        request_id=request_id,
    )


def exc_response(
    exc: LangdeployError, family: Family, request_id: str | None = None
) -> JSONResponse:
    retry = exc.retry_after if isinstance(exc, ServiceUnavailable) else None
    headers = {"Retry-After": str(max(1, round(retry)))} if retry is not None else None
    return JSONResponse(
        exc_payload(exc, family, request_id), status_code=exc.status_code, headers=headers
    )


def internal_error_payload(family: Family, request_id: str | None) -> dict[str, Any]:
    return error_payload(
        family,
        500,
        "internal_error",
        "The server failed to handle this request; the log has the details.",
        request_id=request_id,
    )


def describe_validation(errors: list[Any]) -> tuple[str, str | None]:
    """One readable sentence per problem, and the first field's dotted path."""
    parts = []
    first: str | None = None
    for err in errors:
        if isinstance(err, str):
            parts.append(
                err if err != "Invalid JSON body" else "The request body is not valid JSON."
            )
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        first = first or where
        parts.append(f"{where}: {str(err.get('msg', 'invalid')).rstrip('.')}.")
    return " ".join(parts) or "The request is invalid.", first


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install_error_handlers(app: FastAPI) -> None:
    async def on_langdeploy(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LangdeployError)
        return exc_response(exc, family_of(request.url.path), _request_id(request))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        message, param = describe_validation(errors)
        path = request.url.path
        if path.endswith(MODEL_ROUTE_SUFFIXES) and family_of(path) == "langserve":
            base = path.rsplit("/", 1)[0]
            message += f" See GET {base}/input_schema for the expected input."
        detail = [
            e if isinstance(e, str) else {k: e[k] for k in ("loc", "msg", "type") if k in e}
            for e in errors
        ]
        return error_response(
            family_of(path),
            422,
            "invalid_request",
            message,
            param=param,
            extra={"detail": _jsonable(detail)},
            request_id=_request_id(request),
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        family = family_of(request.url.path)
        if exc.status_code == 404:
            chains = getattr(request.app.state, "chain_paths", {})
            listing = ", ".join(chains.values()) or "(none)"
            message = (
                f"No route {request.url.path}. Chains served here: {listing}; GET / lists them."
            )
            return error_response(family, 404, "not_found", message)
        error_type = "method_not_allowed" if exc.status_code == 405 else "http_error"
        return error_response(
            family,
            exc.status_code,
            error_type,
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = _request_id(request)
        log.exception("unhandled error (request %s)", request_id)
        return JSONResponse(
            internal_error_payload(family_of(request.url.path), request_id), status_code=500
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
