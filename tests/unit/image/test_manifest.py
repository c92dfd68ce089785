"""The build manifest: one type, the same JSON on disk, read by the cache check and publish."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from builder.errors import UserError
from builder.image.build import cached_result
from builder.image.manifest import MANIFEST, BuildManifest, ImageFormat, ManifestError, image_file
from builder.publish.publisher import find_image
from tests.unit.image.sample import sample_manifest


@pytest.fixture
def build(tmp_path: Path) -> Path:
    directory = tmp_path / "output" / "master"
    directory.mkdir(parents=True)
    (directory / image_file("master", ImageFormat.QCOW2)).write_bytes(b"q" * 64)
    (directory / image_file("master", ImageFormat.RAW)).write_bytes(b"\0" * 512)
    files = {"mesos-master.qcow2": "qcow2", "mesos-master.raw": "raw"}
    sample_manifest(directory, files).write(directory)
    return directory


def test_the_json_keeps_its_shape(build: Path) -> None:
    data = json.loads((build / MANIFEST).read_text())
    assert sorted(data) == [
        "accelerator",
        "artifacts",
        "finished",
        "input_digest",
        "mirror_lock",
        "packer",
        "role",
        "roles",
        "source_iso",
        "started",
        "target",
        "tools",
        "verified",
    ]
    assert data["artifacts"][1] == {
        "fingerprint": {"mtime_ns": (build / "mesos-master.raw").stat().st_mtime_ns, "size": 512},
        "format": "raw",
        "path": "mesos-master.raw",
        "sha256": "f" * 64,
    }
    assert data["roles"] == ["master"]
    assert data["source_iso"] == {"path": None, "sha256": "e" * 64}
    assert sorted(data["packer"]) == ["builds", "version"]
    assert sorted(data["tools"]) == ["builder", "qemu"]


def test_round_trip(build: Path) -> None:
    text = (build / MANIFEST).read_text()
    manifest = BuildManifest.from_json(text)
    assert manifest.to_json() == text
    raw = manifest.artifact(ImageFormat.RAW)
    assert raw is not None
    assert raw.path == "mesos-master.raw"


def test_cache_hit_only_for_the_same_digest_and_untouched_files(build: Path) -> None:
    assert cached_result(build, "d" * 64) is not None
    assert cached_result(build, "0" * 64) is None
    raw = build / "mesos-master.raw"
    os.utime(raw, ns=(0, raw.stat().st_mtime_ns + 1))
    assert cached_result(build, "d" * 64) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [("{not json", "not valid JSON"), ('{"role": "master"}', "not a build manifest")],
)
def test_a_broken_manifest_is_no_cache_and_bad_input_to_publish(
    build: Path, text: str, words: str
) -> None:
    (build / MANIFEST).write_text(text)
    with pytest.raises(ManifestError, match=words):
        BuildManifest.read(build)
    assert cached_result(build, "d" * 64) is None
    with pytest.raises(UserError, match=f"{build / MANIFEST}: {words}"):
        find_image(build.parent, "master", None)
