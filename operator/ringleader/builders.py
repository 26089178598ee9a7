"""Pure builders: a job → the Kubernetes objects it should own. No client, no kopf.

Every function takes the job as the model (parsed once per reconcile: models.parse_job) and
returns plain dicts ready for the API, with the names of naming.py and a controller
ownerReference. The names are deterministic but for a worker pod's random token (a name per
incarnation), the one thing here not fixed by the job.
"""

from __future__ import annotations

import copy
from typing import Any

from ringleader import constants as c
from ringleader import gang, naming, rendezvous, workerenv
from ringleader.constants import Framework
from ringleader.models import DistributedTrainingJob

Obj = dict[str, Any]

RENDEZVOUS_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}
DEFAULT_ACCESS_MODES = ["ReadWriteMany"]  # workers on different nodes share the checkpoints


def build_owner_reference(job: DistributedTrainingJob) -> Obj:
    """The controller ownerReference every child carries (garbage collection, kopf's owner)."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(job: DistributedTrainingJob, name: str, labels: dict[str, str]) -> Obj:
    return {
        "name": name,
        "namespace": job.metadata.namespace or "default",
        "labels": labels,
        "ownerReferences": [build_owner_reference(job)],
    }


def _headless_service(
    job: DistributedTrainingJob, name: str, role: str, selector: dict[str, str], ports: list[Obj]
) -> Obj:
    # Headless: names resolve straight to pod IPs, with or without kube-proxy. Not-ready pods
    # are published too: workers need each other's names, and the store's, while they start
    # (agents retry a refused connection; an unresolvable name would fail them instead).
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, name, naming.job_labels(job.metadata.name, role)),
        "spec": {
            "clusterIP": "None",
            "selector": selector,
            "publishNotReadyAddresses": True,
            "ports": [{**port, "protocol": "TCP"} for port in ports],
        },
    }


# The port the rendezvous pod serves (the API server would default targetPort to it too).
RENDEZVOUS_SERVICE_PORT: Obj = {
    "name": c.RENDEZVOUS_PORT_NAME,
    "port": c.RENDEZVOUS_PORT,
    "targetPort": c.RENDEZVOUS_PORT,
}


def build_workers_service(job: DistributedTrainingJob) -> Obj:
    """Headless Service that makes <job>-worker-<i>.<job>-workers.<ns>.svc resolve, and
    <job>-rdzv.<job>-workers.<ns>.svc: it selects every pod of the job."""
    name = job.metadata.name
    ports = [{"name": "progress", "port": c.PROGRESS_PORT}]
    if job.spec.framework == Framework.PYTORCH:
        ports.append(RENDEZVOUS_SERVICE_PORT)
    selector = naming.job_pods_selector(name)
    return _headless_service(job, naming.workers_service_name(name), c.ROLE_WORKER, selector, ports)


def build_rendezvous_service(job: DistributedTrainingJob) -> Obj:
    """Headless Service in front of the rendezvous pod, in a job an older operator started
    (rendezvous.has_own_service): its workers were told this name."""
    name = job.metadata.name
    selector = {c.LABEL_JOB_NAME: name, c.LABEL_ROLE: c.ROLE_RENDEZVOUS}
    ports = [RENDEZVOUS_SERVICE_PORT]
    return _headless_service(job, naming.rendezvous_name(name), c.ROLE_RENDEZVOUS, selector, ports)


def build_rendezvous_pod(job: DistributedTrainingJob) -> Obj:
    """The rendezvous: a TCPStore server in the workers' image (it needs only python3 and
    torch there, nothing of Ringleader), one per job."""
    name = job.metadata.name
    pod_spec = job.spec.template.get("spec", {})
    trainer = pod_spec["containers"][0]
    container: Obj = {
        "name": "rendezvous",
        "image": trainer["image"],
        "command": rendezvous.build_command(c.RENDEZVOUS_PORT),
        "ports": [{"name": c.RENDEZVOUS_PORT_NAME, "containerPort": c.RENDEZVOUS_PORT}],
        "readinessProbe": {"tcpSocket": {"port": c.RENDEZVOUS_PORT}, "periodSeconds": 2},
        "resources": RENDEZVOUS_RESOURCES,
    }
    for key in ("imagePullPolicy", "securityContext"):
        if key in trainer:
            container[key] = copy.deepcopy(trainer[key])
    spec: Obj = {
        "containers": [container],
        # Its DNS name, <job>-rdzv.<job>-workers.<ns>.svc, from the workers' Service.
        "hostname": naming.rendezvous_name(name),
        "subdomain": naming.workers_service_name(name),
        # The kubelet restarts a crashed rendezvous in place, faster than the operator could.
        "restartPolicy": "Always",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,  # a TCPStore server needs no API credentials
    }
    # It must be able to pull and run the same image, wherever the workers may run: on the
    # nodes they are restricted to, with the taints they tolerate.
    copied = ("imagePullSecrets", "securityContext", "nodeSelector", "tolerations")
    for key in (*copied, "priorityClassName"):
        if key in pod_spec:
            spec[key] = copy.deepcopy(pod_spec[key])
    _tolerate_node_loss_briefly(spec)
    # Same priority as the workers (losing the rendezvous stalls them all), but not their
    # scheduler: a gang scheduler would wait for it to join the workers' group.
    scheduling = job.spec.scheduling
    if scheduling is not None and scheduling.priority_class_name:
        spec["priorityClassName"] = scheduling.priority_class_name
    labels = naming.job_labels(name, c.ROLE_RENDEZVOUS)
    metadata = _metadata(job, naming.rendezvous_name(name), labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def build_checkpoint_claim(job: DistributedTrainingJob) -> Obj | None:
    """The checkpoint PVC when spec.checkpoint.size is set; None when the user brings a claim."""
    ckpt = job.spec.checkpoint
    if ckpt is None or ckpt.size is None:
        return None
    name = job.metadata.name
    spec: Obj = {
        "accessModes": list(ckpt.access_modes or DEFAULT_ACCESS_MODES),
        "resources": {"requests": {"storage": ckpt.size}},
    }
    if ckpt.storage_class_name:
        spec["storageClassName"] = ckpt.storage_class_name
    labels = naming.job_labels(name, "checkpoint")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(job, naming.checkpoint_claim_name(name), labels),
        "spec": spec,
    }


def _apply_scheduling(job: DistributedTrainingJob, pod_spec: Obj) -> None:
    scheduling = job.spec.scheduling
    if scheduling is None:
        return
    if scheduling.scheduler_name:
        pod_spec["schedulerName"] = scheduling.scheduler_name
    if scheduling.priority_class_name:
        pod_spec["priorityClassName"] = scheduling.priority_class_name


def _join_gang_and_queue(job: DistributedTrainingJob, metadata: Obj) -> None:
    scheduling = job.spec.scheduling
    if scheduling is None:
        return
    marks: dict[str, str] = {}
    if scheduling.queue_name:  # Volcano's own PodGroup for a pod outside a gang reads it
        marks[c.VOLCANO_QUEUE_ANNOTATION] = scheduling.queue_name
    api = gang.api_of(job)
    if api is not None:
        labels, annotations = gang.join_marks(api, naming.pod_group_name(job.metadata.name))
        metadata["labels"].update(labels)
        marks.update(annotations)
    if marks:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **marks}


def build_pod_group(job: DistributedTrainingJob) -> Obj | None:
    """The job's PodGroup for its gang scheduler; None when it asks for no gang."""
    api = gang.api_of(job)
    if api is None:
        return None
    name = job.metadata.name
    labels = naming.job_labels(name, c.ROLE_GANG)
    return {
        "apiVersion": api.api_version,
        "kind": api.kind,
        "metadata": _metadata(job, naming.pod_group_name(name), labels),
        "spec": gang.build_pod_group_spec(job, api),
    }


