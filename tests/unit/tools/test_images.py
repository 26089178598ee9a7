"""Image recipes: what each Dockerfile reads, and content keys that change only with inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.images.recipes import (
    Recipe,
    build_recipes,
    compute_key,
    copy_sources,
    reference,
    torch_pins,
)
from tools.images.wheelhouse import image_requirements, wheelhouse_key
from tools.localcluster.layout import REPO_ROOT

DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
COPY requirements-dev.txt ./
COPY --chown=1000 pkg/pyproject.toml \\
     pkg/README.md pkg/
ADD ["data/a.txt", "/data/"]
# COPY commented/out.txt /nowhere
FROM ${BASE_IMAGE}
COPY --from=build /install /usr/local
"""


def test_copy_sources_are_read_from_copy_and_add_lines_but_not_other_stages() -> None:
    assert copy_sources(DOCKERFILE) == [
        "requirements-dev.txt",
        "pkg/pyproject.toml",
        "pkg/README.md",
        "data/a.txt",
    ]


def test_the_projects_dockerfiles_copy_only_files_that_exist() -> None:
    for recipe in build_recipes(REPO_ROOT).values():
        if recipe.dockerfile:
            text = (REPO_ROOT / recipe.dockerfile).read_text()
            assert "ARG BASE_IMAGE" in text, recipe.dockerfile
            for source in copy_sources(text):
                assert (REPO_ROOT / source).exists(), (recipe.dockerfile, source)


def test_every_image_is_built_after_the_image_it_is_built_on() -> None:
    names = list(build_recipes(REPO_ROOT))
    for recipe in build_recipes(REPO_ROOT).values():
        if recipe.base:
            assert names.index(recipe.base) < names.index(recipe.name)


def test_the_trainer_shares_the_user_images_torch_layer() -> None:
    recipes = build_recipes(REPO_ROOT)
    assert recipes["trainer"].base == "user"
    assert dict(recipes["user"].build_args)["TORCH"].startswith("torch==")


def test_the_deepspeed_image_is_the_torch_image_with_deepspeed_from_the_wheelhouse() -> None:
    recipe = build_recipes(REPO_ROOT)["deepspeed"]
    assert recipe.base == "user"
    dockerfile = (REPO_ROOT / recipe.dockerfile).read_text()
    # Its key, and so a rebuild, follows the pin; the wheelhouse downloads what it pins.
    assert "requirements-images.txt" in copy_sources(dockerfile)
    assert "deepspeed" in image_requirements(REPO_ROOT)
    pins = (REPO_ROOT / "requirements-images.txt").read_text().splitlines()
    assert [pin for pin in pins if pin.startswith("deepspeed")] == ["deepspeed==0.19.8"]


def test_torch_pins_come_from_the_requirements() -> None:
    pins = torch_pins("kopf==1.0\ntorch==2.13.0  # the tests' torch\nnumpy==2.4.6\n")
    assert pins == (("NUMPY", "numpy==2.4.6"), ("TORCH", "torch==2.13.0"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the files the trainer image is built from."""
    for name in [
        "requirements-dev.txt",
        "requirements-images.txt",
        "trainer-image/Dockerfile",
        "trainer-image/pyproject.toml",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(
        REPO_ROOT / "trainer-image" / "ringleader_trainer",
        tmp_path / "trainer-image" / "ringleader_trainer",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


TRAINER = Recipe("trainer", "dockerfile", dockerfile="trainer-image/Dockerfile", base="user")


def test_the_key_changes_when_a_copied_file_changes(repo: Path) -> None:
    before = compute_key(TRAINER, repo, "userkey")
    (repo / "trainer-image" / "ringleader_trainer" / "new_module.py").write_text("x = 1\n")
    assert compute_key(TRAINER, repo, "userkey") != before


def test_the_key_ignores_files_the_dockerfile_does_not_copy(repo: Path) -> None:
    before = compute_key(TRAINER, repo, "userkey")
    (repo / "README.md").write_text("unrelated\n")
    (repo / "trainer-image" / "ringleader_trainer" / "__pycache__").mkdir()
    (repo / "trainer-image" / "ringleader_trainer" / "__pycache__" / "x.pyc").write_bytes(b"0")
    assert compute_key(TRAINER, repo, "userkey") == before


def test_the_key_changes_with_the_base_image_and_the_recipe(repo: Path) -> None:
    key = compute_key(TRAINER, repo, "userkey")
    assert compute_key(TRAINER, repo, "otherkey") != key
    pinned = Recipe(**{**TRAINER.__dict__, "build_args": (("X", "1"),)})
    assert compute_key(pinned, repo, "userkey") != key
    assert reference(TRAINER, key) == f"localhost/ringleader/trainer:{key}"


def test_the_wheelhouse_is_keyed_by_the_pins(repo: Path) -> None:
    for project in ("operator", "client", "trainer-image"):
        (repo / project).mkdir(exist_ok=True)
        (repo / project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    before = wheelhouse_key(repo)
    with (repo / "requirements-dev.txt").open("a") as requirements:
        requirements.write("extra==1.0\n")
    assert wheelhouse_key(repo) != before
    before = wheelhouse_key(repo)
    with (repo / "requirements-images.txt").open("a") as requirements:
        requirements.write("framework==2.0  # only an image installs it\n")
    assert wheelhouse_key(repo) != before


def test_the_framework_images_pins_are_named_for_the_wheelhouse(repo: Path) -> None:
    (repo / "requirements-images.txt").write_text("# what only images install\na==1.0\n\nb==2\n")
    assert image_requirements(repo) == ["a", "b"]
