"""A directory of every wheel the images install, downloaded once per set of pins.

Image builds install from it with no index (PIP_NO_INDEX, PIP_FIND_LINKS), so a warm build
downloads nothing, and every image gets exactly the versions requirements-dev.txt pins (and
requirements-images.txt, for what only the framework images install).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from .recipes import read_pins
from .store import Store, run

# Every file whose change can change what the images install.
INPUTS = (
    "requirements-dev.txt",
    "requirements-images.txt",
    "operator/pyproject.toml",
    "client/pyproject.toml",
    "trainer-image/pyproject.toml",
)
# The projects' build backend, needed inside the image to install them from source.
BUILD_REQUIREMENTS = ("setuptools>=68",)
# What images install beside the projects (tools/images/hf.Dockerfile), pinned by the constraints.
EXTRA_REQUIREMENTS = ("transformers", "accelerate")
MOUNT_POINT = "/mnt"  # exists, empty, in Debian and python:3.11-slim: the build leaves no trace


def image_requirements(repo: Path) -> list[str]:
    """What requirements-images.txt pins: the names only the framework images install."""
    return list(read_pins((repo / "requirements-images.txt").read_text()))


def wheelhouse_key(repo: Path) -> str:
    """A hash of the files that decide which wheels are needed."""
    digest = hashlib.sha256("\0".join(EXTRA_REQUIREMENTS).encode())
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (repo / name).read_bytes())
    return digest.hexdigest()[:16]


def newest_wheelhouse(store: Store) -> Path | None:
    """The most recently completed wheelhouse (of other pins), if there is one."""
    done = [path.parent for path in store.wheelhouses.glob("*/.complete")]
    return max(done, key=lambda path: (path / ".complete").stat().st_mtime, default=None)


def ensure_wheelhouse(store: Store, repo: Path) -> Path:
    """The wheelhouse for the current pins, downloaded by pip (from its cache where it can)."""
    target = store.wheelhouse(wheelhouse_key(repo))
    if (target / ".complete").exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # pip takes a file from --find-links before the same one from the index: a change of one pin
    # copies the 2.7 GB of torch and CUDA wheels from the last wheelhouse instead of PyPI.
    previous = newest_wheelhouse(store)
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", f"--dest={partial}",
        f"--constraint={repo / 'requirements-dev.txt'}",
        f"--constraint={repo / 'requirements-images.txt'}",
        *([f"--find-links={previous}"] if previous else []),
        # The client first: the trainer requires it, and only this checkout has it.
        str(repo / "client"), str(repo / "trainer-image"), str(repo / "operator"),
        *EXTRA_REQUIREMENTS, *image_requirements(repo), *BUILD_REQUIREMENTS,
    ]  # fmt: skip
    run(argv, quiet=False)
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def build_args(wheelhouse: Path) -> list[str]:
    """buildah flags that make every `pip install` of a build read the wheelhouse only."""
    return [
        f"--volume={wheelhouse}:{MOUNT_POINT}:ro",
        f"--build-arg=PIP_FIND_LINKS={MOUNT_POINT}",
        "--build-arg=PIP_NO_INDEX=1",
    ]
