"""The proxy itself: TLS in front (the API server's own serving certificate, so a kubeconfig
needs only another port), the cluster's admin identity behind, faults in between. Runs its own
event loop in a thread; counts what it injected."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import (
    ClientConnectorError,
    ClientError,
    ClientSession,
    ClientTimeout,
    TCPConnector,
    web,
)

from .faults import Fault, Faults, Kind, decide, is_watch, status_body

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)
TIMEOUT = ClientTimeout(total=60, sock_connect=5)
WATCH_TIMEOUT = ClientTimeout(total=None, sock_connect=5)
ERRORS = {
    Kind.THROTTLED: (429, "TooManyRequests", "injected: too many requests"),
    Kind.SERVER_ERROR: (500, "InternalError", "injected: internal error"),
    Kind.CONFLICT: (409, "Conflict", "injected: the object has been modified"),
}


@dataclass(frozen=True)
class Upstream:
    """The API server and how to reach it as the cluster's admin."""

    url: str  # https://127.0.0.1:PORT
    ca: str
    client_cert: str
    client_key: str
    serving_cert: str  # what the proxy presents (the API server's, valid for 127.0.0.1)
    serving_key: str


class FaultProxy:
    """Forwards every request to the API server, but for the faults it is told to inject."""

    def __init__(self, upstream: Upstream, port: int, seed: int = 0) -> None:
        self.upstream, self.port = upstream, port
        self.faults = Faults.none()
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Serve on a thread of its own; return once it listens."""
        threading.Thread(target=self._serve, name="fault-proxy", daemon=True).start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the fault proxy did not start")

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None and self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            future.result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _shutdown(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()
        # Handlers still relaying a watch would be destroyed pending when the loop stops.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        served.load_cert_chain(self.upstream.serving_cert, self.upstream.serving_key)
        upstream = ssl.create_default_context(cafile=self.upstream.ca)
        upstream.load_cert_chain(self.upstream.client_cert, self.upstream.client_key)
        connector = TCPConnector(ssl=upstream, limit=200)
        self._session = ClientSession(connector=connector, timeout=ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Watches held open must not hold stop() up for the default minute.
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=served).start()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        guarded = b'"resourceVersion"' in await request.read()  # read once, kept for _forward
        fault = decide(self.faults, request.method, dict(request.query), self._rng, guarded)
        if fault is not None:
            self.injected[fault.kind] += 1
        if fault is not None and fault.kind in ERRORS:
            code, reason, message = ERRORS[fault.kind]
            body = json.dumps(status_body(code, reason, message))
            return web.Response(status=code, text=body, content_type="application/json")
        if fault is not None and fault.kind is Kind.SLOW:
            await asyncio.sleep(fault.seconds)
        try:
            return await self._forward(request, fault)
        except ClientConnectorError:
            # The API server is down (it restarts): answer as a load balancer in front of it.
            body = json.dumps(status_body(503, "ServiceUnavailable", "the API server is down"))
            return web.Response(status=503, text=body, content_type="application/json")

    async def _forward(self, request: web.Request, fault: Fault | None) -> web.StreamResponse:
        assert self._session is not None, "made by _listen before any request"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream.url + request.rel_url.raw_path_qs,
            headers=headers,
            data=body or None,  # an empty body would gain a Content-Type the server refuses
            allow_redirects=False,
            # Watches last as long as the server keeps them; a plain request that the API
            # server lost (while it restarts) must not hold the client for good.
            timeout=WATCH_TIMEOUT if is_watch(request.method, dict(request.query)) else TIMEOUT,
        ) as answer:
            reply = web.StreamResponse(status=answer.status)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}:
                    reply.headers[key] = value
            try:
                await reply.prepare(request)
            except ConnectionResetError:
                return reply  # the client hung up while the API server answered
            cut = fault.seconds if fault is not None and fault.kind is Kind.WATCH_CUT else None
            await _relay(answer.content.readany, reply, request, cut)
            return reply


async def _relay(
    read: Callable[[], Awaitable[bytes]],
    reply: web.StreamResponse,
    request: web.Request,
    cut_after: float | None,
) -> None:
    """Copy the answer to the client as it comes; drop the connection after cut_after seconds
    (an idle watch too), as a load balancer or a restarting API server does."""
    cut_at = None if cut_after is None else time.monotonic() + cut_after
    while True:
        left = None if cut_at is None else max(cut_at - time.monotonic(), 0.0)
        try:
            chunk = await asyncio.wait_for(read(), left)
        except (TimeoutError, ClientError):
            # Cut on purpose, or the API server went away mid-answer (it restarts): the client
            # sees its connection close, as behind a real load balancer.
            if request.transport is not None:
                request.transport.close()  # mid-stream, no end of the chunked body
            return
        try:
            if not chunk:
                await reply.write_eof()
                return
            await reply.write(chunk)
        except ConnectionResetError:
            return  # the client hung up (a watch it gave up on): nothing left to relay to
