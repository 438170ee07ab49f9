"""A small HTTP API over a saved recommender (FastAPI; ``pip install 'textinterest[serve]'``).

Endpoints::

    GET  /health      {"status": "ok", "model", "task", "n_users", "n_items", "format_version", "encoder"}
    POST /recommend   {"user_id": ..., "k": 10, "exclude_seen": true, "new_items"?: {id: text or [texts]}}
                      or {"history": [{"text", "timestamp", "rating"?, "item_id"?}, ...], "k": 10, ...}
    POST /explain     {"user_id" or "history", "item_id", "item_text"?, "top_n": 3}

Every review, id and number is checked by the one review schema that ``recommend --history`` and
``explain`` use too (:mod:`textinterest.datasets.review_schema`): timestamps in Unix seconds or ISO
dates within 1990-2100, ratings within the model's range, strict integers, UTF-8 ids, no new item
under a catalogue id. Each request's work is bounded (:class:`Limits`: reviews per history, texts
and characters the encoder reads, and the body in bytes) so that the slowest accepted request
takes about a second on two CPU cores; scoring runs in one worker thread, one request at a time,
so ``/health`` answers while a request is scored.

Every error is ``{"error": "<what is wrong>"}``: 400 for a body that is not JSON, 404 for an unknown
user, item or path, 405 for a wrong method, 408 for a body that does not arrive within
``body_timeout_s``, 413 for a request over a size limit (the message names the limit), 422 for an
invalid field, and 500 with a generic message only for a bug (details go to the server log).
``textinterest serve`` binds to 127.0.0.1 unless told otherwise: put an authenticating proxy in
front before exposing it.
"""

# No "from __future__ import annotations" here: FastAPI reads the endpoint signatures at run time.
import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from textinterest.datasets.review_schema import OverLimitError, RequestLimits, ReviewError, ReviewSchema
from textinterest.models.recommend import RequestError, UnknownUserError, explain, recommend, recommend_for_history

__all__ = ["Limits", "create_app"]

logger = logging.getLogger("textinterest.apps.serve")

_RECOMMEND_FIELDS = ("user_id", "history", "k", "exclude_seen", "new_items")
_EXPLAIN_FIELDS = ("user_id", "history", "item_id", "item_text", "top_n")


@dataclass(frozen=True)
class Limits:
    """Limits of the API.

    Args:
        request: per-request limits of the review schema (reviews, texts, characters, k, top_n).
        max_body_bytes: largest request body (checked against Content-Length and while reading).
        body_timeout_s: seconds a client has to send the whole body (slow clients get 408).
    """

    request: RequestLimits = field(default_factory=RequestLimits)
    max_body_bytes: int = 2_000_000
    body_timeout_s: float = 10.0


class _ClientError(Exception):
    """An error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Guard:
    """ASGI middleware: bodies over ``max_bytes`` get 413 (by Content-Length and while streaming, chunked
    included), bodies not complete within ``timeout_s`` get 408."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, 400, "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await _send_error(send, 413, self._too_big())
                    return
        seen, complete, deadline = 0, False, time.monotonic() + self.timeout_s

        async def guarded_receive() -> dict:
            nonlocal seen, complete
            if complete:  # the body is in: later reads wait for a disconnect, without a deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise _ClientError(408, f"the request body did not arrive within {self.timeout_s:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _ClientError(413, self._too_big())
                complete = not message.get("more_body", False)
            return message

        started = False

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except _ClientError as exc:
            if started:
                raise
            await _send_error(send, exc.status, str(exc))

    def _too_big(self) -> str:
        return f"request body over the limit of {self.max_bytes:,} bytes (max_body_bytes)"


async def _send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (408, 413):
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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


