"""Mount targets the agent had to create on the host, removed again once no pod uses them.

Pods run on the host's filesystem, so a volumeMount at /checkpoints needs that directory to
exist on the host; only directories the agent created are ever removed, and only when empty.
"""

from __future__ import annotations

import json
from pathlib import Path


class Mountpoints:
    """The set of created paths, persisted in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created: set[str] = set(json.loads(path.read_text())) if path.exists() else set()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(sorted(self.created)))

    def ensure(self, target: str, directory: bool = True) -> None:
        """Make target (and missing parents) exist, remembering what was created."""
        path = Path(target)
        missing = [p for p in [path, *path.parents] if not p.exists() and not p.is_symlink()]
        if not missing:
            return
        if directory:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        self.created.update(str(p) for p in missing)
        self._save()

    def release(self, in_use: set[str]) -> None:
        """Remove created paths no live pod mounts on (deepest first; non-empty ones stay)."""
        busy = {str(p) for target in in_use for p in [Path(target), *Path(target).parents]}
        before = set(self.created)
        for name in sorted(self.created - busy, key=lambda n: n.count("/"), reverse=True):
            try:
                path = Path(name)
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue  # not empty: something else put files there; leave it
            self.created.discard(name)
        if self.created != before:
            self._save()
