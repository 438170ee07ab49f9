"""A small HTTP API over a saved recommender (FastAPI; ``pip install 'textinterest[serve]'``).

Endpoints::

    GET  /health      {"status": "ok", "model", "task", "n_users", "n_items", "format_version", "encoder"}
    POST /recommend   {"user_id": ..., "k": 10, "exclude_seen": true}
                      or {"history": [{"text", "timestamp", "rating"?, "item_id"?}, ...], "k": 10}
    POST /explain     {"user_id" or "history", "item_id", "item_text"?, "top_n": 3}

Requests are validated by pydantic models with size limits (:class:`Limits`: reviews per history,
characters per text, k, and the whole body in bytes, checked before the body is read). Errors come
back as ``{"error": "<what is wrong>"}``: 413 for a body over the limit, 422 for invalid fields,
404 for an unknown user or item, 500 with a generic message for anything unexpected (the details
go to the server log, never to the client). ``textinterest serve`` binds to 127.0.0.1 unless told
otherwise: put an authenticating proxy in front before exposing it.
"""

# No "from __future__ import annotations" here: FastAPI reads the request body types at run time.
import logging
import threading
from dataclasses import dataclass
from typing import Any

from textinterest.models.recommend import RequestError, UnknownUserError, explain, recommend, recommend_for_history

__all__ = ["Limits", "create_app"]

logger = logging.getLogger("textinterest.apps.serve")


@dataclass(frozen=True)
class Limits:
    """Request size limits of the API.

    Args:
        max_reviews: reviews per history.
        max_text_chars: characters per review or item text.
        max_k: largest k.
        max_body_bytes: largest request body (checked against Content-Length and while reading).
        max_new_items: items scored from their text in one request.
    """

    max_reviews: int = 200
    max_text_chars: int = 20_000
    max_k: int = 1000
    max_body_bytes: int = 2_000_000
    max_new_items: int = 100


def _schemas(limits: Limits) -> tuple[type, type, type]:
    from pydantic import BaseModel, ConfigDict, Field, model_validator

    Id = str | int
    NewItems = dict[str, str | list[str]] | None  # item id -> its text, or its review texts

    class Review(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str = Field(min_length=1, max_length=limits.max_text_chars)
        timestamp: int | float | str
        rating: float | None = None
        item_id: Id | None = None

    class RecommendRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user_id: Id | None = None
        history: list[Review] | None = Field(default=None, min_length=1, max_length=limits.max_reviews)
        k: int = Field(default=10, ge=1, le=limits.max_k)
        exclude_seen: bool = True
        new_items: NewItems = Field(default=None, max_length=limits.max_new_items)

        @model_validator(mode="after")
        def one_user(self) -> "RecommendRequest":
            if (self.user_id is None) == (self.history is None):
                raise ValueError("give exactly one of 'user_id' (a training user) and 'history' (a new user's reviews)")
            return self

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user_id: Id | None = None
        history: list[Review] | None = Field(default=None, min_length=1, max_length=limits.max_reviews)
        item_id: Id
        item_text: str | None = Field(default=None, min_length=1, max_length=limits.max_text_chars)
        top_n: int = Field(default=3, ge=0, le=50)

        @model_validator(mode="after")
        def one_user(self) -> "ExplainRequest":
            if (self.user_id is None) == (self.history is None):
                raise ValueError("give exactly one of 'user_id' (a training user) and 'history' (a new user's reviews)")
            return self

    return Review, RecommendRequest, ExplainRequest


class _BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (413) by Content-Length and while streaming."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        too_big = JSONResponse({"error": f"request body over the limit of {self.max_bytes:,} bytes"}, status_code=413)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await too_big(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await too_big(scope, receive, send)


class _TooLarge(Exception):
    pass


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _clean(payload: Any) -> Any:
    """numpy scalars and object ids to plain JSON values."""
    if isinstance(payload, dict):
        return {k: _clean(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_clean(v) for v in payload]
    return _plain(payload)


def create_app(model: Any, limits: Limits | None = None) -> Any:
    """The FastAPI application serving ``model`` (a recommender loaded with ``load_recommender``).

    Args:
        model: a fitted recommender; text models need ``text_encoder_`` for new users (set by loading).
        limits: request size limits.

    Returns:
        A ``fastapi.FastAPI`` app (run it with uvicorn, or test it with ``fastapi.testclient.TestClient``).
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
    except ImportError as exc:  # pragma: no cover - optional extra
        raise ImportError("serving needs the 'serve' extra: pip install 'textinterest[serve]'") from exc

    limits = limits or Limits()
    _, RecommendRequest, ExplainRequest = _schemas(limits)
    manifest = getattr(model, "artifact_", None) or {}
    lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one
    app = FastAPI(
        title="textinterest",
        version=str(manifest.get("versions", {}).get("textinterest", "")),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is not echoed back: it may be a multi-megabyte text
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "", "problem": "invalid request"}
        message = f"{first['field']}: {first['problem']}" if first["field"] else first["problem"]
        return JSONResponse({"error": message, "details": details[:20]}, status_code=422)

    @app.exception_handler(UnknownUserError)
    async def unknown_user(request: Request, exc: UnknownUserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal error; see the server log"}, status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        encoder = manifest.get("encoder") or {}
        return {
            "status": "ok",
            "model": manifest.get("kind", getattr(model, "name", "")),
            "task": model.task,
            "n_users": len(model.user_index),
            "n_items": len(model.item_index),
            "format_version": manifest.get("format_version"),
            "encoder": {"model": encoder.get("model"), "content_hash": encoder.get("content_hash")}
            if encoder
            else None,
        }

    @app.post("/recommend")
    def recommend_endpoint(body: RecommendRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        with lock:
            if body.history is not None:
                items = recommend_for_history(
                    model,
                    [r.model_dump() for r in body.history],
                    body.k,
                    exclude_seen=body.exclude_seen,
                    new_items=body.new_items,
                )
            else:
                items = recommend(model, body.user_id, body.k, exclude_seen=body.exclude_seen, new_items=body.new_items)
        return _clean({"user_id": body.user_id, "k": body.k, "items": items})

    @app.post("/explain")
    def explain_endpoint(body: ExplainRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        history = None if body.history is None else [r.model_dump() for r in body.history]
        with lock:
            try:
                out = explain(
                    model, body.user_id, body.item_id, history=history, item_text=body.item_text, top_n=body.top_n
                )
            except RequestError as exc:
                if "not in the catalogue" in str(exc):
                    return JSONResponse({"error": str(exc)}, status_code=404)
                raise
        return _clean(out)

    if limits.max_body_bytes:
        app.add_middleware(_BodyLimit, max_bytes=limits.max_body_bytes)
    return app
