"""The HTTP service under load: requests/s and latency for known and new users, and the slowest allowed request.

``textinterest serve DIR`` runs in a child process on the loopback interface; this process sends
requests from ``c`` client threads, each over one keep-alive connection, for ``--seconds`` per
(kind, concurrency):

* ``known``: ``{"user_id": <a training user>, "k": 10}``;
* ``new``: ``{"history": <5 reviews with texts never sent before>, "k": 10}`` (the encoder runs).

Then the slowest requests the limits allow (:class:`~textinterest.datasets.review_schema.RequestLimits`)
are sent one at a time while another thread asks ``/health`` every 50 ms: the time of each
request, the server's CPU seconds for it, and the slowest ``/health`` answer meanwhile. The
server's resident memory is read before and after every phase.

Make a model first, e.g. ``textinterest train synthetic --output /tmp/serve-model --max-users 60 --epochs 2``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textinterest.apps.cli_types import OneLineParser

_WORDS = (
    "guitar string drum bright warm tuner cable amp pedal loud soft great broke fine sound strap case "
    "sturdy cheap hum noise clear tone bass treble knob plug stand mic fuzz reverb delay"
).split()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options of ``textinterest benchmark serve_load``."""
    p = OneLineParser(prog="textinterest benchmark serve_load", description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", help="a folder written by 'textinterest train --output'")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each (kind, concurrency) phase")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    p.add_argument("--worst-repeats", type=int, default=3, help="repeats of each slowest-allowed request")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--output", default=None, help="also write the JSON record here")
    args = p.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error(f"--concurrency must be comma-separated integers, got {args.concurrency!r}")
    if not args.levels or min(args.levels) < 1 or args.seconds <= 0 or args.worst_repeats < 1:
        p.error("--concurrency levels, --seconds and --worst-repeats must be positive")
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)) + f" {rng.getrandbits(48):x}"


class _Server:
    """``textinterest serve`` in a child process."""

    def __init__(self, model_dir: str, port: int) -> None:
        self.port = port or _free_port()
        cmd = [sys.executable, "-m", "textinterest", "serve", model_dir, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while True:
            try:
                status, _ = self.request("GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {(self.proc.stderr.read() or '')[-2000:]}")
            time.sleep(0.5)

    def request(self, method: str, path: str, body: Any = None, conn: Any = None) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"content-type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if own:
            conn.close()
        return response.status, payload

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")  # pragma: no cover

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()


def _phase(server: _Server, make_body: Any, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        while time.monotonic() < stop_at:
            body = make_body(rng)
            start = time.perf_counter()
            status, _ = server.request("POST", "/recommend", body, conn)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    rss_before = server.rss_mb()
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(1000 * clients + j,)) for j in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "concurrency": clients,
        "requests": len(latencies),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)
        if latencies
        else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_rss_mb": [round(rss_before, 1), round(server.rss_mb(), 1)],
    }


def _worst_cases(limits: Any, max_history: int) -> dict[str, Any]:
    """Bodies of the slowest requests the limits accept (texts never sent before each time)."""
    window = min(max_history, limits.max_reviews, limits.max_texts)
    per_text = min(limits.max_text_chars, limits.max_chars // limits.max_texts)
    extra = min(limits.max_texts - window, limits.max_new_items)
    words = max(per_text // 7, 1)

    def history(rng: random.Random, n: int) -> list[dict[str, Any]]:
        return [{"text": _text(rng, words)[:per_text], "timestamp": 1_600_000_000 + j, "rating": 4} for j in range(n)]

    return {
        f"history of {window} long texts": lambda rng: {"history": history(rng, window), "k": limits.max_k},
        f"{limits.max_new_items} new items": lambda rng: {
            "history": history(rng, 1),
            "new_items": {f"new{j}": _text(rng, words)[:per_text] for j in range(limits.max_new_items)},
        },
        f"history of {window} + {extra} new items": lambda rng: {
            "history": history(rng, window),
            "new_items": {f"new{j}": _text(rng, words)[:per_text] for j in range(extra)},
        },
    }


def _probe_health(server: _Server, done: threading.Event, probes: list[float]) -> None:
    """Ask /health every 50 ms until ``done``; each answer's time goes to ``probes``."""
    while not done.is_set():
        start = time.perf_counter()
        server.request("GET", "/health")
        probes.append(time.perf_counter() - start)
        time.sleep(0.05)


def _slowest(server: _Server, name: str, make_body: Any, repeats: int, rng: random.Random) -> dict[str, Any]:
    times, cpu, health = [], [], []
    statuses = []
    for _ in range(repeats):
        body = make_body(rng)
        probes: list[float] = []
        done = threading.Event()
        prober = threading.Thread(target=_probe_health, args=(server, done, probes))
        cpu_before = server.cpu_seconds()
        start = time.perf_counter()
        prober.start()
        status, _ = server.request("POST", "/recommend", body)
        times.append(time.perf_counter() - start)
        cpu.append(server.cpu_seconds() - cpu_before)
        done.set()
        prober.join()
        statuses.append(status)
        health.append(max(probes) if probes else float("nan"))
    return {
        "request": name,
        "statuses": statuses,
        "wall_s": [round(t, 2) for t in times],
        "wall_s_median": round(statistics.median(times), 2),
        "server_cpu_s": [round(c, 2) for c in cpu],
        "health_max_ms": [round(1000 * h, 1) for h in health],
    }


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the phases, print one JSON record and optionally write it to ``--output``."""
    args = parse_args(argv)
    from textinterest.datasets.review_schema import RequestLimits
    from textinterest.models.artifact import read_manifest

    manifest = read_manifest(args.model_dir)
    users = json.loads((Path(args.model_dir) / "vocab.json").read_text(encoding="utf-8"))["users"]
    limits = RequestLimits()
    record: dict[str, Any] = {
        "benchmark": "serve_load",
        "command": "textinterest benchmark serve_load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": {"kind": manifest["kind"], "n_users": manifest["n_users"], "n_items": manifest["n_items"]},
        "encoder": (manifest.get("encoder") or {}).get("model"),
        "limits": vars(limits),
        "machine_start": _machine(),
    }
    server = _Server(args.model_dir, args.port)
    try:
        bodies = {
            "known": lambda rng: {"user_id": rng.choice(users), "k": 10},
            "new": lambda rng: {
                "history": [
                    {"text": _text(rng, 30), "timestamp": 1_600_000_000 + 86_400 * j, "rating": rng.randint(1, 5)}
                    for j in range(5)
                ],
                "k": 10,
            },
        }
        record["phases"] = []
        for kind, make_body in bodies.items():
            if kind == "new" and not manifest["uses_text"]:
                continue
            for clients in args.levels:
                row = {"users": kind, **_phase(server, make_body, clients, args.seconds)}
                print(json.dumps(row), file=sys.stderr, flush=True)
                record["phases"].append(row)
        if manifest["uses_text"]:
            max_history = int(manifest["config"]["max_history"])
            record["slowest_allowed"] = []
            rng = random.Random(7)  # one stream for every case: no text repeats (the server remembers recent texts)
            for name, make_body in _worst_cases(limits, max_history).items():
                row = _slowest(server, name, make_body, args.worst_repeats, rng)
                print(json.dumps(row), file=sys.stderr, flush=True)
                record["slowest_allowed"].append(row)
        record["server_rss_mb_end"] = round(server.rss_mb(), 1)
    finally:
        server.stop()
    record["machine_end"] = _machine()
    text = json.dumps(record, indent=1)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
