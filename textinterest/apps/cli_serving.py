"""Sub-commands that train once and answer later: ``train``, ``recommend``, ``explain``, ``serve``.

::

    textinterest train NAME --output DIR [--task ranking|rating] [--model interest|mf|seq-lstm]
    textinterest recommend DIR --user ID [--k 10] [--json]
    textinterest recommend DIR --history FILE.jsonl [--k 10] [--json]
    textinterest explain DIR --user ID --item ID [--json]
    textinterest serve DIR [--host 127.0.0.1] [--port 8000]

A history file has one JSON review per line: ``{"text": ..., "timestamp": ..., "rating": 4, "item_id": ...}``
(``rating`` and ``item_id`` optional; ``timestamp`` in Unix seconds or an ISO 8601 date), checked by the
review schema the HTTP API uses (:mod:`textinterest.datasets.review_schema`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from textinterest.constants import SPLITS

__all__ = ["add_serving_commands", "read_history_file"]


def _print_json(payload: Any) -> None:
    from textinterest.utils import json_default

    print(json.dumps(payload, indent=2, default=json_default, ensure_ascii=False))


def read_history_file(path: str | Path) -> list[dict[str, Any]]:
    """Reviews from a JSON-lines file (blank lines skipped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not a JSON object (the line number is given).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {path} not found")
    reviews = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: each line must be a JSON object, got {type(record).__name__}")
        reviews.append(record)
    return reviews


def _raw_id(model: Any, index: Any, raw: str, name: str) -> Any:
    """A command-line id as the model stores it (ids saved as ints are looked up as ints), checked by the schema."""
    from textinterest.datasets.review_schema import ReviewSchema

    raw = ReviewSchema.for_model(model).identifier(raw, name)
    if raw not in index and raw.lstrip("-").isdigit() and int(raw) in index:
        return int(raw)
    return raw


def _history(model: Any, path: str | Path) -> list[dict[str, Any]]:
    """A history file's reviews, checked by the review schema the HTTP API uses (the file is named in errors)."""
    from textinterest.datasets.review_schema import ReviewError, ReviewSchema

    try:
        return ReviewSchema.for_model(model).history(read_history_file(path))
    except ReviewError as exc:
        raise ReviewError(f"{path}: {exc}") from None


def _load(args: argparse.Namespace) -> Any:
    from textinterest.models.registry import load_recommender

    return load_recommender(args.model_dir, encoder=args.encoder, device=args.device)


def _cmd_train(args: argparse.Namespace) -> int:
    from textinterest.protocol.pipeline import train_pipeline

    say = None if args.json else (lambda message: print(f"[train] {message}", file=sys.stderr, flush=True))
    _, meta = train_pipeline(
        args.name,
        output=args.output,
        model=args.model,
        task=args.task,
        split=args.split,
        seed=args.seed,
        encoder=args.encoder,
        max_length=args.max_length,
        data_home=args.data_home,
        max_users=args.max_users,
        epochs=args.epochs,
        device=args.device,
        progress=say,
    )
    if args.json:
        _print_json({"output": str(args.output), **meta})
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in meta["metrics"].items() if isinstance(v, float))
        print(f"saved {args.model} ({args.task}) to {args.output}; test: {metrics}")
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from textinterest.models.recommend import recommend, recommend_for_history

    model = _load(args)
    if args.history is not None:
        items = recommend_for_history(model, _history(model, args.history), args.k, exclude_seen=not args.include_seen)
        who: dict[str, Any] = {"history": str(args.history)}
    else:
        user = _raw_id(model, model.user_index, args.user, "--user")
        items = recommend(model, user, args.k, exclude_seen=not args.include_seen)
        who = {"user_id": user}
    if args.json:
        _print_json({**who, "k": args.k, "items": items})
    else:
        for row in items:
            print(f"{row['rank']:>3}  {row['item_id']}  {row['score']:.4f}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from textinterest.models.recommend import explain

    model = _load(args)
    item = _raw_id(model, model.item_index, args.item, "--item")
    if args.history is not None:
        out = explain(model, item_id=item, history=_history(model, args.history), top_n=args.top_n)
    else:
        out = explain(model, _raw_id(model, model.user_index, args.user, "--user"), item, top_n=args.top_n)
    if args.json:
        _print_json(out)
    else:
        print(
            f"user {out['user_id']} · item {out['item_id']} · score {out['score']:.4f} "
            f"(CF {out['cf_term']:.4f}, text {out['text_term']:.4f})"
        )
        print("composition: " + ", ".join(f"{k} {v:.2f}" for k, v in out["composition"].items()))
        for r in out["top_reviews"]:
            text = (r["text"] or "")[:100]
            print(f"  weight {r['weight']:.3f}  {r['component']}  item {r['item_id']}  rating {r['rating']}  {text!r}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        raise ValueError("serving needs the 'serve' extra: pip install 'textinterest[serve]'") from exc
    from textinterest.apps.serve import create_app

    app = create_app(_load(args))
    # idle keep-alive connections close after 5 s; a body that is not in within 10 s gets 408 (Limits)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=5)
    return 0


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="DIR", help="folder written by 'textinterest train --output'")
    parser.add_argument("--encoder", default=None, help="text encoder folder (default: the one recorded in DIR)")
    parser.add_argument("--device", default="cpu")


def add_serving_commands(commands: Any) -> None:
    """Add ``train``, ``recommend``, ``explain`` and ``serve`` to the ``textinterest`` sub-command parser."""
    train = commands.add_parser(
        "train", help="train one model on a data set and save it (model, encoder reference, histories)"
    )
    train.add_argument("name", help="data set name, e.g. synthetic, amazon:Musical_Instruments")
    train.add_argument("--output", required=True, help="artifact folder to write")
    train.add_argument("--task", choices=("ranking", "rating"), default="ranking")
    train.add_argument("--model", choices=("interest", "mf", "seq-lstm"), default="interest")
    train.add_argument("--split", choices=SPLITS, default="leave-last-out")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--encoder", default="default", help="'default' (packaged MiniLM) or a local model folder")
    train.add_argument("--max-length", type=int, default=128, help="token limit per review text")
    train.add_argument("--data-home", default=None)
    train.add_argument("--max-users", type=int, default=None, help="train on a seeded sample of users (quick runs)")
    train.add_argument("--epochs", type=int, default=None, help="cap on training epochs")
    train.add_argument("--device", default="cpu")
    train.add_argument("--json", action="store_true")
    train.set_defaults(handler=_cmd_train)

    rec = commands.add_parser("recommend", help="top-k items for a training user or for a new user's reviews")
    _add_model_arguments(rec)
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user id of the training data")
    who.add_argument("--history", help="JSON-lines file of a new user's reviews (text, timestamp, rating?, item_id?)")
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--include-seen", action="store_true", help="keep items the user already reviewed")
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler=_cmd_recommend)

    exp = commands.add_parser("explain", help="components, weights and the past reviews behind one score")
    _add_model_arguments(exp)
    who = exp.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--history")
    exp.add_argument("--item", required=True)
    exp.add_argument("--top-n", type=int, default=3)
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(handler=_cmd_explain)

    serve = commands.add_parser("serve", help="HTTP API (/recommend, /explain, /health) for a saved model")
    _add_model_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_cmd_serve)
