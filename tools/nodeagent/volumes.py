"""Pod volumes as host directories, bind-mounted into the container by the sandbox helper."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .envvars import PodFacts, resolve_field

SUPPORTED = (
    "emptyDir",
    "persistentVolumeClaim",
    "configMap",
    "secret",
    "hostPath",
    "projected",
    "downwardAPI",
)


class VolumeNotReady(RuntimeError):
    """A volume cannot be set up yet (claim unbound, ConfigMap missing): retry later."""


class Reader(Protocol):
    """What volumes need from the API."""

    def config_data(self, kind: str, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def claim_path(self, namespace: str, claim: str) -> str | None: ...

    def service_account_token(
        self, namespace: str, account: str, audience: str | None, seconds: int
    ) -> str: ...


@dataclass(frozen=True)
class Mount:
    """One bind mount of a container: host source → path inside the pod."""

    source: str
    target: str
    read_only: bool = False


_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
}  # fmt: skip


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (\"256Mi\", \"1G\", \"1000\") in bytes."""
    for suffix, factor in _SUFFIXES.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(float(quantity))


def find_unsupported(pod: dict[str, Any]) -> list[str]:
    """Names (and types) of volumes this agent cannot provide."""
    found = []
    for volume in pod["spec"].get("volumes") or []:
        kinds = [key for key in volume if key != "name"]
        if not any(kind in SUPPORTED for kind in kinds):
            found.append(f"{volume['name']} ({', '.join(kinds)})")
    return found


def _write_files(directory: Path, files: dict[str, bytes], mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)


def _select_items(data: dict[str, bytes], source: dict[str, Any]) -> dict[str, bytes]:
    items = source.get("items")
    if not items:
        return dict(data)
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def _config_files(
    kind: str, source: dict[str, Any], namespace: str, reader: Reader
) -> dict[str, bytes]:
    name = source.get("name") or source.get("secretName") or ""
    data = reader.config_data(kind, namespace, name)
    if data is None:
        if source.get("optional"):
            return {}
        raise VolumeNotReady(f"{kind} {name!r} not found")
    return _select_items(data, source)


def _downward_files(
    items: list[dict[str, Any]], pod: dict[str, Any], facts: PodFacts
) -> dict[str, bytes]:
    files = {}
    for item in items:
        path = item.get("fieldRef", {}).get("fieldPath", "")
        if path in ("metadata.labels", "metadata.annotations"):
            mapping = pod["metadata"].get(path.split(".")[1]) or {}
            files[item["path"]] = "".join(f'{k}="{v}"\n' for k, v in sorted(mapping.items()))
        elif path:
            files[item["path"]] = resolve_field(pod, facts, path)
    return {key: value.encode() for key, value in files.items()}


def _projected_files(
    sources: list[dict[str, Any]], pod: dict[str, Any], facts: PodFacts, reader: Reader
) -> dict[str, bytes]:
    namespace = pod["metadata"]["namespace"]
    files: dict[str, bytes] = {}
    for source in sources:
        if "configMap" in source:
            files.update(_config_files("configMap", source["configMap"], namespace, reader))
        elif "secret" in source:
            files.update(_config_files("secret", source["secret"], namespace, reader))
        elif "downwardAPI" in source:
            files.update(_downward_files(source["downwardAPI"].get("items") or [], pod, facts))
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            account = pod["spec"].get("serviceAccountName") or "default"
            text = reader.service_account_token(
                namespace, account, token.get("audience"), token.get("expirationSeconds", 3600)
            )
            files[token["path"]] = text.encode()
    return files


def _memory_dir(directory: Path, size_limit: str | None) -> None:
    """A tmpfs on the host, so every container of the pod shares it; unmounted at teardown."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(directory):
        return
    options = f"size={quantity_bytes(size_limit)},mode=1777" if size_limit else "mode=1777"
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)]
    subprocess.run(command, check=True, capture_output=True)


def prepare_volume(
    volume: dict[str, Any], pod: dict[str, Any], facts: PodFacts, reader: Reader, root: Path
) -> str:
    """Make one volume's host directory (or find it, for claims and hostPath); return its path."""
    namespace, directory = pod["metadata"]["namespace"], root / volume["name"]
    if "emptyDir" in volume:
        empty_dir = volume["emptyDir"] or {}
        if empty_dir.get("medium") == "Memory":
            _memory_dir(directory, empty_dir.get("sizeLimit"))
        directory.mkdir(parents=True, exist_ok=True)
    elif "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]["claimName"]
        path = reader.claim_path(namespace, claim)
        if path is None:
            raise VolumeNotReady(f"PersistentVolumeClaim {claim!r} is not bound yet")
        Path(path).mkdir(parents=True, exist_ok=True)
        return path
    elif "hostPath" in volume:
        host_path = volume["hostPath"]
        if host_path.get("type") == "DirectoryOrCreate":
            Path(host_path["path"]).mkdir(parents=True, exist_ok=True)
        return str(host_path["path"])
    else:
        mode, files = _file_volume(volume, pod, facts, reader)
        _write_files(directory, files, mode)
    return str(directory)


def _file_volume(
    volume: dict[str, Any], pod: dict[str, Any], facts: PodFacts, reader: Reader
) -> tuple[int, dict[str, bytes]]:
    namespace = pod["metadata"]["namespace"]
    for kind in ("configMap", "secret"):
        if kind in volume:
            source = volume[kind]
            files = _config_files(kind, source, namespace, reader)
            return source.get("defaultMode", 0o644), files
    if "downwardAPI" in volume:
        source = volume["downwardAPI"]
        return source.get("defaultMode", 0o644), _downward_files(source["items"], pod, facts)
    source = volume["projected"]
    files = _projected_files(source.get("sources") or [], pod, facts, reader)
    return source.get("defaultMode", 0o644), files


def prepare_volumes(
    pod: dict[str, Any], facts: PodFacts, reader: Reader, root: Path
) -> dict[str, str]:
    """Every volume of the pod: name → host path."""
    return {
        volume["name"]: prepare_volume(volume, pod, facts, reader, root)
        for volume in pod["spec"].get("volumes") or []
    }


def build_mounts(container: dict[str, Any], sources: dict[str, str]) -> list[Mount]:
    """The container's volumeMounts as bind mounts, parents before children."""
    mounts = []
    for volume_mount in container.get("volumeMounts") or []:
        source = sources[volume_mount["name"]]
        if volume_mount.get("subPath"):
            source = os.path.join(source, volume_mount["subPath"])
        read_only = bool(volume_mount.get("readOnly"))
        mounts.append(Mount(source, volume_mount["mountPath"], read_only))
    return sorted(mounts, key=lambda mount: mount.target.rstrip("/").count("/"))


def unmount_memory_dirs(root: Path) -> None:
    """Unmount the pod's tmpfs emptyDirs (lazily: a straggler must not keep them)."""
    if not root.exists():
        return
    for directory in root.iterdir():
        if os.path.ismount(directory):
            subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


def remove_volumes(root: Path) -> None:
    """Unmount and delete the pod's own volume directories (not claims or hostPaths)."""
    unmount_memory_dirs(root)
    shutil.rmtree(root, ignore_errors=True)
