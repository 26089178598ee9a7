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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ringleader import constants as c
from ringleader import goodput, hang, metrics
from ringleader.controller import Cache
from ringleader.kube import KubeApi, RetryableError
from ringleader.progress import (
    ACTIVE_PHASES,
    TRAINING_PHASES,
    describe_resize,
    detect_resize,
    pick_reporter,
    plan_progress_patch,
    read_final_report,
    resize_seconds,
    worker_names,
)
from ringleader.status import format_time

log = logging.getLogger("ringleader.poller")
REQUEST_TIMEOUT_SECONDS = 1.0
# A launcher starts serving a moment after its pod runs: ask again soon, then less and less often.
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 2.0, 60.0
CONCURRENT_REQUESTS = 16


def _get_json(pod_ip: str, path: str) -> dict[str, Any] | None:
    url = f"http://{pod_ip}:{c.PROGRESS_PORT}{path}"
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        body = json.loads(response.read() or b"null")
    return body if isinstance(body, dict) else None


def fetch_progress(pod_ip: str) -> dict[str, Any] | None:
    """GET /progress from a worker's launcher; None when it has nothing to say yet."""
    return _get_json(pod_ip, "/progress")


def fetch_heartbeats(pod_ip: str) -> dict[str, Any] | None:
    """GET /heartbeats: every pod's own last step, from the job's shared volume."""
    return _get_json(pod_ip, "/heartbeats")


def now() -> float:
    """The poller's clock (monotonic seconds)."""
    return time.monotonic()


