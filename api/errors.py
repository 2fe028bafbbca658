"""One JSON error shape for every 4xx/5xx: `{"error": {"code", "message", "details"}}`.

Domain errors are mapped to HTTP here and nowhere else; no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from harvester.errors import ConfigurationError, HarvesterError, NotFound

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error document."""
    return {"error": {"code": code, "message": message, "details": details}}


def _json(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(error_body(code, message, details)), status_code=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    416: "range_not_satisfiable",
}


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors()
        ]
        fields = ", ".join(d["field"] for d in details[:5])
        return _json(422, "validation_error", f"invalid request: {fields}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _json(exc.status_code, code, str(exc.detail))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, "not_found", str(exc))

    @app.exception_handler(ConfigurationError)
    async def _config(_: Request, exc: ConfigurationError) -> JSONResponse:
        return _json(422, "invalid", str(exc))

    @app.exception_handler(HarvesterError)
    async def _domain(_: Request, exc: HarvesterError) -> JSONResponse:
        logger.warning("request failed: %s", exc)
        return _json(500, "internal", "the request could not be completed")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return _json(500, "internal", "internal error")
