"""Poll the trainers' /progress endpoints and mirror what they say into job status.

Runs beside the reconcile workers. A pod that does not answer is asked again only after a
backoff (kwok's simulated pods never answer), so a large cluster costs a few requests a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from ringleader import constants as c
from ringleader import goodput, hang, metrics, pods, preflight, reports, stragglers
from ringleader.apitime import truncate_to_second
from ringleader.cache import Cache, Key
from ringleader.kube import KubeApi, RetryableError
from ringleader.models import DistributedTrainingJob, InvalidJob, parse_job
from ringleader.progress import (
    apply_report,
    describe_resize,
    detect_resize,
    judge_reporting,
    mirror_seconds,
    only_moves_on,
    pick_reporter,
    plan_progress_patch,
    read_final_report,
    resize_seconds,
)
from ringleader.reports import ProgressReport
from ringleader.statusmodels import HangReport, JobStatus

log = logging.getLogger("ringleader.poller")
REQUEST_TIMEOUT_SECONDS = 1.0
# A launcher starts serving a moment after its pod runs: ask again soon, then less and less often.
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 2.0, 60.0
CONCURRENT_REQUESTS = 16
# Status writes a second that only move jobs' steps on, all jobs together: past it, each job's
# step is mirrored less often than it is polled (progress.mirror_seconds).
MIRROR_WRITES_PER_SECOND = 20.0


def get_json(pod_ip: str, path: str, port: int = c.PROGRESS_PORT) -> dict[str, Any] | None:
    """The endpoint's JSON; {} when the launcher answered that it has nothing yet."""
    url = f"http://{pod_ip}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if error.code == HTTPStatus.NOT_FOUND and _says_not_yet(error.read()):
            return {}  # a launcher whose workers have not reported yet: it is there
        raise
    return body if isinstance(body, dict) else None


def _says_not_yet(body: bytes) -> bool:
    """Whether a 404's body is the endpoint's own "no progress yet" (not any server's 404)."""
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get(reports.NOT_YET_KEY) == reports.NOT_YET


def fetch_progress(pod_ip: str) -> dict[str, Any] | None:
    """GET the progress document from a worker's launcher; None when it has nothing to say."""
    return get_json(pod_ip, reports.PROGRESS_PATH)


def fetch_heartbeats(pod_ip: str) -> dict[str, Any] | None:
    """GET every pod's own last step, from the job's shared volume."""
    return get_json(pod_ip, reports.HEARTBEATS_PATH)


def now() -> float:
    """The poller's clock (monotonic seconds)."""
    return time.monotonic()


