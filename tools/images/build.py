"""Build the images into content-keyed OCI archives, with no Docker engine and no registry.

The base is a Debian root filesystem made by mmdebstrap; Dockerfiles are built on it by buildah
(chroot isolation: no daemon, no user namespaces); pause is catatonit, a static binary from
Debian. Each image is written once as an OCI archive named by its key, which is what nodes import.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .recipes import DEBIAN_SUITE, Recipe, build_recipes, compute_key, reference
from .store import BuildError, Store, run
from .wheelhouse import build_args as wheelhouse_args
from .wheelhouse import ensure_wheelhouse

PAUSE_BINARY = Path("/usr/bin/catatonit")
KEEP_BUILDS = 2  # of each image, the newest
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    """A built image: its name in containerd and the archive to import it from."""

    name: str
    ref: str
    archive: Path
    built_seconds: float = 0.0  # 0 when it came from the cache


def _extra_inputs(recipe: Recipe) -> bytes:
    return PAUSE_BINARY.read_bytes() if recipe.kind == "pause" else b""


class Builder:
    """Builds images on demand, each after its base, reusing whatever the cache holds."""

    def __init__(self, store: Store, repo: Path, compress: bool = False) -> None:
        self.store, self.repo, self.compress = store, repo, compress
        self.recipes = build_recipes(repo)
        self._keys: dict[str, str] = {}

    def key(self, name: str) -> str:
        """The content key of an image (its base's key included)."""
        if name not in self._keys:
            recipe = self.recipes[name]
            base_key = self.key(recipe.base) if recipe.base else ""
            self._keys[name] = compute_key(recipe, self.repo, base_key, _extra_inputs(recipe))
        return self._keys[name]

    def ref(self, name: str) -> str:
        """The image's reference, e.g. localhost/ringleader/trainer:<key>."""
        return reference(self.recipes[name], self.key(name))

    def ensure(self, name: str) -> Image:
        """The image's archive, built first (with its bases) unless the cache has it."""
        archive = self.store.archive(name, self.key(name))
        if archive.exists():
            return Image(name, self.ref(name), archive)
        started = time.monotonic()
        self._ensure_in_storage(name)
        self._export(name, archive)
        image = Image(name, self.ref(name), archive, time.monotonic() - started)
        self._forget_older(image)
        return image

    def _forget_older(self, image: Image) -> None:
        """Drop the image's older builds (archives and buildah's copies): gigabytes each.

        The newest KEEP_BUILDS stay: the cache is shared by every clone on the machine, and two
        branches that differ in an image's inputs would otherwise rebuild it in turn.
        """
        archives = sorted(
            image.archive.parent.glob(f"{image.name}-*.tar"),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        kept = {path.stem.removeprefix(f"{image.name}-") for path in archives[:KEEP_BUILDS]}
        for path in archives[KEEP_BUILDS:]:
            path.unlink()
        repository = image.ref.rpartition(":")[0]
        names = self.store.buildah("images", "--format={{.Name}}:{{.Tag}}").split()
        older = [
            ref
            for ref in names
            if ref.startswith(f"{repository}:") and ref.rpartition(":")[2] not in kept
        ]
        if older:
            self.store.buildah("rmi", *older)

    def _ensure_in_storage(self, name: str) -> None:
        """The image in buildah's storage: loaded from its archive, or built."""
        ref, recipe = self.ref(name), self.recipes[name]
        if self.store.has_image(ref):
            return
        archive = self.store.archive(name, self.key(name))
        if archive.exists():  # built before, but buildah's storage was cleared since
            self.store.buildah("pull", "--quiet", f"oci-archive:{archive}")
            return
        if recipe.base:
            self._ensure_in_storage(recipe.base)
        builders = {"debian": self._build_debian, "pause": self._build_pause}
        builders.get(recipe.kind, self._build_dockerfile)(recipe, ref)

    def _export(self, name: str, archive: Path) -> None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        flags = [] if self.compress else ["--disable-compression"]
        ref = self.ref(name)
        self.store.buildah("push", "--quiet", *flags, ref, f"oci-archive:{partial}:{ref}")
        partial.rename(archive)

    def _commit_scratch(self, ref: str, source: Path, dest: str, config: list[str]) -> None:
        """A one-layer image: source added at dest (a tar is unpacked), then configured."""
        container = self.store.buildah("from", "--quiet", "scratch").strip()
        try:
            self.store.buildah("add", container, str(source), dest)
            self.store.buildah("config", *config, container)
            self.store.buildah("commit", "--quiet", "--rm", container, ref)
        except BuildError:
            self.store.buildah("rm", container)
            raise

    def _build_pause(self, recipe: Recipe, ref: str) -> None:
        # catatonit -P: sleep as PID 1 of the pod's sandbox, reap zombies, exit on SIGTERM.
        # User 65535 as the upstream pause image.
        config = [f"--entrypoint={json.dumps(['/pause', '-P'])}", "--user=65535:65535"]
        self._commit_scratch(ref, PAUSE_BINARY, "/pause", config)

    def _build_debian(self, recipe: Recipe, ref: str) -> None:
        self.store.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.store.work_dir) as work:
            rootfs = Path(work) / "rootfs.tar"
            run(
                [
                    "mmdebstrap",
                    "--quiet",
                    f"--variant={recipe.variant}",
                    f"--include={','.join(recipe.packages)}",
                    "--aptopt=Apt::Install-Recommends false",
                    # Lets Dockerfiles `pip install` as they do on python:3.11-slim.
                    "--customize-hook=rm -f $1/usr/lib/python3.*/EXTERNALLY-MANAGED",
                    DEBIAN_SUITE,
                    str(rootfs),
                    DEBIAN_MIRROR,
                ]
            )
            config = ["--env=LANG=C.UTF-8", f"--cmd={json.dumps(['python3'])}"]
            self._commit_scratch(ref, rootfs, "/", config)

    def _build_dockerfile(self, recipe: Recipe, ref: str) -> None:
        args = [f"--build-arg={key}={value}" for key, value in recipe.build_args]
        if recipe.base:
            args.append(f"--build-arg=BASE_IMAGE={self.ref(recipe.base)}")
        wheels = ensure_wheelhouse(self.store, self.repo)
        self.store.buildah(
            "bud", "--quiet", "--isolation=chroot", "--pull=never", "--layers=false",
            f"--file={self.repo / recipe.dockerfile}", f"--tag={ref}",
            *args, *wheelhouse_args(wheels), str(self.repo),
        )  # fmt: skip