def build_worker_pods(job: DistributedTrainingJob, attempt: int) -> list[Obj]:
    """Worker pods 0..replicas-1 of restart attempt `attempt`, each under a new name."""
    return [build_worker_pod(job, index, attempt) for index in range(job.spec.replicas)]


def build_worker_pod(
    job: DistributedTrainingJob, index: int, attempt: int, token: str | None = None
) -> Obj:
    """Worker pod `index` of restart attempt `attempt`, from the user's template; token: what
    makes its name its own (a new one when not given: naming.new_token)."""
    name = job.metadata.name
    template = copy.deepcopy(job.spec.template)
    user_meta = template.get("metadata") or {}
    labels = {**(user_meta.get("labels") or {}), **naming.worker_labels(name, index, attempt)}
    pod_name = naming.worker_pod_name(name, index, attempt, token or naming.new_token())
    metadata = _metadata(job, pod_name, labels)
    if user_meta.get("annotations"):
        metadata["annotations"] = dict(user_meta["annotations"])
    _join_gang_and_queue(job, metadata)
    spec = template.get("spec") or {}
    _set_identity(job, spec, index)
    _set_networking(job, spec)
    _apply_scheduling(job, spec)
    _tolerate_node_loss_briefly(spec)
    _avoid_nodes(spec, (job.status.avoided_nodes if job.status else None) or [])
    spec["volumes"] = [*(spec.get("volumes") or []), *build_worker_volumes(job)]
    contract = workerenv.build_contract_env(job, index, attempt)
    defaults = workerenv.build_default_env(job.spec)
    for container in spec["containers"]:
        container["env"] = workerenv.merge_env(contract, defaults, container.get("env") or [])
        container["volumeMounts"] = _worker_mounts(job, container.get("volumeMounts") or [])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _set_identity(job: DistributedTrainingJob, spec: Obj, index: int) -> None:
    # hostname + subdomain = the headless Service's name gives a DNS name that survives restarts.
    spec["hostname"] = naming.worker_hostname(job.metadata.name, index)
    spec["subdomain"] = naming.workers_service_name(job.metadata.name)
    # The operator decides about restarts (in place or gang); the kubelet must not race it.
    spec["restartPolicy"] = "Never"
    # Service links would inject e.g. MASTER_PORT=tcp://... for a Service named "master".
    spec.setdefault("enableServiceLinks", False)
    # Training code needs no API credentials: no token unless the template asks for one.
    spec.setdefault("automountServiceAccountToken", False)