class ProgressPoller:
    """Every `interval` seconds, asks one worker of each active job for its progress."""

    def __init__(
        self,
        api: KubeApi,
        cache: Cache,
        interval: float,
        paused: Callable[[], bool] = lambda: False,
        mirror_writes_per_second: float = MIRROR_WRITES_PER_SECOND,
    ) -> None:
        self.api, self.cache, self.interval = api, cache, interval
        self.mirror_budget = mirror_writes_per_second
        self.mirrored_at: dict[Key, float] = {}  # job -> when its progress was last written
        self.heard: dict[Key, ProgressReport] = {}  # job -> the newest report (status may lag)
        # job -> (the body, its models): a body the cache still holds is not parsed again
        self.parsed: dict[Key, tuple[dict[str, Any], DistributedTrainingJob | None]] = {}
        self.paused = paused  # kopf paused this replica for a peer (peering.py)
        self.unreachable_until: dict[str, float] = {}  # pod uid -> monotonic time
        self.failures: dict[str, int] = {}  # pod uid -> consecutive failed requests
        self.limit = asyncio.Semaphore(CONCURRENT_REQUESTS)
        self.watches: dict[Key, hang.StepWatch] = {}  # job -> its step counter
        # job -> where its time went; in memory, so an operator restart starts it again
        self.clocks: dict[Key, goodput.TrainingClock] = {}
        self.running_since: dict[Key, float] = {}  # job -> when a worker was first found running
        self.slow: dict[Key, stragglers.SlowWatch] = {}  # job -> its ranks seen slow in a row

    async def run(self) -> None:
        """Poll forever (cancelled when the operator stops)."""
        while True:
            started = time.monotonic()
            await self.tick()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def tick(self) -> None:
        """A round of polling, unless kopf paused this replica: the active peer polls then, and
        what the step counters showed before the pause is forgotten, so that the pause is never
        taken for a stalled step."""
        if self.paused():
            self.watches.clear()
        else:
            await self.poll_once()

    async def poll_once(self) -> None:
        """One round: every active job asked, finished ones' last words mirrored, clocks on."""
        jobs = [(key, job) for key, body in self.cache.jobs() if (job := self._parse(key, body))]
        active = [(key, job) for key, job in jobs if _status(job).phase in c.ACTIVE_PHASES]
        mirror = mirror_seconds(self.interval, len(active), self.mirror_budget)
        heard = await asyncio.gather(*(self._poll(key, job, mirror) for key, job in active))
        reports_by_job = {key: report for (key, _), report in zip(active, heard, strict=True)}
        for key, job in jobs:
            if _status(job).phase in c.TERMINAL_PHASES:
                await self._mirror_final_report(key, job)
            self._account(key, reports_by_job.get(key))
        self._forget_the_gone()

    async def _poll(
        self, key: Key, job: DistributedTrainingJob, mirror: float
    ) -> ProgressReport | None:
        """Mirror one job's progress (a step that only moves on: every `mirror` seconds) and
        look for a hang; return the report heard, if any."""
        status = _status(job)
        attempt = status.restart_attempt or 0
        children = self.cache.children(key)
        unreachable = {uid for uid, until in self.unreachable_until.items() if until > now()}
        pod = pick_reporter(children, attempt, unreachable)
        if pod is None:
            return None
        answer = await self._ask(pod, fetch_progress)
        report = reports.parse_progress(answer)
        patch = self._judge_reporting(key, status, answer is not None, report)
        patch.update(await self._judge_stragglers(key, job, report, children))
        patch.update(await self._judge_preflight(job, report))
        watch = hang.watch_report(self.watches.get(key), attempt, report, now())
        if watch is None:
            self.watches.pop(key, None)
        else:
            self.watches[key] = watch
        await self._observe_resize(key, job, report)
        # Judged only on an answer: a worker that just exited after its last step (its pod not
        # yet Succeeded in the cache) says nothing, and its silence is not a stalled step.
        judged = report is not None and status.phase in c.TRAINING_PHASES
        if judged and status.hang is None:
            found = await self._detect_hang(key, job, pod, children)
            if found is not None:
                patch["hang"] = found.model_dump(by_alias=True, mode="json", exclude_none=True)
        patch.update(self._plan_mirror(key, status, report, mirror, writing=bool(patch)))
        if report is not None:
            self.heard[key] = report
        if patch:
            await self._write(key, patch)
        return report

    def _parse(self, key: Key, body: dict[str, Any]) -> DistributedTrainingJob | None:
        """The job's models, parsed once per body: a round parses only the jobs that changed
        (at 1,000 jobs, parsing each every round was most of the poller's own CPU)."""
        held = self.parsed.get(key)
        if held is not None and held[0] is body:
            return held[1]
        job = _parse(body)
        self.parsed[key] = (body, job)
        return job

    def _plan_mirror(
        self,
        key: Key,
        status: JobStatus,
        report: ProgressReport | None,
        mirror: float,
        writing: bool,
    ) -> dict[str, Any]:
        """The progress patch, unless it only moves the step on, status is written for nothing
        else, and the job's turn (every `mirror` seconds) has not come."""
        patch = plan_progress_patch(status, report) or {}
        if not patch:
            return {}
        # Half a poll early: polls come `interval` apart, give or take a moment.
        due = now() - self.mirrored_at.get(key, -math.inf) >= mirror - self.interval / 2
        if not writing and not due and only_moves_on(status, report):
            return {}
        self.mirrored_at[key] = now()
        return patch

    async def _observe_resize(
        self, key: Key, job: DistributedTrainingJob, report: ProgressReport | None
    ) -> None:
        """A Resized event and the resize's time when the group's size changed since the
        report before (status may show an older one: its step is mirrored less often)."""
        known = apply_report(_status(job), self.heard.get(key))
        resized = detect_resize(known, report)
        if resized and report:
            metrics.observe_resize(*resized, seconds=resize_seconds(known, report))
            await self._announce_resize(job.model_copy(update={"status": known}), *resized)

    def _judge_reporting(
        self, key: Key, status: JobStatus, answered: bool, report: ProgressReport | None
    ) -> dict[str, Any]:
        """The status.reporting patch, when whether the workers report has changed."""
        since = self.running_since.setdefault(key, now())
        changed = judge_reporting(status.reporting, answered, report, now() - since, _utcnow())
        if changed is None:
            return {}
        return {"reporting": changed.model_dump(by_alias=True, mode="json", exclude_none=True)}

    async def _judge_stragglers(
        self,
        key: Key,
        job: DistributedTrainingJob,
        report: ProgressReport | None,
        children: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The status.stragglers patch, when the workers that hold the others back change
        (a Straggler event names each new one); the job's balance metrics."""
        status, policy = _status(job), stragglers.read_policy(job)
        current = status.stragglers or []
        named = {s.pod for s in current}
        attempt = status.restart_attempt or 0
        watch = stragglers.observe(self.slow.get(key), attempt, report, policy, named)
        if watch is None:
            self.slow.pop(key, None)
        else:
            self.slow[key] = watch
        metrics.set_worker_balance(key, stragglers.spread(report), len(current))
        if not policy.enabled:
            return {"stragglers": None} if status.stragglers is not None else {}
        if report is None or report.workers is None or not report.training:
            return {}
        slow = stragglers.persistent(watch, report, policy)
        planned = stragglers.plan_reports(current, slow, report, children, _utcnow())
        if planned == current and (planned or status.stragglers is None):
            return {}
        metrics.set_worker_balance(key, None, len(planned))
        for straggler in stragglers.newly_named(current, planned):
            message = stragglers.describe(straggler, policy.steps)
            log.warning("straggler named in %s/%s: %s", *key, message)
            await self._post_event(job, "Warning", c.REASON_STRAGGLER, message)
        dumped = [s.model_dump(by_alias=True, mode="json", exclude_none=True) for s in planned]
        return {"stragglers": dumped}

    async def _judge_preflight(
        self, job: DistributedTrainingJob, report: ProgressReport | None
    ) -> dict[str, Any]:
        """The status.preflight patch when a group reports a measurement of its network that
        status does not hold yet (spec.networking.preflight), with an event saying how it went."""
        check = job.spec.networking.preflight if job.spec.networking else None
        found = report.preflight if report is not None else None
        world = report.world_size if report is not None else None
        if check is None or found is None or world is None or world < 2:
            return {}
        if not preflight.is_new(_status(job).preflight, found):
            return {}
        result = preflight.judge(found, world, check.slow_link_percent)
        kind = "Normal" if result.passed else "Warning"
        await self._post_event(job, kind, preflight.reason(result), result.message)
        return {"preflight": result.model_dump(by_alias=True, mode="json", exclude_none=True)}

    async def _announce_resize(self, job: DistributedTrainingJob, old: int, new: int) -> None:
        """A Resized event, once per change the poller sees."""
        await self._post_event(job, "Normal", c.REASON_RESIZED, describe_resize(job, old, new))

    async def _post_event(
        self, job: DistributedTrainingJob, kind: str, reason: str, message: str
    ) -> None:
        body = {"metadata": job.metadata.model_dump(exclude_none=True)}
        try:
            await asyncio.to_thread(self.api.post_event, body, kind, reason, message)
        except RetryableError as error:  # an event is not worth a retry loop
            log.warning("could not record %s of %s: %s", reason, job.metadata.name, error)

    def _account(self, key: Key, report: ProgressReport | None) -> None:
        """Advance the job's training clock: observe recoveries that ended, set its goodput."""
        # The newest status, read after the report was fetched: a failure it shows was decided
        # before the report arrived, so a report written after the failure follows it for sure.
        job = self._parse(key, self.cache.job(key) or {})
        if job is None:
            return
        status = _status(job)
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
        uid = pods.uid_of(pod) or pods.name_of(pod)
        if self.unreachable_until.get(uid, 0.0) > now():
            return None
        async with self.limit:
            try:
                answer = await asyncio.to_thread(fetch, pod["status"]["podIP"])
            except (OSError, ValueError) as error:
                log.debug("no answer from %s: %s", pods.name_of(pod), error)
                self._back_off(uid)
                return None
        self.unreachable_until.pop(uid, None)
        self.failures.pop(uid, None)
        return answer

    async def _detect_hang(
        self,
        key: Key,
        job: DistributedTrainingJob,
        reporter: Mapping[str, Any],
        children: list[dict[str, Any]],
    ) -> HangReport | None:
        """status.hang when the step has stalled past the job's threshold, else None."""
        watch = self.watches.get(key)
        if watch is None:
            return None
        attempt = _status(job).restart_attempt or 0
        stalled = hang.stalled_seconds(watch, hang.read_policy(job), now(), attempt)
        if stalled is None:
            return None
        beats = await self._ask(reporter, fetch_heartbeats) or {}
        workers = pods.worker_names(children, watch.attempt)
        return HangReport(
            step=watch.step,
            stalled_seconds=int(stalled),
            stalled_pods=hang.pick_stalled_pods(beats, workers),
            detected_at=truncate_to_second(_utcnow()),
        )

    async def _mirror_final_report(self, key: Key, job: DistributedTrainingJob) -> None:
        status = _status(job)
        report = read_final_report(self.cache.children(key), status.restart_attempt or 0)
        patch = plan_progress_patch(status, report)
        if patch:
            await self._write(key, patch)

    def _forget_the_gone(self) -> None:
        """Drop what was kept about jobs and pods that no longer exist."""
        known = {key for key, _ in self.cache.jobs()}
        self.watches = {k: w for k, w in self.watches.items() if k in known}
        for key in [k for k in self.slow if k not in known]:
            self.slow.pop(key)
            metrics.forget_worker_balance(key)
        self.running_since = {k: t for k, t in self.running_since.items() if k in known}
        self.mirrored_at = {k: t for k, t in self.mirrored_at.items() if k in known}
        self.heard = {k: r for k, r in self.heard.items() if k in known}
        self.parsed = {k: p for k, p in self.parsed.items() if k in known}
        for key in [k for k in self.clocks if k not in known]:
            self.clocks.pop(key)
            metrics.forget_goodput(key)
        live = self.cache.live_uids()
        for uid in [u for u in self.unreachable_until if u not in live]:
            self.unreachable_until.pop(uid, None)
            self.failures.pop(uid, None)

    def _back_off(self, uid: str) -> None:
        failures = self.failures[uid] = self.failures.get(uid, 0) + 1
        delay = min(FIRST_RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS)
        self.unreachable_until[uid] = now() + delay

    async def _write(self, key: Key, patch: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.api.patch_job_status, key[0], key[1], patch)
        except RetryableError as error:
            log.warning("progress of %s/%s not written: %s", *key, error)


def _parse(body: dict[str, Any]) -> DistributedTrainingJob | None:
    """The job as the models; None for one they refuse (the reconcile loop marks it Failed)."""
    try:
        return parse_job(body) if body else None
    except InvalidJob:
        return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _status(job: DistributedTrainingJob) -> JobStatus:
    return job.status or JobStatus()
