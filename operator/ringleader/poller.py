"""Poll the trainers' /progress endpoints and mirror what they say into job status.

Runs beside the reconcile workers. A pod that does not answer is asked again only after a
backoff (kwok's simulated pods never answer), so a large cluster costs a few requests a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from typing import Any

from ringleader import constants as c
from ringleader.controller import Cache
from ringleader.kube import KubeApi, RetryableError
from ringleader.progress import (
    ACTIVE_PHASES,
    pick_reporter,
    plan_progress_patch,
    read_final_report,
)

log = logging.getLogger("ringleader.poller")
REQUEST_TIMEOUT_SECONDS = 1.0
# A launcher starts serving a moment after its pod runs: ask again soon, then less and less often.
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 2.0, 60.0
CONCURRENT_REQUESTS = 16


def fetch_progress(pod_ip: str, port: int = c.PROGRESS_PORT) -> dict[str, Any] | None:
    """GET /progress from a worker's launcher; None when it has nothing to say yet."""
    url = f"http://{pod_ip}:{port}/progress"
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        body = json.loads(response.read() or b"null")
    return body if isinstance(body, dict) else None


class ProgressPoller:
    """Every `interval` seconds, asks one worker of each active job for its progress."""

    def __init__(self, api: KubeApi, cache: Cache, interval: float) -> None:
        self.api, self.cache, self.interval = api, cache, interval
        self.unreachable_until: dict[str, float] = {}  # pod uid -> monotonic time
        self.failures: dict[str, int] = {}  # pod uid -> consecutive failed requests
        self.limit = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def run(self) -> None:
        """Poll forever (cancelled when the operator stops)."""
        while True:
            started = time.monotonic()
            jobs = list(self.cache.jobs.items())
            await asyncio.gather(*(self._poll(key, body) for key, body in jobs if _active(body)))
            for key, body in jobs:
                if (body.get("status") or {}).get("phase") in c.TERMINAL_PHASES:
                    await self._mirror_final_report(key, body)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _poll(self, key: tuple[str, str], body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        children = list(self.cache.children.get(key, {}).values())
        pod = pick_reporter(children, status.get("restartAttempt") or 0)
        if pod is None:
            return
        uid = pod["metadata"].get("uid", pod["metadata"]["name"])
        if self.unreachable_until.get(uid, 0.0) > time.monotonic():
            return
        async with self.limit:
            try:
                report = await asyncio.to_thread(fetch_progress, pod["status"]["podIP"])
            except (OSError, ValueError) as error:
                log.debug("no progress from %s: %s", pod["metadata"]["name"], error)
                self._back_off(uid)
                return
        self.unreachable_until.pop(uid, None)
        self.failures.pop(uid, None)
        patch = plan_progress_patch(status, report)
        if patch:
            await self._write(key, patch)

    async def _mirror_final_report(self, key: tuple[str, str], body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        children = list(self.cache.children.get(key, {}).values())
        report = read_final_report(children, status.get("restartAttempt") or 0)
        patch = plan_progress_patch(status, report)
        if patch:
            await self._write(key, patch)

    def _back_off(self, uid: str) -> None:
        failures = self.failures[uid] = self.failures.get(uid, 0) + 1
        delay = min(FIRST_RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS)
        self.unreachable_until[uid] = time.monotonic() + delay

    async def _write(self, key: tuple[str, str], patch: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.api.patch_job_status, key[0], key[1], patch)
        except RetryableError as error:
            log.warning("progress of %s/%s not written: %s", *key, error)


def _active(body: dict[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in ACTIVE_PHASES