def _refuse_nan(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(raw: bytes) -> Any:
    """The request body as JSON (NaN and Infinity refused), or a 400."""
    try:
        return json.loads(raw, parse_constant=_refuse_nan)
    except RecursionError:
        raise _ClientError(400, "the request body's JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer with too many digits
        raise _ClientError(400, f"the request body is not valid JSON: {str(exc)[:200]}") from None


def _request_object(body: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ReviewError(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = [key for key in body if key not in allowed]
    if unknown:
        raise ReviewError(f"unknown field {unknown[0][:40]!r}; the fields are {', '.join(allowed)}")
    if (body.get("user_id") is None) == (body.get("history") is None):
        raise ReviewError("give exactly one of 'user_id' (a training user) and 'history' (a new user's reviews)")
    return body


class _Service:
    """Validation and bounded scoring of the API's requests for one model."""

    def __init__(self, model: Any, limits: Limits) -> None:
        self.model = model
        self.schema = ReviewSchema.for_model(model, limits.request)
        config = getattr(model, "config", None)
        # texts the model embeds from a history: its last max_history reviews (text models only)
        self.window = int(config.max_history) if getattr(config, "use_text", False) else 0
        self.lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one
        # one scoring thread: requests queue here instead of holding server threads, and torch's
        # allocations stay in one thread's malloc arena (a pool of threads each keeps its own: memory grows)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textinterest-scoring")

    def in_catalogue(self, item: Any) -> bool:
        return int(self.model.item_index.index_of([item])[0]) >= 0

    def _user(self, body: Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]] | None]:
        if body.get("history") is not None:
            return None, self.schema.history(body["history"])
        return self.schema.identifier(body["user_id"], "user_id"), None

    def _kept_texts(self, history: list[dict[str, Any]] | None) -> list[str]:
        if history is None or not self.window:
            return []
        ordered = sorted(range(len(history)), key=lambda j: history[j]["timestamp"])  # stable, as the model sorts
        return [history[j]["text"] for j in ordered[-self.window :]]

    def recommend_job(self, body: Any) -> Callable[[], dict[str, Any]]:
        body = _request_object(body, _RECOMMEND_FIELDS)
        user, history = self._user(body)
        k = self.schema.k(body.get("k", 10))
        exclude_seen = body.get("exclude_seen", True)
        if not isinstance(exclude_seen, bool):
            raise ReviewError(f"exclude_seen must be true or false, got {exclude_seen!r:.40}")
        new_items = None
        if body.get("new_items") is not None:
            new_items = self.schema.new_items(body["new_items"], self.in_catalogue)
        self.schema.check_work(self._kept_texts(history) + [t for texts in (new_items or {}).values() for t in texts])

        def job() -> dict[str, Any]:
            if history is not None:
                items = recommend_for_history(self.model, history, k, exclude_seen=exclude_seen, new_items=new_items)
            else:
                items = recommend(self.model, user, k, exclude_seen=exclude_seen, new_items=new_items)
            return {"user_id": user, "k": k, "items": items}

        return job

    def explain_job(self, body: Any) -> Callable[[], dict[str, Any]]:
        body = _request_object(body, _EXPLAIN_FIELDS)
        user, history = self._user(body)
        if body.get("item_id") is None:
            raise ReviewError("item_id is required")
        item = self.schema.identifier(body["item_id"], "item_id")
        item_text = body.get("item_text")
        top_n = self.schema.integer(body.get("top_n", 3), "top_n", 0, self.schema.limits.max_top_n)
        known = self.in_catalogue(item)
        if item_text is not None:
            item_text = self.schema.text(item_text, "item_text", required=True)
            if known:
                raise ReviewError(f"item {str(item)[:40]!r} is in the catalogue; leave out item_text to explain it")
        elif not known:
            raise _ClientError(
                404, f"item {str(item)[:40]!r} is not in the catalogue of this model; pass its text (item_text)"
            )
        self.schema.check_work(self._kept_texts(history) + ([item_text] if item_text is not None else []))

        def job() -> dict[str, Any]:
            return explain(self.model, user, item, history=history, item_text=item_text, top_n=top_n)

        return job

    def run_locked(self, job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            return _clean(job())


def create_app(model: Any, limits: Limits | None = None) -> Any:
    """The FastAPI application serving ``model`` (a recommender loaded with ``load_recommender``).

    Args:
        model: a fitted recommender; text models need ``text_encoder_`` for new users (set by loading).
        limits: request limits.

    Returns:
        A ``fastapi.FastAPI`` app (run it with uvicorn, or test it with ``fastapi.testclient.TestClient``).
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException
        from starlette.requests import ClientDisconnect
    except ImportError as exc:  # pragma: no cover - optional extra
        raise ImportError("serving needs the 'serve' extra: pip install 'textinterest[serve]'") from exc

    limits = limits or Limits()
    service = _Service(model, limits)
    manifest = getattr(model, "artifact_", None) or {}
    app = FastAPI(
        title="textinterest",
        version=str(manifest.get("versions", {}).get("textinterest", "")),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "invalid request"
        if exc.status_code == 404:
            message = f"no endpoint {request.url.path[:100]!r}; the endpoints are /health, /recommend, /explain"
        return error(exc.status_code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]  # the offending input is not echoed back: it may be megabytes
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid request"))

    @app.exception_handler(OverLimitError)
    async def over_limit(request: Request, exc: OverLimitError) -> JSONResponse:
        return error(413, str(exc))

    @app.exception_handler(ReviewError)
    async def bad_review(request: Request, exc: ReviewError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(UnknownUserError)
    async def unknown_user(request: Request, exc: UnknownUserError) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, exc: RequestError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return error(500, "internal error; see the server log")

    @app.get("/health")
    async def health() -> dict[str, Any]:
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

    async def answer(request: Request, make_job: Callable[[Any], Callable[[], dict[str, Any]]]) -> dict[str, Any]:
        try:
            raw = await request.body()
        except ClientDisconnect:  # nobody is left to answer; not an error of the service
            raise _ClientError(400, "the client disconnected before sending the whole body") from None
        job = make_job(_parse_json(raw))  # checked here, cheaply, before queuing for the model
        return await asyncio.get_running_loop().run_in_executor(service.executor, service.run_locked, job)

    @app.post("/recommend")
    async def recommend_endpoint(request: Request) -> dict[str, Any]:
        return await answer(request, service.recommend_job)

    @app.post("/explain")
    async def explain_endpoint(request: Request) -> dict[str, Any]:
        return await answer(request, service.explain_job)

    app.add_middleware(_Guard, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)
    return app
