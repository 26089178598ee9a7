"""The fault proxy put in front of a local cluster's API server, with a kubeconfig through it."""

from __future__ import annotations

from pathlib import Path

from tools.localcluster.kubeconfig import render_kubeconfig
from tools.localcluster.layout import Layout
from tools.localcluster.pki import Pki

from .proxy import FaultProxy, Upstream


def proxy_in_front(layout: Layout, port: int, seed: int, kubeconfig: Path) -> FaultProxy:
    """Start a FaultProxy on `port` before the cluster's API server, talking to it as admin, and
    write `kubeconfig` for clients that are to go through it."""
    pki = Pki(layout.pki_dir)
    admin = (str(pki.path("admin.crt")), str(pki.path("admin.key")))
    upstream = Upstream(
        layout.server, str(pki.ca_cert), *admin, str(pki.serving_cert), str(pki.serving_key)
    )
    proxy = FaultProxy(upstream, port, seed=seed)
    proxy.start()
    server = f"https://127.0.0.1:{proxy.port}"
    cert, key = (Path(path) for path in admin)
    kubeconfig.write_text(render_kubeconfig(server, pki.ca_cert, cert, key))
    return proxy
