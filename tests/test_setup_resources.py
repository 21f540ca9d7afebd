"""Setup's resources: the release tarball of JackTrip (hash checked, unpacked into the cache) and
the skip policy (tests/resources.py: in strict mode a skip for a setup-provided resource fails)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from nextblock.commands import build_jacktrip
from nextblock.jackio import patched_build as pb

TESTS = Path(__file__).resolve().parent


def _fake_release(path: Path, top: str = "jacktrip-2.7.2") -> Path:
    """A tiny tarball laid out like JackTrip's release (src/Regulator.cpp, meson.build)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, text in ((f"{top}/src/Regulator.cpp", b"// stand-in\n"), (f"{top}/meson.build", b"project('x')\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tf.addfile(info, io.BytesIO(text))
    return path


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    for var in (
        "NEXTBLOCK_JACKTRIP",
        "NEXTBLOCK_JACKTRIP_PATCHED",
        "JACKTRIP_SOURCE_DIR",
        "NEXTBLOCK_JACKTRIP_TARBALL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NEXTBLOCK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pb, "REPO", tmp_path / "repo")  # no ../shared/jacktrip beside it
    return tmp_path


def test_a_tarball_with_the_wrong_hash_is_refused_and_nothing_is_unpacked(empty_cache, monkeypatch):
    tarball = _fake_release(empty_cache / "jacktrip-2.7.2.tar.gz")
    monkeypatch.setenv("NEXTBLOCK_JACKTRIP_TARBALL", str(tarball))
    with pytest.raises(pb.TarballError, match="sha256"):
        pb.find_jacktrip_source()
    assert not pb.source_dir().exists()
    # the command line says so and exits 1 (a failed step, also without --strict)
    assert build_jacktrip.main(["--tarball", str(tarball)]) == 1


def test_a_tarball_with_the_expected_hash_is_unpacked_into_the_cache(empty_cache, monkeypatch):
    tarball = _fake_release(empty_cache / "jacktrip-2.7.2.tar.gz")
    monkeypatch.setattr(pb, "TARBALL_SHA256", hashlib.sha256(tarball.read_bytes()).hexdigest())
    monkeypatch.setenv("NEXTBLOCK_JACKTRIP_TARBALL", str(tarball))
    src = pb.find_jacktrip_source()
    assert src == pb.source_dir() and (src / "src" / "Regulator.cpp").read_text() == "// stand-in\n"
    # an explicit tarball is checked even when the cache already has a source
    monkeypatch.delenv("NEXTBLOCK_JACKTRIP_TARBALL")
    other = _fake_release(empty_cache / "other.tar.gz", top="jacktrip-2.7.2")
    other.write_bytes(other.read_bytes() + b"\0")
    with pytest.raises(pb.TarballError, match="sha256"):
        pb.find_jacktrip_source(tarball=other)
    # found as a source tree from now on, without the tarball
    tarball.unlink()
    assert pb.find_jacktrip_source(unpack=False) == src


def test_a_tarball_without_jacktrips_layout_is_refused(empty_cache, monkeypatch):
    tarball = _fake_release(empty_cache / "other.tar.gz", top="something-else")
    monkeypatch.setattr(pb, "TARBALL_SHA256", hashlib.sha256(tarball.read_bytes()).hexdigest())
    with pytest.raises(pb.TarballError, match="jacktrip-2.7.2/src/Regulator.cpp"):
        pb.unpack_tarball(tarball)
    assert not pb.source_dir().exists()


def test_the_tarball_beside_the_repository_is_found(empty_cache):
    shared = empty_cache / "shared" / "jacktrip"
    shared.mkdir(parents=True)
    assert pb.find_tarball() is None
    _fake_release(shared / "jacktrip-2.7.2.tar.gz")
    assert pb.find_tarball() == shared / "jacktrip-2.7.2.tar.gz"
    path, msg = pb.find_patched_jacktrip()
    assert path is None and "build-jacktrip" in msg and str(shared) in msg
    with pytest.raises(FileNotFoundError, match="nowhere.tar.gz"):
        pb.find_tarball(empty_cache / "nowhere.tar.gz")


def test_the_shared_release_tarball_has_the_documented_hash():
    shared = pb.REPO.parent / "shared" / "jacktrip" / pb.TARBALL_NAME
    if not shared.is_file():
        pytest.skip(f"JackTrip's release tarball unavailable: not at {shared}")
    h = hashlib.sha256(shared.read_bytes()).hexdigest()
    assert h == pb.TARBALL_SHA256


# ----------------------------------------------------------------------------- skip policy
SAMPLE = textwrap.dedent("""
    import pytest
    import resources

    def test_setup_resource():
        pytest.importorskip("surely_not_a_module_nextblock_needs", reason="TensorFlow is not installed")

    def test_machine_resource():
        pytest.skip("needs root for network namespaces")

    def test_tagged_machine_resource():
        resources.machine_lacks("no GPU here")

    def test_too_busy():
        resources.too_busy("only 3 usable losses")

    def test_passes():
        assert 1 + 1 == 2
""")


def _run_sample(tmp_path: Path, env_extra: dict) -> subprocess.CompletedProcess:
    for name in ("conftest.py", "resources.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NEXTBLOCK_STRICT_TESTS")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_outside_ci_every_missing_resource_skips_with_its_reason(tmp_path):
    r = _run_sample(tmp_path, {})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 4 skipped" in r.stdout and "TensorFlow is not installed" in r.stdout
    assert "too busy for the comparison: only 3 usable losses" in r.stdout


@pytest.mark.parametrize("env", [{"CI": "true"}, {"NEXTBLOCK_STRICT_TESTS": "1"}])
def test_in_ci_a_skip_for_a_setup_resource_fails_and_a_machine_skip_stays(tmp_path, env):
    r = _run_sample(tmp_path, env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 failed, 1 passed, 2 skipped" in r.stdout, r.stdout
    assert "FAILED" in r.stdout and "test_setup_resource" in r.stdout
    # a machine too busy for a measurement the test exists for fails, with what went wrong
    assert "test_too_busy" in r.stdout and "only 3 usable losses" in r.stdout
    assert "setup is supposed to provide this" in r.stdout and "TensorFlow is not installed" in r.stdout


def test_builds_of_different_patches_live_side_by_side(empty_cache, monkeypatch):
    """A checkout finds the build of its own patch (keyed folder, or the unkeyed one with the same
    stamp) and never another patch's build."""
    src = pb.source_dir()
    (src / "src").mkdir(parents=True)
    (src / "src" / "Regulator.cpp").write_text("// stand-in\n")
    (src / "meson.build").write_text("project('x')\n")
    monkeypatch.setattr(pb, "PATCH_DIR", empty_cache)  # "the repository's patch" exists
    key = {"k": "aaaa"}
    monkeypatch.setattr(pb, "build_key", lambda source: key["k"])

    def fake_build(folder: Path, stamp: str):
        (folder / "bin").mkdir(parents=True)
        for name in ("jacktrip", "jacktrip-stock"):
            (folder / "bin" / name).write_text("#!/bin/sh\n")
            (folder / "bin" / name).chmod(0o755)
        (folder / "nextblock-build.key").write_text(stamp)

    fake_build(pb.build_dir(), "bbbb")  # the unkeyed folder holds another patch's build
    assert pb.find_patched_jacktrip()[0] is None
    fake_build(pb.build_dir("aaaa"), "aaaa")
    assert pb.find_patched_jacktrip()[0] == str(pb.build_dir("aaaa") / "bin" / "jacktrip")
    key["k"] = "bbbb"  # the other checkout still finds its own build
    assert pb.find_patched_jacktrip()[0] == str(pb.build_dir() / "bin" / "jacktrip")
    assert pb.build_jacktrip(src) == {
        "stock": pb.build_dir() / "bin" / "jacktrip-stock",
        "patched": pb.build_dir() / "bin" / "jacktrip",
    }
