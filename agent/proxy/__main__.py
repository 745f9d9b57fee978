"""Run the proxy on its own (tests, benchmarks): `python -m agent.proxy --http-port N ...`.

Routes and certificates come from the command line; each `--route HOST=ADDR[,ADDR...]`
becomes a route named after its host. SIGTERM/SIGINT stop it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from agent.errors import BerthError
from agent.proxy.access_log import BufferedStreamHandler
from agent.proxy.model import RouteOptions, Upstream
from agent.proxy.server import Proxy
from agent.proxy.settings import ProxySettings

LOG_FLUSH_INTERVAL = 1.0  # seconds between flushes of the buffered log


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent.proxy", description=__doc__)
    parser.add_argument("--listen", default=ProxySettings.listen)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--https-port", type=int, default=None)
    parser.add_argument("--route", action="append", default=[], metavar="HOST=IP:PORT[,IP:PORT]")
    parser.add_argument("--cert", action="append", default=[], metavar="HOST=FULLCHAIN,KEY")
    parser.add_argument("--max-connections", type=int, default=ProxySettings.max_connections)
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--hsts", action="store_true")
    parser.add_argument("--no-https-redirect", action="store_true")
    return parser


def _upstreams(text: str) -> list[Upstream]:
    upstreams = []
    for item in text.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"upstream {item!r} is not HOST:PORT")
        upstreams.append(Upstream(host, int(port)))
    return upstreams


async def _serve(args: argparse.Namespace, handler: logging.Handler) -> None:
    settings = ProxySettings(
        listen=args.listen,
        http_port=args.http_port,
        https_port=args.https_port,
        access_log=args.access_log,
        max_connections=args.max_connections,
    )
    proxy = Proxy(settings)
    options = RouteOptions(hsts=args.hsts, https_redirect=not args.no_https_redirect)
    for spec in args.route:
        host, _, targets = spec.partition("=")
        proxy.set_route(host, [host], _upstreams(targets), options)
    for spec in args.cert:
        host, _, files = spec.partition("=")
        chain, _, key = files.partition(",")
        proxy.certificates.put(host, Path(chain).read_bytes(), Path(key).read_bytes())
    await proxy.start()
    print(f"listening http={proxy.http_port} https={proxy.https_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), LOG_FLUSH_INTERVAL)
        except TimeoutError:
            handler.flush()
    await proxy.stop(settings.shutdown_timeout)
    handler.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Buffered: flushing every access line would cost a write syscall per request.
    # (sys.stderr itself is line-buffered even into a file: a stream of our own on fd 2.)
    stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False)  # noqa: SIM115
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        uvloop.run(_serve(args, handler))
    except (BerthError, OSError, argparse.ArgumentTypeError) as exc:
        handler.flush()
        print(f"berth proxy: {exc}", file=sys.stderr)
        return 1
    finally:
        handler.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
