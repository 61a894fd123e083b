"""digest installed from its wheel outside the checkout (into a prefix, as `pip install --user` or
`pip install --prefix` lay it out, and into a `--target` folder) finds its built-in templates and builds
the shipped sample offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from web_support import sample_project

REPO = Path(__file__).resolve().parent.parent
DIGEST = Path(sys.executable).parent / "digest"
SAMPLE_AS_OF = "2025-05-09T17:00:00+01:00"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel . --no-deps` of a copy of the source (so the checkout gets no build/ folder)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "digest", source / "digest", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(root / "dist")],
        check=True,
        timeout=600,
        capture_output=True,
    )
    (found,) = (root / "dist").glob("digest-*.whl")
    return found


def _pip_install(wheel: Path, *where: str) -> None:
    # --ignore-installed: never uninstall the digest of the environment running the tests (pip would,
    # with --prefix, as it is the same distribution).
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed"]
    subprocess.run([*command, *where, str(wheel)], check=True, timeout=300, capture_output=True)


def _environment(site: Path) -> dict[str, str]:
    """The installed copy first on the path (the dependencies come from this interpreter's own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["PYTHONPATH"] = str(site)
    return env


def _build_sample(command: list[str], site: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    config = sample_project(project)
    env = _environment(site)
    where = subprocess.run(
        [sys.executable, "-c", "import digest.render as r; print(r.__file__); print(r.BUILTIN_TEMPLATES)"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    # The installed copy is the one imported, and its templates are its own package data.
    assert Path(where[0]).is_relative_to(site), where
    assert Path(where[1]) == site / "digest" / "templates", where
    return subprocess.run(
        [*command, "build", "--config", str(config), "--as-of", SAMPLE_AS_OF],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _built(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "project").glob("out/*/email.html"))


def test_a_prefix_install_finds_its_templates_and_builds_the_sample(wheel: Path, tmp_path: Path) -> None:
    """`pip install --user` is `--prefix $PYTHONUSERBASE` plus the user site on sys.path: a prefix that
    is not sys.prefix, where the old `share/digest/templates` data files were never looked for."""
    prefix = tmp_path / "userbase"
    _pip_install(wheel, "--prefix", str(prefix))
    scheme = sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})
    site = Path(scheme["purelib"])
    script = Path(scheme["scripts"]) / "digest"
    assert script.is_file()
    result = _build_sample([str(script)], site, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not found" not in result.stderr
    assert _built(tmp_path), result.stdout


def test_a_target_install_builds_the_sample_with_python_m_digest(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    _pip_install(wheel, "--target", str(target))
    result = _build_sample([sys.executable, "-m", "digest"], target, tmp_path)
    assert result.returncode == 0, result.stderr
    assert _built(tmp_path), result.stdout


def test_the_environment_running_the_tests_still_has_its_digest(wheel: Path, tmp_path: Path) -> None:
    _pip_install(wheel, "--prefix", str(tmp_path / "prefix"))
    assert DIGEST.is_file()
    shown = subprocess.run(
        [sys.executable, "-m", "pip", "show", "digest"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr


def test_the_wheel_carries_the_templates_as_package_data(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for template in ("email.mjml", "email.txt", "web.html", "_email_style.mjml", "_email_macros.mjml"):
        assert f"digest/templates/{template}" in names
    assert not any("share/digest" in n or n.startswith("templates/") for n in names)
