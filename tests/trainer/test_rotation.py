"""Checkpoint layout: manifests catch damage, commits replace, rotation keeps the newest K."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringleader_client.resume import rotation


def make_checkpoint(root: Path, step: int, files: dict[str, bytes]) -> Path:
    """Write files under a temporary name, add the manifest and commit, as a save does."""
    temp = root / rotation.name_temp_dir(step, "abc")
    temp.mkdir(parents=True)
    for name, body in files.items():
        (temp / name).write_bytes(body)
    rotation.write_manifest(temp, step, {})
    final = root / rotation.name_step_dir(step)
    rotation.commit_dir(temp, final)
    return final


@pytest.mark.parametrize(
    ("steps", "keep", "doomed"),
    [
        ([], 3, []),
        ([10, 20], 3, []),
        ([10, 20, 30, 40], 3, [10]),
        ([40, 10, 30, 20], 1, [30, 20, 10]),
        ([5], 0, []),
    ],
)
def test_rotation_keeps_the_newest(steps: list[int], keep: int, doomed: list[int]) -> None:
    assert rotation.plan_rotation(steps, keep) == doomed


def test_committed_checkpoints_are_listed_newest_first_and_temporaries_ignored(
    tmp_path: Path,
) -> None:
    for step in (5, 100, 20):
        make_checkpoint(tmp_path, step, {"a.distcp": b"x"})
    (tmp_path / rotation.name_temp_dir(200, "zzz")).mkdir()
    assert [s for s, _ in rotation.list_committed(tmp_path)] == [100, 20, 5]
    assert rotation.rotate(tmp_path, 2) == [5]
    rotation.remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000020", "step_000000100"]


DAMAGE = {
    "flipped byte": lambda d: (d / "a.distcp").write_bytes(b"hellO world"),
    "truncated file": lambda d: (d / "a.distcp").write_bytes(b"hello"),
    "missing file": lambda d: (d / ".metadata").unlink(),
    "missing manifest": lambda d: (d / rotation.MANIFEST).unlink(),
    "garbled manifest": lambda d: (d / rotation.MANIFEST).write_text("{not json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_reported(tmp_path: Path, damage: str) -> None:
    path = make_checkpoint(tmp_path, 7, {"a.distcp": b"hello world", ".metadata": b"meta"})
    assert rotation.find_problem(path) is None
    DAMAGE[damage](path)
    assert rotation.find_problem(path) is not None


def test_a_commit_replaces_a_stale_checkpoint_of_the_same_step(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 9, {"a.distcp": b"old"})
    path = make_checkpoint(tmp_path, 9, {"a.distcp": b"new"})
    assert (path / "a.distcp").read_bytes() == b"new"
    assert rotation.find_problem(path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000009"]
