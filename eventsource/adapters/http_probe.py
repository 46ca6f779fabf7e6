"""A minimal HTTP/1.0 server on the service's own event loop, for probes and metrics.

It runs on the loop on purpose: if the loop is blocked, /healthz stops answering, so a
liveness probe catches a hung process (a thread-based server would keep answering)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("natsbank.http")
# path -> handler returning (status, content type, body)
Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
MAX_HEAD = 16 * 1024
READ_TIMEOUT = 5.0


async def serve_http(host: str, port: int, routes: dict[str, Handler]) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, _, rest = head[:MAX_HEAD].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, kind, body = 405, "text/plain", b"GET only\n"
            elif path in routes:
                status, kind, body = await routes[path]()
            else:
                status, kind, body = 404, "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method == "GET":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except Exception:  # a probe must never take the service down
            log.exception("answering an HTTP request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
