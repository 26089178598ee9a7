"""A job's status subresource as the API server keeps it, for the fakes of KubeApi that the
controller's unit tests use."""

from __future__ import annotations

import copy
from typing import Any

from ringleader.kube import Conflict

Obj = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class StatusStore:
    """Jobs held as the API server holds them: a status patch naming a resourceVersion other
    than the job's is refused (409: Conflict); an accepted one moves the version on and
    answers with the job as written. A job it does not hold answers None (404)."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], Obj] = {}
        self.patches: list[Obj] = []
        self.conflicts = 0

    def hold(self, job: Obj) -> Obj:
        """Hold (a copy of) this job, at its resourceVersion (1 when it has none); return it."""
        held = copy.deepcopy(job)
        held["metadata"].setdefault("resourceVersion", "1")
        meta = held["metadata"]
        self.jobs[(meta["namespace"], meta["name"])] = held
        return copy.deepcopy(held)

    def patch_job_status(
        self, namespace: str, name: str, patch: Obj, resource_version: str | None = None
    ) -> Obj | None:
        held = self.jobs.get((namespace, name))
        if held is None:
            return None
        version = held["metadata"]["resourceVersion"]
        if resource_version is not None and resource_version != version:
            self.conflicts += 1
            raise Conflict("patch DistributedTrainingJob: 409 Conflict")
        self.patches.append(patch)
        held["status"] = merge_patch(held.get("status") or {}, patch)
        held["metadata"]["resourceVersion"] = str(int(version) + 1)
        return copy.deepcopy(held)
