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
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from harvester.errors import ConfigurationError, HarvesterError, NotFound, StorageError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error document."""
    return {"error": {"code": code, "message": message, "details": details}}


def _json(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = jsonable_encoder(error_body(code, message, details))
    return JSONResponse(body, status_code=status, headers=headers)


RETRY_AFTER_S = 5


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

    # An outage is not the client's fault nor a bug: 503, and when to try again.
    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        logger.warning("storage unavailable: %s", exc)
        return _unavailable("the object store is unavailable")

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _catalog(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("catalog unavailable: %s", type(exc).__name__)
        return _unavailable("the catalog is unavailable")

    @app.exception_handler(HarvesterError)
    async def _domain(_: Request, exc: HarvesterError) -> JSONResponse:
        logger.warning("request failed: %s", exc)
        return _json(500, "internal", "the request could not be completed")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return _json(500, "internal", "internal error")


def _unavailable(what: str) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return _json(503, "unavailable", f"{what}; try again shortly", headers=headers)
