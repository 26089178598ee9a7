"""`make demo`: real nodes, the operator installed by its chart, a real training job, end to end.

Starts the cluster with two real nodes (kubelet, containerd), installs the operator with
`helm install` from the image operator/Dockerfile builds (on a system node of its own), imports
the trainer image into the nodes, applies examples/digits-job.yaml in a namespace that enforces
the restricted Pod Security Standard, shows `kubectl get dtj` as it trains, deletes a worker pod
mid-run to show recovery from the checkpoint, and ends with `kubectl logs` of a worker and where
the checkpoints are. The cluster stays up afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import yaml

from ringleader import naming
from tools.localcluster.cluster import ClusterError, LocalCluster
from tools.localcluster.layout import REPO_ROOT, default_layout
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from tools.localcluster.operatorchart import RELEASE, build_namespace
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL

NAMESPACE = "ringleader-demo"
JOB = "digits"
# Paced steps, so there is time to watch the STEP column and to interrupt the run.
STEP_SECONDS = "0.15"
LOG_LINES = 4


def say(message: str) -> None:
    """A demo narration line."""
    print(f"\n==> {message}", flush=True)


def demo_job(image: str) -> dict[str, Any]:
    """The example job with the locally built trainer image, on the real nodes, paced."""
    job: dict[str, Any] = yaml.safe_load((REPO_ROOT / "examples" / "digits-job.yaml").read_text())
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {NODE_POOL_LABEL: LOCAL_POOL}
    trainer = pod_spec["containers"][0]
    trainer["image"], trainer["imagePullPolicy"] = image, "Never"  # no registry to pull from
    trainer["args"] += ["--min-step-seconds", STEP_SECONDS]
    return job


class Watcher:
    """Prints `kubectl get dtj` rows whenever they change."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster, self.last = cluster, ""

    def status(self) -> dict[str, Any]:
        job = json.loads(self.cluster.kubectl("get", "dtj", JOB, "-n", NAMESPACE, "-o", "json"))
        return dict(job.get("status") or {})

    def show(self, status: dict[str, Any]) -> None:
        # A row whenever phase, workers, step, restarts or checkpoint change (not just AGE).
        seen = json.dumps(
            [status.get(k) for k in ("phase", "workers", "progress", "restarts", "checkpoint")]
        )
        if seen == self.last:
            return
        header, *rows = self.cluster.kubectl("get", "dtj", JOB, "-n", NAMESPACE).splitlines()
        if not self.last:
            print(header)
        print("\n".join(rows), flush=True)
        self.last = seen

    def until(self, test: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            self.show(status)
            if test(status):
                return status
            time.sleep(1)
        raise ClusterError(f"the demo job did not get there within {timeout:.0f}s")


def worker_pod(cluster: LocalCluster, index: int, attempt: int) -> str:
    """The name of worker `index`'s pod in restart attempt `attempt`, found by its labels: each
    incarnation of a worker has a name of its own."""
    selector = ",".join(f"{k}={v}" for k, v in naming.worker_labels(JOB, index, attempt).items())
    found = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json")
    live = [p for p in json.loads(found)["items"] if not p["metadata"].get("deletionTimestamp")]
    if not live:
        raise ClusterError(f"no pod of worker {index} in restart attempt {attempt}")
    return str(live[0]["metadata"]["name"])


def start(cluster: LocalCluster) -> str:
    """The cluster, the operator and the demo's namespace; return the trainer image."""
    say("Starting the local cluster: etcd, kube-apiserver, controller-manager, scheduler,")
    print(
        "    kwok (4 simulated GPU nodes), 2 real nodes (kubelet + containerd), CoreDNS, kube-proxy"
    )
    cluster.up()
    say(f"helm install {RELEASE} charts/ringleader -n {OPERATOR_NAMESPACE}")
    print("    (the image operator/Dockerfile builds, on the system node local-system)")
    print(f"    {cluster.install_operator()}")
    say("Importing the trainer image (trainer-image/Dockerfile) into the real nodes")
    [trainer] = cluster.import_images(["trainer"])
    print(f"    {trainer.ref}")
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(build_namespace(NAMESPACE)))
    return trainer.ref


def train_and_interrupt(cluster: LocalCluster, watcher: Watcher, image: str) -> None:
    say(f"kubectl apply -f examples/digits-job.yaml -n {NAMESPACE}   (2 workers, digits MLP)")
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(demo_job(image)))
    status = watcher.until(lambda s: (s.get("checkpoint") or {}).get("step", 0) >= 40, 300)
    ckpt = status["checkpoint"]["step"]
    victim = worker_pod(cluster, 1, status.get("restartAttempt") or 0)
    say(f"Deleting worker pod {victim} at step {status['progress']['step']} (checkpoint {ckpt})")
    cluster.kubectl("delete", "pod", victim, "-n", NAMESPACE, "--wait=false")
    done = watcher.until(lambda s: s.get("phase") in ("Succeeded", "Failed"), 600)
    if done["phase"] == "Succeeded":  # the final report arrives with the pods' exit
        watcher.until(lambda s: s["progress"]["step"] == s["checkpoint"]["step"], 30)


def report(cluster: LocalCluster, watcher: Watcher) -> int:
    status = watcher.status()
    pod = worker_pod(cluster, 0, status.get("restartAttempt") or 0)
    say(f"kubectl logs {pod} -n {NAMESPACE} --tail={LOG_LINES}")
    print(cluster.kubectl("logs", pod, "-n", NAMESPACE, f"--tail={LOG_LINES}").rstrip())
    claim = json.loads(
        cluster.kubectl("get", "pvc", f"{JOB}-checkpoint", "-n", NAMESPACE, "-o", "json")
    )
    volume = cluster.layout.root / "volumes" / f"pvc-{claim['metadata']['uid']}"
    say(f"Job {status.get('phase')}: {status.get('progress', {}).get('step')} steps")
    print(f"    newest checkpoint: step {status.get('checkpoint', {}).get('step')}")
    print(f"    checkpoints:       {volume}")
    print(f"    operator log:      kubectl logs -n {OPERATOR_NAMESPACE} deploy/{RELEASE}")
    print(f"\nThe cluster is still up:  export KUBECONFIG={cluster.layout.kubeconfig}", end="")
    print(f" PATH={cluster.layout.tools_dir}:$PATH")
    print("Stop it with `make cluster-down`.")
    return 0 if status.get("phase") == "Succeeded" else 1


def main() -> int:
    """Run the demo; exit 0 when the job succeeded."""
    cluster = LocalCluster(default_layout(), local_nodes=2)
    watcher = Watcher(cluster)
    try:
        image = start(cluster)
        train_and_interrupt(cluster, watcher, image)
        return report(cluster, watcher)
    except ClusterError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
