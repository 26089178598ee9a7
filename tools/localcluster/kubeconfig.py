"""Kubeconfig files for the user and for each control-plane client."""

from __future__ import annotations

from pathlib import Path

import yaml

from .layout import Layout
from .pki import CLIENT_IDENTITIES, Pki

CONTEXT = "ringleader-local"


def render_kubeconfig(
    server: str, ca: Path, cert: Path, key: Path, tls_server_name: str | None = None
) -> str:
    """A kubeconfig with one cluster, one client-certificate user and one current context.

    tls_server_name: the name to check the server's certificate for, when server is an address
    the certificate does not name.
    """
    cluster: dict[str, str] = {"server": server, "certificate-authority": str(ca)}
    if tls_server_name:
        cluster["tls-server-name"] = tls_server_name
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [
            {"name": CONTEXT, "user": {"client-certificate": str(cert), "client-key": str(key)}},
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_kubeconfigs(layout: Layout, pki: Pki) -> None:
    """One kubeconfig per client identity, and the admin one as the user's kubeconfig."""
    for stem, _, _ in CLIENT_IDENTITIES:
        text = render_kubeconfig(
            layout.server, pki.ca_cert, pki.path(f"{stem}.crt"), pki.path(f"{stem}.key")
        )
        path = layout.component_kubeconfig(stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if stem == "admin":
            layout.kubeconfig.write_text(text)
