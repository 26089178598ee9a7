"""HTTP to the Kubernetes API server: credentials from a kubeconfig or the pod's service account,
JSON requests over one thread-safe connection pool, and watch streams.

The operator sends and receives plain dicts, so it needs no generated client: the `kubernetes`
package's models alone cost the operator's process about 42 MiB when imported (kopf imports
them too, whenever the package is installed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

Obj = dict[str, Any]
Timeout = tuple[float, float]  # seconds to connect, seconds to wait for an answer

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# A projected service-account token is rotated by the kubelet (hourly); read it again this often.
TOKEN_REREAD_SECONDS = 60.0
# Connections kept open to the API server: the reconcile workers (8), the event senders (4), the
# poller's writes and the watch threads (7 watching all namespaces, each holding one) share
# them; a request beyond them opens one of its own, closed after it.
POOL_SIZE = 24

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """The API server answered with an error status; body is its Status object as text."""

    def __init__(self, status: int, reason: str = "", body: str = "") -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status, self.reason, self.body = status, reason, body


class ConfigError(RuntimeError):
    """No usable credentials: no kubeconfig, and not running in a pod."""


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are (paths, as TLS wants files)."""

    server: str
    ca_path: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    token: str | None = None
    token_path: str | None = None  # read again now and then: the kubelet rotates it

    def bearer_token(self) -> str | None:
        """The token to send now (re-read from token_path when there is one)."""
        if self.token_path:
            return _read_token(self.token_path)
        return self.token


_tokens: dict[str, tuple[float, str]] = {}
_tokens_lock = threading.Lock()


def _read_token(path: str) -> str:
    now = time.monotonic()
    with _tokens_lock:
        read_at, token = _tokens.get(path, (-TOKEN_REREAD_SECONDS, ""))
        if now - read_at >= TOKEN_REREAD_SECONDS:
            token = Path(path).read_text().strip()
            _tokens[path] = (now, token)
        return token


def load_credentials(kubeconfig: str | None = None) -> Credentials:
    """From a kubeconfig path, else $KUBECONFIG (its first file), else ~/.kube/config, else the
    pod's service account. ConfigError when none is there."""
    named = kubeconfig or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    path = Path(named) if named else Path.home() / ".kube" / "config"
    if path.is_file():
        return _from_kubeconfig(path)
    if named:
        raise ConfigError(f"kubeconfig {named} not found")
    return _in_cluster()


def _in_cluster() -> Credentials:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not (host and port):
        raise ConfigError("no kubeconfig, and not in a pod ($KUBERNETES_SERVICE_HOST unset)")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return Credentials(
        server=server,
        ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
        token_path=str(SERVICE_ACCOUNT / "token"),
    )


def _from_kubeconfig(path: Path) -> Credentials:
    """The current context's cluster and user (certificates, a token or a token file)."""
    config = yaml.safe_load(path.read_text()) or {}
    context = _named(config, "contexts", config.get("current-context"), path)["context"]
    cluster = _named(config, "clusters", context.get("cluster"), path)["cluster"]
    user = _named(config, "users", context.get("user"), path).get("user") or {}
    if "exec" in user or "auth-provider" in user:
        raise ConfigError(f"{path}: credential plugins (exec, auth-provider) are not supported")
    here = path.parent
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_path=_file(cluster, "certificate-authority", here),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        cert_path=_file(user, "client-certificate", here),
        key_path=_file(user, "client-key", here),
        token=user.get("token"),
        token_path=str(here / user["tokenFile"]) if user.get("tokenFile") else None,
    )


def _named(config: Obj, section: str, name: object, path: Path) -> Obj:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            found: Obj = entry
            return found
    raise ConfigError(f"{path}: no {section[:-1]} named {name!r}")


def _file(section: Obj, key: str, here: Path) -> str | None:
    """A kubeconfig's `key` (a path, relative to the kubeconfig) or `key-data` (base64: written
    to a private temporary file named by its content, as TLS reads certificates from files)."""
    if section.get(key):
        return str(here / section[key])
    data = section.get(f"{key}-data")
    if not data:
        return None
    content = base64.b64decode(data)
    digest = hashlib.sha256(content).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"ringleader-{digest}.pem"
    if not path.exists():
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "wb") as out:
            out.write(content)
    return str(path)


class RestClient:
    """JSON over HTTPS to one API server; safe to share between threads."""

    def __init__(self, credentials: Credentials, user_agent: str, timeout: Timeout) -> None:
        self.credentials, self.user_agent, self.timeout = credentials, user_agent, timeout
        tls: Obj = {"cert_reqs": "CERT_NONE"} if credentials.insecure else {
            "cert_reqs": "CERT_REQUIRED", "ca_certs": credentials.ca_path,
        }  # fmt: skip
        if credentials.tls_server_name:
            tls["server_hostname"] = tls["assert_hostname"] = credentials.tls_server_name
        self.pool = urllib3.PoolManager(
            num_pools=1, maxsize=POOL_SIZE, block=False,
            cert_file=credentials.cert_path, key_file=credentials.key_path, **tls,
        )  # fmt: skip

    def request(
        self,
        method: str,
        path: str,
        query: Obj | None = None,
        *,
        body: object = None,
        content_type: str = "application/json",
        timeout: Timeout | None = None,
    ) -> Obj:
        """The answer's JSON ({} when empty). ApiError for an error status; urllib3's
        HTTPError when no answer came (refused, reset, timed out)."""
        data = None if body is None else json.dumps(body).encode()
        sent = self._send(method, path, query, data, content_type, timeout=timeout or self.timeout)
        found: Obj = json.loads(sent.data) if sent.data else {}
        return found

    def watch(self, path: str, query: Obj, timeout: Timeout) -> Iterator[Obj]:
        """A watch's events ({"type", "object"}) until the server ends it. An ERROR event is
        raised as ApiError with the code it carries (410: the version is too old)."""
        answer = self._send("GET", path, {**query, "watch": "true"}, timeout=timeout, stream=True)
        try:
            for line in answer:
                if not line.strip():
                    continue
                event: Obj = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(int(status.get("code") or 500), str(status.get("reason") or ""),
                                   json.dumps(status))  # fmt: skip
                yield event
        finally:
            # Closed, not handed back: a watch left half read must not serve the next request.
            answer.close()
            answer.release_conn()

    def _send(
        self,
        method: str,
        path: str,
        query: Obj | None,
        data: bytes | None = None,
        content_type: str | None = None,
        *,
        timeout: Timeout,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """The answer of one request (its body left unread when streamed); ApiError for an
        error status."""
        headers = self._headers()
        if data is not None and content_type:
            headers["Content-Type"] = content_type
        connect, read = timeout
        answer = self.pool.request(
            method, self._url(path, query), body=data, headers=headers,
            timeout=urllib3.Timeout(connect=connect, read=read), preload_content=not stream,
        )  # fmt: skip
        if answer.status >= 400:
            text = answer.data.decode(errors="replace")  # read whole, streamed or not
            answer.release_conn()
            raise ApiError(answer.status, answer.reason or "", text)
        return answer

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        token = self.credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _url(self, path: str, query: Obj | None) -> str:
        given = {k: v for k, v in (query or {}).items() if v is not None}
        encoded = f"?{urllib.parse.urlencode(given)}" if given else ""
        return f"{self.credentials.server}{path}{encoded}"
