"""labcoat installed from its wheel, outside any checkout, still finds its image files: `labcoat
doctor` and `labcoat sandbox build` work and name the same image tag as the checkout.

The wheel is built from a copy of the sources (no build/ or egg-info lands in the checkout) and
installed without dependencies into a fresh venv; the dependencies come from the site-packages
folders of this interpreter through a `.pth` path entry (path entries do not run the editable
install's own `.pth` hook, so `import labcoat` can only find the wheel's copy). The build
reuses the image because its tag, the hash of the packaged Dockerfile folder, already exists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labcoat.sandboxes.image import default_image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def _wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT / "labcoat", src / "labcoat",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist",
                 src, cwd=tmp)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("labcoat-*.whl")
    return wheel


def _venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    inside = _run(py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp)
    deps = "\n".join(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (Path(inside.stdout.strip()) / "project-deps.pth").write_text(deps + "\n")
    put = _run(sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
               wheel, cwd=tmp)
    assert put.returncode == 0, put.stderr
    return venv


def test_an_installed_wheel_builds_and_checks_its_image_outside_the_checkout(
        tmp_path: Path, sandbox_image: str) -> None:
    venv = _venv(tmp_path, _wheel(tmp_path))
    where = _run(venv / "bin" / "python", "-c", "import labcoat.sandboxes.image as m; "
                 "print(m.__file__); print(m.default_image()); "
                 "print(sorted(p.name for p in m.docker_dir().iterdir()))", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    module, tag, files = where.stdout.splitlines()
    assert module.startswith(str(venv)) and tag == default_image() == sandbox_image
    assert files == "['Dockerfile', 'bootstrap-base.sh', 'requirements-sandbox.txt']"
    doctor = _run(venv / "bin" / "labcoat", "doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"sandbox image: {tag} present" in doctor.stdout
    build = _run(venv / "bin" / "labcoat", "sandbox", "build", cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    assert build.stdout.strip() == f"sandbox image {tag} is up to date"
