"""apiclient: credentials read from kubeconfigs and a pod's service account, and JSON requests
and watch streams against a local HTTP server standing in for the API server's wire format."""

from __future__ import annotations

import base64
import http.server
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from ringleader import apiclient
from ringleader.apiclient import ApiError, ConfigError, Credentials, RestClient, load_credentials


def kubeconfig(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    config = {
        "clusters": [{"name": "other", "cluster": {"server": "https://wrong"}},
                     {"name": "local", "cluster": cluster}],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": "here", "context": {"cluster": "local", "user": "me"}}],
        "current-context": "here",
    }  # fmt: skip
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_kubeconfigs_paths_are_read_relative_to_it(tmp_path: Path) -> None:
    cluster = {"server": "https://10.0.0.1:6443/", "certificate-authority": "pki/ca.crt",
               "tls-server-name": "kubernetes"}  # fmt: skip
    user = {"client-certificate": "pki/me.crt", "client-key": "/abs/me.key"}
    found = load_credentials(str(kubeconfig(tmp_path, cluster, user)))
    assert found == Credentials(
        server="https://10.0.0.1:6443",
        ca_path=str(tmp_path / "pki/ca.crt"),
        tls_server_name="kubernetes",
        cert_path=str(tmp_path / "pki/me.crt"),
        key_path="/abs/me.key",
    )


def test_inline_certificates_become_private_files_and_a_token_is_sent(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    cluster = {"server": "https://h", "certificate-authority-data": base64.b64encode(pem).decode()}
    found = load_credentials(str(kubeconfig(tmp_path, cluster, {"token": "s3cret"})))
    assert found.ca_path is not None and Path(found.ca_path).read_bytes() == pem
    assert stat.S_IMODE(Path(found.ca_path).stat().st_mode) == 0o600
    assert found.bearer_token() == "s3cret"


def test_credential_plugins_and_missing_files_are_said_plainly(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"server": "https://h"}, {"exec": {"command": "aws"}})
    with pytest.raises(ConfigError, match="credential plugins"):
        load_credentials(str(path))
    with pytest.raises(ConfigError, match="kubeconfig /nowhere not found"):
        load_credentials("/nowhere")


def test_in_a_pod_the_service_account_token_is_read_again_as_it_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(apiclient, "SERVICE_ACCOUNT", tmp_path)
    clock = [1000.0]
    monkeypatch.setattr("ringleader.apiclient.time.monotonic", lambda: clock[0])
    (tmp_path / "token").write_text("first\n")
    found = load_credentials()
    assert (found.server, found.ca_path) == ("https://[fd00::1]:443", str(tmp_path / "ca.crt"))
    assert found.bearer_token() == "first"
    (tmp_path / "token").write_text("second\n")
    assert found.bearer_token() == "first"  # read at most once a minute
    clock[0] += apiclient.TOKEN_REREAD_SECONDS
    assert found.bearer_token() == "second"


class FakeApiServer(http.server.BaseHTTPRequestHandler):
    """Answers as the API server would: JSON objects, a Status on error, a chunked watch."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._record()
        if "watch=true" in self.path:
            self._watch()
        elif self.path.startswith("/api/v1/namespaces/ns/pods/gone"):
            self._reply(404, {"kind": "Status", "code": 404, "message": 'pods "gone" not found'})
        else:
            self._reply(200, {"kind": "Pod", "metadata": {"name": "p"}})

    def do_PATCH(self) -> None:
        self._reply(200, self._record()["body"])

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        seen = {"path": self.path, "headers": dict(self.headers), "body": body}
        self.seen.append(seen)
        return seen

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _watch(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        expired = {"kind": "Status", "code": 410, "reason": "Expired"}
        lines = [{"type": "ADDED", "object": {"metadata": {"name": "a"}}},
                 {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                 {"type": "ERROR", "object": expired}]  # fmt: skip
        text = "".join(json.dumps(line) + "\n" for line in lines).encode()
        for piece in (text[:10], text[10:60], text[60:]):  # chunks that cut lines apart
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def rest() -> Iterator[RestClient]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    FakeApiServer.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    credentials = Credentials(server=f"http://127.0.0.1:{server.server_port}", token="t0k")
    try:
        yield RestClient(credentials, "ringleader-test", (2.0, 5.0))
    finally:
        server.shutdown()


def test_a_request_sends_json_with_the_token_and_agent_and_reads_json(rest: RestClient) -> None:
    patch = {"status": {"phase": "Running"}}
    answer = rest.request("PATCH", "/apis/g/v1/x", {"dryRun": None, "limit": 5}, body=patch,
                          content_type=apiclient.MERGE_PATCH)  # fmt: skip
    assert answer == patch
    (seen,) = FakeApiServer.seen
    assert seen["path"] == "/apis/g/v1/x?limit=5"  # an option of None is not sent
    headers = seen["headers"]
    assert (headers["Authorization"], headers["User-Agent"]) == ("Bearer t0k", "ringleader-test")
    assert headers["Content-Type"] == apiclient.MERGE_PATCH


def test_an_error_status_is_raised_with_the_servers_status_body(rest: RestClient) -> None:
    with pytest.raises(ApiError) as raised:
        rest.request("GET", "/api/v1/namespaces/ns/pods/gone")
    assert raised.value.status == 404
    assert json.loads(raised.value.body)["message"] == 'pods "gone" not found'
    assert rest.request("GET", "/api/v1/namespaces/ns/pods/p")["metadata"] == {"name": "p"}


def test_a_watch_gives_whole_events_and_raises_its_error_event(rest: RestClient) -> None:
    events = rest.watch("/apis/g/v1/things", {"resourceVersion": "5"}, (2.0, 5.0))
    assert [next(events)["type"], next(events)["type"]] == ["ADDED", "BOOKMARK"]
    with pytest.raises(ApiError) as raised:
        next(events)
    assert (raised.value.status, raised.value.reason) == (410, "Expired")
    assert FakeApiServer.seen[0]["path"] == "/apis/g/v1/things?resourceVersion=5&watch=true"