def _set_networking(job: DistributedTrainingJob, spec: Obj) -> None:
    networking = job.spec.networking
    if networking is not None and networking.host_network:
        spec["hostNetwork"] = True
    if spec.get("hostNetwork"):
        # Without this, a host-network pod resolves names with the node's DNS, not the cluster's.
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"


def _avoid_nodes(spec: Obj, nodes: list[str]) -> None:
    """Keep the pod off these nodes (where a straggler was replaced): a required node affinity
    term, added to each of the template's own terms (they are alternatives: each must avoid)."""
    if not nodes:
        return
    avoid = {"key": "metadata.name", "operator": "NotIn", "values": sorted(nodes)}
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = affinity.setdefault(
        "requiredDuringSchedulingIgnoredDuringExecution", {"nodeSelectorTerms": []}
    )
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        term["matchFields"] = [*(term.get("matchFields") or []), avoid]
    required["nodeSelectorTerms"] = terms


def _tolerates(toleration: Obj, key: str) -> bool:
    """Whether a toleration already covers the NoExecute taint `key` (whatever its value)."""
    if toleration.get("effect") not in (None, "", "NoExecute"):
        return False
    if not toleration.get("key"):  # an empty key with operator Exists tolerates every taint
        return toleration.get("operator") == "Exists"
    return bool(toleration["key"] == key)


def _tolerate_node_loss_briefly(spec: Obj) -> None:
    # Without these, the DefaultTolerationSeconds admission plugin gives the pod 300 s on a
    # lost node (see constants.NODE_LOSS_TOLERATION_SECONDS). A user's own toleration wins.
    tolerations = list(spec.get("tolerations") or [])
    for key in c.NODE_LOSS_TAINTS:
        if not any(_tolerates(t, key) for t in tolerations):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": c.NODE_LOSS_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations


def build_worker_volumes(job: DistributedTrainingJob) -> list[Obj]:
    """The volumes Ringleader adds to every worker: /dev/shm and the checkpoint volume."""
    shm_size = job.spec.networking.shm_size if job.spec.networking else c.DEFAULT_SHM_SIZE
    shm = {"name": c.SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}
    ckpt = job.spec.checkpoint
    if ckpt is None:
        # Pod-local: checkpoints survive the agent's in-place process restarts, not pod loss.
        source: Obj = {"emptyDir": {}}
    else:
        claim = ckpt.claim_name or naming.checkpoint_claim_name(job.metadata.name)
        source = {"persistentVolumeClaim": {"claimName": claim}}
    return [shm, {"name": c.CHECKPOINT_VOLUME, **source}]


def _worker_mounts(job: DistributedTrainingJob, mounts: list[Obj]) -> list[Obj]:
    ckpt_path = job.spec.checkpoint.mount_path if job.spec.checkpoint else c.DEFAULT_CHECKPOINT_DIR
    added = [{"name": c.CHECKPOINT_VOLUME, "mountPath": ckpt_path}]
    # A user who mounts their own /dev/shm keeps it.
    if not any(m.get("mountPath") == "/dev/shm" for m in mounts):
        added.insert(0, {"name": c.SHM_VOLUME, "mountPath": "/dev/shm"})
    return [*mounts, *added]
