"""Where built images live outside the clone: buildah's storage, the wheelhouse, the archives."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


class BuildError(RuntimeError):
    """A build step failed; the message holds the end of its output."""


def cache_root() -> Path:
    """~/.cache/ringleader/images, or under $RINGLEADER_CACHE."""
    base = Path(os.environ.get("RINGLEADER_CACHE", Path.home() / ".cache" / "ringleader"))
    return base / "images"


@dataclass(frozen=True)
class Store:
    """The image cache: content-keyed OCI archives, and buildah's own storage to build in."""

    root: Path

    def archive(self, name: str, key: str) -> Path:
        """The OCI archive of one image at one key; it exists once the build finished."""
        return self.root / "archives" / f"{name}-{key}.tar"

    def wheelhouse(self, key: str) -> Path:
        return self.wheelhouses / key

    @property
    def wheelhouses(self) -> Path:
        """Where every wheelhouse is, one directory per key."""
        return self.root / "wheels"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    def buildah_argv(self, *args: str) -> list[str]:
        """buildah on this store's storage (not the host's /var/lib/containers)."""
        storage = self.root / "buildah"
        return [
            "buildah",
            f"--root={storage / 'storage'}",
            f"--runroot={storage / 'run'}",
            "--storage-driver=overlay",
            *args,
        ]

    def buildah(self, *args: str) -> str:
        """Run buildah on this store; return its stdout."""
        return run(self.buildah_argv(*args))

    def has_image(self, ref: str) -> bool:
        """True when buildah's storage holds the image."""
        argv = self.buildah_argv("inspect", "--type=image", ref)
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def run(argv: list[str], quiet: bool = True, cwd: Path | None = None) -> str:
    """Run a build command; return its stdout; raise BuildError with its output's end."""
    result = subprocess.run(argv, capture_output=quiet, text=True, cwd=cwd, check=False)
    if result.returncode != 0:
        tail = "\n".join(((result.stdout or "") + (result.stderr or "")).splitlines()[-30:])
        raise BuildError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n{tail}")
    return result.stdout or ""
