"""facexplain as a user installs it: a wheel built from this tree, installed (not editable) into a fresh
venv, finds its own transformers and runs; and every third-party module it imports is a declared dependency.

The fresh venv reuses this environment's installed dependencies (a .pth file naming its site-packages,
whose own .pth files, among them the editable install of facexplain, are not run), so no torch is
downloaded; facexplain itself comes only from the wheel.
"""
from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from explainer import assets

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-4000:])
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(bin folder of a fresh venv holding the facexplain wheel, the environment to run it in)."""
    work = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the source tree on the path
    source = work / "source"  # a copy: building in place would leave build/ and egg-info in the tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("explainer", "training", "assets"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work), str(source)],
         work, env)
    (wheel,) = work.glob("facexplain-*.whl")
    fresh = work / "venv"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], work, env)
    # Only now the dependencies (pip, had it seen them, would have taken the editable facexplain among them
    # for this one and installed nothing).
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work,
                     env).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return fresh / "bin", env


@pytest.mark.slow
def test_an_installed_wheel_lists_packs_and_recovers_a_face(installed, tmp_path):
    bin_dir, env = installed
    where = _run([str(bin_dir / "python"), "-c", "import explainer.packs.catalogue as c; print(c.__file__); "
                  "print(c.TRANSFORMERS_DIR)"], tmp_path, env).stdout.split()
    module, transformers = where
    assert str(ROOT) not in module and "site-packages" in module, where
    # the transformers come from the wheel's data files, inside the fresh venv, never from this tree
    assert str(ROOT) not in transformers and transformers.startswith(str(bin_dir.parent)), where
    listed = _run([str(bin_dir / "facexplain"), "pack", "list"], tmp_path, env).stdout
    assert all(name in listed for name in ("dlib-dcgan", "mobilefacenet-dcgan", "faceplugin-dcgan"))
    photo = assets.path("orl") / "s31" / "1.pgm"
    out = tmp_path / "recovered.png"
    said = _run([str(bin_dir / "facexplain"), "recover", str(photo), "--out", str(out), "--refine-steps", "0"],
                tmp_path, env).stdout
    assert out.is_file() and out.stat().st_size > 1000 and "score between the recovered face" in said


def _imported_top_level(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"explainer", "training", "__future__"}


def _requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_the_package_imports_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(s) for s in project["dependencies"]}
    declared |= {_requirement_name(s) for extra in project["optional-dependencies"].values() for s in extra}
    # What a declared package requires itself is installed with it (gradio brings gradio_client and httpx).
    for name in list(declared):
        try:
            declared |= {_requirement_name(r) for r in importlib.metadata.requires(name) or [] if "extra ==" not in r}
        except importlib.metadata.PackageNotFoundError:
            pass
    providers = {**importlib.metadata.packages_distributions(), "dlib": ["dlib-bin"]}  # dlib-bin's wheel names no top level
    # Imported only where their absence is handled (optional reference runtimes, the opt-in insightface
    # setting installed by the Makefile for the tests).
    optional = {"insightface", "ai_edge_litert", "tflite_runtime", "tensorflow", "lpips"}
    missing = {}
    for module in _imported_top_level(ROOT / "explainer") - optional:
        distributions = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not distributions & declared:
            missing[module] = sorted(distributions)
    assert missing == {}
