"""The images real nodes run, what each is built from, and the content key of its inputs.

An image is rebuilt only when its key changes: the key hashes the recipe itself, every file its
Dockerfile copies (read from its COPY lines), and the key of the image it is built on.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPOSITORY = "localhost/ringleader"
DEBIAN_SUITE = "bookworm"  # Debian 12: python3 is 3.11, as in python:3.11-slim
# minbase is what debian:bookworm-slim (python:3.11-slim's base) has: apt, libstdc++ (torch
# needs it), useradd. On top, what python:3.11-slim adds: python and pip on PATH, venv, CA
# certificates, /etc/services and /etc/protocols, time zones.
DEBIAN_VARIANT = "minbase"
DEBIAN_PACKAGES = (
    "python3", "python-is-python3", "python3-pip", "python3-venv",
    "ca-certificates", "netbase", "tzdata",
)  # fmt: skip
KEY_LENGTH = 16


@dataclass(frozen=True)
class Recipe:
    """One image: how it is made and from what."""

    name: str
    kind: str  # "debian" (mmdebstrap), "pause" (a static binary), "dockerfile" (buildah)
    dockerfile: str = ""  # relative to the repository root, which is the build context
    base: str = ""  # the recipe whose image is the Dockerfile's BASE_IMAGE
    build_args: tuple[tuple[str, str], ...] = ()
    packages: tuple[str, ...] = field(default=())
    variant: str = ""
    description: str = ""


def read_pins(requirements: str) -> dict[str, str]:
    """Name -> exact version of each `name==version` line of a requirements file."""
    pins = {}
    for line in requirements.splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if name and version:
            pins[name] = version
    return pins


def torch_pins(requirements: str) -> tuple[tuple[str, str], ...]:
    """The TORCH and NUMPY build args: the exact versions requirements-dev.txt pins."""
    pins = read_pins(requirements)
    chosen = {name.upper(): f"{name}=={pins[name]}" for name in ("torch", "numpy") if name in pins}
    return tuple(sorted(chosen.items()))


def build_recipes(repo: Path) -> dict[str, Recipe]:
    """Every image, by name, each after the ones it is built on."""
    requirements = (repo / "requirements-dev.txt").read_text()
    recipes = [
        Recipe("pause", "pause", description="the pods' sandbox process (catatonit -P)"),
        Recipe(
            "base",
            "debian",
            packages=DEBIAN_PACKAGES,
            variant=DEBIAN_VARIANT,
            description="Debian 12 with Python",
        ),
        Recipe(
            "user",
            "dockerfile",
            dockerfile="tools/images/user.Dockerfile",
            base="base",
            build_args=torch_pins(requirements),
            description="torch and numpy, nothing of Ringleader: a user's own image",
        ),
        Recipe(
            "trainer",
            "dockerfile",
            dockerfile="trainer-image/Dockerfile",
            base="user",  # torch is already there: the trainer and user images share its layer
            description="the Ringleader trainer (trainer-image/Dockerfile)",
        ),
        Recipe(
            "hf",
            "dockerfile",
            dockerfile="tools/images/hf.Dockerfile",
            base="user",
            description="the user image with transformers, accelerate and the client library",
        ),
        Recipe(
            "tensorflow",
            "dockerfile",
            dockerfile="tools/images/tensorflow.Dockerfile",
            base="base",  # no torch: a TensorFlow user's image carries none
            description="tensorflow, tf-keras, scikit-learn and the client library",
        ),
        Recipe(
            "operator",
            "dockerfile",
            dockerfile="operator/Dockerfile",
            base="base",
            description="the Ringleader operator (operator/Dockerfile)",
        ),
        Recipe(
            "deepspeed",
            "dockerfile",
            dockerfile="tools/images/deepspeed.Dockerfile",
            base="user",
            description="the user image with DeepSpeed (its CPU ops built in)"
            " and the client library",
        ),
    ]
    return {recipe.name: recipe for recipe in recipes}


def _copy_paths(arguments: str) -> list[str]:
    """Sources and destination of one COPY/ADD, shell form or JSON (exec) form."""
    rest = re.sub(r"^(--\S+\s+)*", "", arguments.strip())
    return [str(path) for path in json.loads(rest)] if rest.startswith("[") else shlex.split(rest)


def copy_sources(dockerfile: str) -> list[str]:
    """The build-context paths a Dockerfile's COPY and ADD lines read (not --from stages)."""
    sources: list[str] = []
    for line in dockerfile.replace("\\\n", " ").splitlines():
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() not in ("COPY", "ADD") or "--from" in arguments:
            continue
        sources.extend(_copy_paths(arguments)[:-1])  # the last one is the destination
    return sources


def _hash_path(digest: hashlib._Hash, path: Path, repo: Path) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if "__pycache__" in file.parts or file.suffix == ".pyc":
            continue
        digest.update(str(file.relative_to(repo)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())


def compute_key(recipe: Recipe, repo: Path, base_key: str = "", extra: bytes = b"") -> str:
    """Content key of an image: its recipe, the files it copies, its base's key, and extra.

    extra carries inputs from outside the repository (the pause binary's bytes).
    """
    digest = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode())
    digest.update(base_key.encode() + b"\0" + extra)
    if recipe.dockerfile:
        dockerfile = repo / recipe.dockerfile
        _hash_path(digest, dockerfile, repo)
        for source in copy_sources(dockerfile.read_text()):
            _hash_path(digest, repo / source, repo)
    return digest.hexdigest()[:KEY_LENGTH]


def reference(recipe: Recipe, key: str) -> str:
    """The image's name in every node's containerd: tagged with its key, so a pod names content."""
    return f"{REPOSITORY}/{recipe.name}:{key}"
