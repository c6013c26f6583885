"""Serve a model folder over HTTP: place customers from their events in milliseconds.

python -m pipelines.serve --model reports/RUN/model [--host 127.0.0.1] [--port 8000]

Routes: POST /v1/assign, GET /v1/segments, /healthz, /readyz, /metrics, POST /admin/reload.
SIGHUP reloads the model folder (a folder that fails validation leaves the old model serving).
Set the environment variable named by --token-env (default SEGMENTER_SERVE_TOKEN) to require
"Authorization: Bearer TOKEN" on every route but /healthz and /readyz.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines._cli import run_cli
from segmenter.errors import SegmenterError

if TYPE_CHECKING:
    from segmenter.service import ServiceOptions

logger = logging.getLogger("pipelines.serve")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model/ folder of a discovery run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--token-env",
        default="SEGMENTER_SERVE_TOKEN",
        help="environment variable holding the bearer token (unset: no token)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=2.0,
        help="longest a request waits for others to share a model call (default 2)",
    )
    p.add_argument("--max-batch", type=int, default=256, help="most customers in one model call")
    p.add_argument(
        "--max-queue",
        type=int,
        default=512,
        help="most customers waiting; beyond, 503 with Retry-After (default 512)",
    )
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=1.0,
        help="seconds a request may wait in the queue before a 503 (default 1)",
    )
    p.add_argument("--max-body-mb", type=float, default=2.0, help="largest request body (MB)")
    p.add_argument("--max-customers", type=int, default=1000, help="most customers per request")
    p.add_argument(
        "--reasons",
        action="store_true",
        help="add each customer's top reasons (segmenter.explain; k-means models only)",
    )
    p.add_argument("--quiet", action="store_true", help="only warnings (no request log)")
    return p


def options_from_args(args: argparse.Namespace) -> ServiceOptions:
    from segmenter.service import ServiceOptions
    from segmenter.service.reasons import explain_placed

    checks = {
        "--port": (args.port, 0 <= args.port <= 65535, "0..65535"),
        "--max-wait-ms": (args.max_wait_ms, 0 <= args.max_wait_ms <= 100, "0..100"),
        "--max-batch": (args.max_batch, args.max_batch >= 1, ">= 1"),
        "--max-queue": (args.max_queue, args.max_queue >= args.max_batch, ">= --max-batch"),
        "--queue-timeout": (args.queue_timeout, args.queue_timeout > 0, "> 0"),
        "--max-body-mb": (args.max_body_mb, args.max_body_mb > 0, "> 0"),
        "--max-customers": (args.max_customers, args.max_customers >= 1, ">= 1"),
    }
    for option, (value, ok, allowed) in checks.items():
        if not ok:
            raise SegmenterError(f"{option}: {value} is not allowed; expected {allowed}")
    token = os.environ.get(args.token_env) or None
    return ServiceOptions(
        token=token,
        max_body_bytes=int(args.max_body_mb * 1_000_000),
        max_customers=args.max_customers,
        max_wait_ms=args.max_wait_ms,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        queue_timeout_s=args.queue_timeout,
        reload_on_sighup=True,
        reasons=explain_placed if args.reasons else None,
    )


def main(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from segmenter.service import ModelHolder, create_app
    except ImportError as exc:
        raise SegmenterError(
            f"the service needs the 'serve' extra ({exc.name} is missing): "
            f"pip install -c constraints.txt -e '.[serve]'"
        ) from None

    folder = Path(args.model)
    if not folder.is_dir():
        raise SegmenterError(f"--model: '{folder}' is not a folder; expected a run's model/")
    options = options_from_args(args)
    logging.getLogger("segmenter.embed").setLevel(logging.WARNING)  # a line per call otherwise
    holder = ModelHolder(folder)
    holder.load()  # fail at start-up with a one-line error rather than serve nothing
    app = create_app(holder, options)
    logger.info("serving %s on http://%s:%d", folder, args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning" if args.quiet else "info",
        access_log=False,  # the app logs each request without customer data
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
