"""The service under uvicorn on the loopback interface: keep-alive after client errors, slow clients, a bounded load."""

from __future__ import annotations

import http.client
import json
import resource
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from serving_world import root, trained  # noqa: E402

from textinterest.apps.serve import Limits, create_app  # noqa: E402
from textinterest.models.interest import InterestRecommender  # noqa: E402

REVIEW = {"text": "great guitar strings, the tuner holds", "timestamp": 1_600_000_000, "rating": 5}


@pytest.fixture(scope="module")
def server():
    """(host, port) of a uvicorn server in a thread of this process, stopped after the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
        model = InterestRecommender.load(trained()[2])
    app = create_app(model, Limits(body_timeout_s=0.5))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_keep_alive=5)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port, model
    srv.should_exit = True
    thread.join(10)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, method: str = "POST") -> tuple[int, dict, str]:
    conn.request(method, path, body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null"), response.getheader("connection") or ""


def test_keep_alive_survives_client_errors(server):
    host, port, model = server
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.connect()
    sock = conn.sock
    bad = [
        ("/recommend", json.dumps({"history": [{**REVIEW, "timestamp": 1e20}]}).encode(), 422),
        ("/recommend", json.dumps({"user_id": "\udfff"}).encode(), 422),
        ("/recommend", json.dumps({"history": [{**REVIEW, "rating": 1e300}]}).encode(), 422),
        ("/recommend", b"{not json", 400),
        ("/recommend", json.dumps({"user_id": "nobody"}).encode(), 404),
        ("/nope", b"{}", 404),
        ("/health", b"{}", 405),
        ("/explain", json.dumps({"user_id": model.user_index.ids[0], "item_id": "zzz"}).encode(), 404),
    ]
    for path, body, status in bad:
        got, payload, connection = _post(conn, path, body)
        assert got == status and set(payload) == {"error"}, (path, got, payload)
        assert connection.lower() != "close" and conn.sock is sock, path  # the same connection goes on
    got, payload, _ = _post(conn, "/recommend", json.dumps({"user_id": model.user_index.ids[0], "k": 3}).encode())
    assert got == 200 and len(payload["items"]) == 3 and conn.sock is sock
    conn.close()


def test_a_slow_client_gets_408(server):
    host, port, _ = server
    with socket.create_connection((host, port), timeout=10) as s:
        head = "POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        s.sendall(head.encode() + b'{"user_id": ')
        start = time.monotonic()
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        waited = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408") and b'"error"' in reply, reply[:200]
    assert 0.4 < waited < 5


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def test_bounded_load_has_no_5xx_and_flat_memory(server):
    """8 clients, known and new users mixed with invalid requests, a few seconds; memory measured after a warm-up."""
    host, port, model = server
    users = list(model.user_index.ids)
    bodies = [
        json.dumps({"user_id": users[j % len(users)], "k": 10}).encode() if j % 3 else b"" for j in range(len(users))
    ]
    new_user = json.dumps({"history": [REVIEW, {**REVIEW, "text": "the drum kit broke", "rating": 1}]}).encode()
    invalid = json.dumps({"history": [{**REVIEW, "timestamp": "now"}]}).encode()
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int, offset: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for j in range(n):
            body = [bodies[(j + offset) % len(bodies)] or new_user, new_user, invalid][j % 3]
            status, _, _ = _post(conn, "/recommend", body)
            with lock:
                statuses.append(status)
        conn.close()

    def burst(n: int) -> None:
        threads = [threading.Thread(target=client, args=(n, t)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    burst(15)  # warm-up: allocator pools, the encoder's recent-text memory
    before = _rss_mb()
    burst(90)
    after = _rss_mb()
    n = 8 * (15 + 90)
    assert len(statuses) == n and max(statuses) < 500, sorted(set(statuses))
    assert statuses.count(200) >= n * 2 // 3 - 8 and statuses.count(422) >= n // 3 - 8
    assert after - before < 50, (before, after)