class ProgressPoller:
    """Every `interval` seconds, asks one worker of each active job for its progress."""

    def __init__(self, api: KubeApi, cache: Cache, interval: float) -> None:
        self.api, self.cache, self.interval = api, cache, interval
        self.unreachable_until: dict[str, float] = {}  # pod uid -> monotonic time
        self.failures: dict[str, int] = {}  # pod uid -> consecutive failed requests
        self.limit = asyncio.Semaphore(CONCURRENT_REQUESTS)
        self.watches: dict[tuple[str, str], hang.StepWatch] = {}  # job -> its step counter
        # job -> where its time went; in memory, so an operator restart starts it again
        self.clocks: dict[tuple[str, str], goodput.TrainingClock] = {}

    async def run(self) -> None:
        """Poll forever (cancelled when the operator stops)."""
        while True:
            started = time.monotonic()
            jobs = list(self.cache.jobs.items())
            active = [(key, body) for key, body in jobs if _active(body)]
            reports = await asyncio.gather(*(self._poll(key, body) for key, body in active))
            heard = {key: report for (key, _), report in zip(active, reports, strict=True)}
            for key, body in jobs:
                if (body.get("status") or {}).get("phase") in c.TERMINAL_PHASES:
                    await self._mirror_final_report(key, body)
                self._account(key, heard.get(key))
            self._forget_the_gone()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _poll(self, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        """Mirror one job's progress and look for a hang; return the report heard, if any."""
        status = body.get("status") or {}
        attempt = status.get("restartAttempt") or 0
        children = list(self.cache.children.get(key, {}).values())
        unreachable = {uid for uid, until in self.unreachable_until.items() if until > now()}
        pod = pick_reporter(children, attempt, unreachable)
        if pod is None:
            return None
        report = await self._ask(pod, fetch_progress)
        patch = plan_progress_patch(status, report) or {}
        watch = hang.watch_report(self.watches.get(key), attempt, report, now())
        if watch is None:
            self.watches.pop(key, None)
        else:
            self.watches[key] = watch
        resized = detect_resize(status, report)
        if resized and report:
            metrics.observe_resize(*resized, seconds=resize_seconds(status, report))
            await self._announce_resize(body, *resized)
        # Judged only on an answer: a worker that just exited after its last step (its pod not
        # yet Succeeded in the cache) says nothing, and its silence is not a stalled step.
        judged = report is not None and status.get("phase") in TRAINING_PHASES
        if judged and not status.get("hang"):
            report_of_hang = await self._detect_hang(key, body, pod, children)
            if report_of_hang:
                patch["hang"] = report_of_hang
        if patch:
            await self._write(key, patch)
        return report

    async def _announce_resize(self, body: dict[str, Any], old: int, new: int) -> None:
        """A Resized event, once per change the poller sees."""
        try:
            await asyncio.to_thread(
                self.api.post_event,
                body,
                "Normal",
                c.REASON_RESIZED,
                describe_resize(body, old, new),
            )
        except RetryableError as error:  # an event is not worth a retry loop
            log.warning("could not record a resize of %s: %s", body["metadata"]["name"], error)

    def _account(self, key: tuple[str, str], report: dict[str, Any] | None) -> None:
        """Advance the job's training clock: observe recoveries that ended, set its goodput."""
        # The newest status, read after the report was fetched: a failure it shows was decided
        # before the report arrived, so a report written after the failure follows it for sure.
        status = (self.cache.jobs.get(key) or {}).get("status") or {}
        wall_now = time.time()
        clock, recovered = goodput.advance(self.clocks.get(key), status, report, wall_now)
        metrics.observe_recoveries(recovered)
        if clock is None:
            self.clocks.pop(key, None)
            metrics.forget_goodput(key)
            return
        self.clocks[key] = clock
        end = goodput.accounting_end(status, wall_now)
        metrics.set_goodput(key, goodput.compute_goodput(clock, end))

    async def _ask(
        self, pod: Mapping[str, Any], fetch: Callable[[str], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """One request to a worker's launcher; None when it did not answer (then back off)."""
        uid = pod["metadata"].get("uid", pod["metadata"]["name"])
        if self.unreachable_until.get(uid, 0.0) > now():
            return None
        async with self.limit:
            try:
                answer = await asyncio.to_thread(fetch, pod["status"]["podIP"])
            except (OSError, ValueError) as error:
                log.debug("no answer from %s: %s", pod["metadata"]["name"], error)
                self._back_off(uid)
                return None
        self.unreachable_until.pop(uid, None)
        self.failures.pop(uid, None)
        return answer

    async def _detect_hang(
        self,
        key: tuple[str, str],
        body: dict[str, Any],
        reporter: Mapping[str, Any],
        children: list[dict[str, Any]],
    ) -> dict[str, Any] | None:
        """status.hang when the step has stalled past the job's threshold, else None."""
        watch = self.watches.get(key)
        if watch is None:
            return None
        attempt = (body.get("status") or {}).get("restartAttempt") or 0
        stalled = hang.stalled_seconds(watch, hang.read_policy(body), now(), attempt)
        if stalled is None:
            return None
        beats = await self._ask(reporter, fetch_heartbeats) or {}
        workers = worker_names(children, watch.attempt)
        return {
            "step": watch.step,
            "stalledSeconds": int(stalled),
            "stalledPods": hang.pick_stalled_pods(beats, workers),
            "detectedAt": format_time(datetime.now(UTC)),
        }

    async def _mirror_final_report(self, key: tuple[str, str], body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        children = list(self.cache.children.get(key, {}).values())
        report = read_final_report(children, status.get("restartAttempt") or 0)
        patch = plan_progress_patch(status, report)
        if patch:
            await self._write(key, patch)

    def _forget_the_gone(self) -> None:
        """Drop what was kept about jobs and pods that no longer exist."""
        self.watches = {k: w for k, w in self.watches.items() if k in self.cache.jobs}
        for key in [k for k in self.clocks if k not in self.cache.jobs]:
            self.clocks.pop(key)
            metrics.forget_goodput(key)
        live = {
            child["metadata"].get("uid")
            for children in list(self.cache.children.values())
            for child in list(children.values())
        }
        for uid in [u for u in self.unreachable_until if u not in live]:
            self.unreachable_until.pop(uid, None)
            self.failures.pop(uid, None)

    def _back_off(self, uid: str) -> None:
        failures = self.failures[uid] = self.failures.get(uid, 0) + 1
        delay = min(FIRST_RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS)
        self.unreachable_until[uid] = now() + delay

    async def _write(self, key: tuple[str, str], patch: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.api.patch_job_status, key[0], key[1], patch)
        except RetryableError as error:
            log.warning("progress of %s/%s not written: %s", *key, error)


def _active(body: dict[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in ACTIVE_PHASES
