"""Certificates and keys for the local control plane: one CA, a serving cert, client certs."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=3650)

# Each client identity the control plane uses: file stem, common name, organization.
CLIENT_IDENTITIES = (
    ("admin", "ringleader-admin", "system:masters"),
    ("controller-manager", "system:kube-controller-manager", None),
    ("scheduler", "system:kube-scheduler", None),
    ("kwok", "kwok-controller", "system:masters"),
    # The API server's identity towards kubelets (logs, exec, port-forward).
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    # CoreDNS on real nodes: a throwaway cluster's host process, so no RBAC of its own.
    ("coredns", "coredns", "system:masters"),
)


@dataclass(frozen=True)
class Pki:
    """Paths of the files the components are started with."""

    directory: Path

    def path(self, name: str) -> Path:
        """The path of one PEM file in the PKI directory."""
        return self.directory / name

    @property
    def ca_cert(self) -> Path:
        return self.path("ca.crt")

    @property
    def serving_cert(self) -> Path:
        return self.path("apiserver.crt")

    @property
    def serving_key(self) -> Path:
        return self.path("apiserver.key")

    @property
    def service_account_key(self) -> Path:
        return self.path("sa.key")

    @property
    def service_account_pub(self) -> Path:
        return self.path("sa.pub")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(subject, ca_name, key.public_key())
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _serving_sans(service_ip: str) -> list[x509.GeneralName]:
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    dns.append("kubernetes.default.svc.cluster.local")
    ips = ["127.0.0.1", service_ip]
    return [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]


def _load_ca(pki: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    key = serialization.load_pem_private_key(pki.path("ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).subject


def _create_ca(pki: Pki) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ringleader-local-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.path("ca.key"), ca_key)
    _write_cert(pki.ca_cert, ca_cert)


def _create_service_account_key(pki: Pki) -> None:
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.service_account_key, sa_key)
    pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pki.service_account_pub.write_bytes(pub)


def ensure_client_cert(pki: Pki, stem: str, common_name: str, organization: str | None) -> None:
    """Issue STEM.crt/.key for a client identity from the CA, unless it exists already."""
    if pki.path(f"{stem}.crt").exists():
        return
    ca_key, ca_name = _load_ca(pki)
    subject = _name(common_name, organization)
    key, cert = _issue(ca_key, ca_name, subject, ExtendedKeyUsageOID.CLIENT_AUTH)
    _write_key(pki.path(f"{stem}.key"), key)
    _write_cert(pki.path(f"{stem}.crt"), cert)


def ensure_pki(directory: Path, service_ip: str) -> Pki:
    """Create the CA, serving, client and service-account keys once; reuse them afterwards.

    An older state directory gets the identities added since it was made, from the same CA.
    """
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not pki.ca_cert.exists():
        _create_ca(pki)
    if not pki.serving_cert.exists():
        ca_key, ca_name = _load_ca(pki)
        server = ExtendedKeyUsageOID.SERVER_AUTH
        sans = _serving_sans(service_ip)
        key, cert = _issue(ca_key, ca_name, _name("kube-apiserver"), server, sans)
        _write_key(pki.serving_key, key)
        _write_cert(pki.serving_cert, cert)
    for stem, common_name, organization in CLIENT_IDENTITIES:
        ensure_client_cert(pki, stem, common_name, organization)
    if not pki.service_account_pub.exists():
        _create_service_account_key(pki)
    return pki


def ensure_loopback_serving_cert(pki: Pki, directory: Path, common_name: str) -> Path:
    """tls.crt/tls.key in `directory`, for a server on 127.0.0.1, signed by the cluster's CA.

    Webhook servers and metrics endpoints of the optional schedulers need one; clients verify
    it with the cluster's CA (a webhook's caBundle).
    """
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    if cert_path.exists() and key_path.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key(pki.path("ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # ensure_pki makes an EC CA
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    server = ExtendedKeyUsageOID.SERVER_AUTH
    key, cert = _issue(ca_key, ca_cert.subject, _name(common_name), server, sans)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return directory
