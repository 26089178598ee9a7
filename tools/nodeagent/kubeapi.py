"""The agent's only contact with the API: raw JSON dicts in, merge patches out."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"


def connect(kubeconfig: Path) -> client.ApiClient:
    """An API client for the kubeconfig's current context (one per thread)."""
    return config.new_client_from_config(config_file=str(kubeconfig))


def is_status(error: Exception, *codes: int) -> bool:
    """The error is an API answer with one of these HTTP codes."""
    return isinstance(error, ApiException) and error.status in codes


def raw(response: Any) -> Any:
    """The JSON body of a call made with _preload_content=False."""
    return json.loads(response.data)


class Kube:
    """Typed-enough wrappers over CoreV1Api for pods, config data, claims and tokens."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)

    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace the pod's status fields with a JSON merge patch (lists are replaced whole)."""
        self.core.patch_namespaced_pod_status(
            name, namespace, {"status": status}, _content_type=MERGE_PATCH
        )

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        """Finish a deletion as the kubelet does: grace 0, only this incarnation (uid)."""
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
        )
        try:
            self.core.delete_namespaced_pod(name, namespace, body=options)
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def config_data(self, kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
        """A ConfigMap's or Secret's data as bytes; None when it does not exist."""
        read = (
            self.core.read_namespaced_config_map
            if kind == "configMap"
            else self.core.read_namespaced_secret
        )
        try:
            body = raw(read(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        if kind == "secret":
            return {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (body.get("data") or {}).items()}
        binary = body.get("binaryData") or {}
        data.update({k: base64.b64decode(v) for k, v in binary.items()})
        return data

    def config_text(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        """config_data decoded as UTF-8, for environment variables."""
        data = self.config_data(kind, namespace, name)
        return None if data is None else {k: v.decode(errors="replace") for k, v in data.items()}

    def claim_path(self, namespace: str, claim: str) -> str | None:
        """Host directory of the PersistentVolume bound to the claim; None while unbound."""
        try:
            pvc = raw(self.core.read_namespaced_persistent_volume_claim(
                claim, namespace, _preload_content=False
            ))  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        volume_name = pvc.get("spec", {}).get("volumeName")
        if not volume_name or pvc.get("status", {}).get("phase") != "Bound":
            return None
        pv = raw(self.core.read_persistent_volume(volume_name, _preload_content=False))
        spec = pv.get("spec", {})
        source = spec.get("hostPath") or spec.get("local") or {}
        return source.get("path")

    def service_account_token(
        self, namespace: str, account: str, audience: str | None, seconds: int
    ) -> str:
        """A bound token for the pod's ServiceAccount (TokenRequest API)."""
        spec: dict[str, Any] = {"expirationSeconds": max(seconds, 600)}
        if audience:
            spec["audiences"] = [audience]
        try:
            body = raw(self.core.create_namespaced_service_account_token(
                account, namespace, {"spec": spec}, _preload_content=False
            ))  # fmt: skip
        except ApiException as error:
            log.warning("no token for %s/%s: %s", namespace, account, error.reason)
            return ""
        return str(body.get("status", {}).get("token", ""))
