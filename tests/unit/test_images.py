"""ImageBuild parameters: what a user may type, and what is refused with the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prefect_stacks.blocks.docker import BuiltImage, ImageBuild


@pytest.mark.parametrize(
    "image",
    ["web", "shop/web", "localhost:5000/shop/web", "registry.example.com/a__b/c-d.e", "r.io:443/x"],
)
def test_image_repositories_docker_accepts(image):
    assert ImageBuild(image=image).image == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "Shop/web",  # uppercase path component
        "shop/web:latest",  # a tag: the tag is the commit SHA
        "shop/web@sha256:" + "0" * 64,
        "shop web",
        "shop/web;rm -rf /",
        "$(id)/web",
        "shop//web",
        "-web",
    ],
)
def test_image_repositories_docker_refuses_are_refused_with_an_example(image):
    with pytest.raises(ValidationError, match="is not an image repository.*e.g."):
        ImageBuild(image=image)


@pytest.mark.parametrize("field", ["dockerfile", "context"])
@pytest.mark.parametrize("path", ["/etc/passwd", "../other", "a/../../b", ""])
def test_paths_must_stay_inside_the_repository(field, path):
    with pytest.raises(ValidationError, match="inside the repository"):
        ImageBuild(image="web", **{field: path})


def test_variable_must_be_a_terraform_name():
    assert ImageBuild(image="web", variable="app_image").variable == "app_image"
    with pytest.raises(ValidationError, match="not a Terraform variable name"):
        ImageBuild(image="web", variable="image; rm")


def test_a_pushed_image_is_pinned_by_digest():
    digest = "sha256:" + "a" * 64
    assert BuiltImage("r:5000/web", "abc", "sha256:1", digest).reference == (
        f"r:5000/web:abc@{digest}"
    )
    assert BuiltImage("web", "abc", "sha256:1", None).reference == "web:abc"
