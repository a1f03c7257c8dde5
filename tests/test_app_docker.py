"""The Docker image, the Spaces files and `make demo` describe the same set-up (Docker cannot be built here)."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _makefile() -> tuple[dict[str, str], dict[str, tuple[list[str], list[str]]]]:
    """Variables and targets (prerequisites, recipe lines) of the Makefile, variables expanded."""
    variables: dict[str, str] = {}
    targets: dict[str, tuple[list[str], list[str]]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current:
            if not line.strip().startswith("#"):
                targets[current][1].append(line.strip())
            continue
        current = None
        if m := re.match(r"^([A-Z_]+)\s*[?:]?=\s*(.*)$", line):
            variables[m[1]] = m[2].strip()
        elif m := re.match(r"^([^\s#.][^:=]*):(?!=)\s*(.*)$", line):
            current = m[1].strip()
            targets[current] = (m[2].split(), [])

    def expand(text: str) -> str:
        while m := re.search(r"\$\(([A-Z_]+)\)", text):
            text = text[:m.start()] + variables[m[1]] + text[m.end():]
        return text

    variables = {k: expand(v) for k, v in variables.items()}
    return variables, {expand(t): ([expand(p) for p in pre], [expand(r) for r in rec])
                       for t, (pre, rec) in targets.items()}


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, argument) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _docker_env(instructions) -> dict[str, str]:
    env = {}
    for op, arg in instructions:
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arg))
    return env


def _front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("---\n")[1]
    return {k.strip(): v.strip().strip('"') for k, v in (line.split(":", 1) for line in block.splitlines())}


def test_dockerfile_sets_up_with_the_makefile_and_runs_what_make_demo_runs():
    variables, targets = _makefile()
    instructions = _dockerfile()
    runs = [arg for op, arg in instructions if op == "RUN"]
    # Set-up is exactly the Makefile's: `make setup` and no pip/npm/fetch step of the Dockerfile's own.
    assert "make setup" in runs
    assert not any(re.search(r"\bpip\b|\bnpm (install|pack)\b|facexplain assets", run) for run in runs), runs
    assert set(targets["setup"][0]) == {f"{variables['VENV']}/.installed", "assets"}
    # The container runs what `make demo` runs, after the same set-up.
    assert targets["demo"][0] == ["setup"]
    demo_command = [word for word in shlex.split(targets["demo"][1][-1]) if "=" not in word]
    cmd = dict(instructions)["CMD"]
    assert shlex.split(cmd.replace("[", "").replace("]", "").replace(",", " ")) == demo_command
    # ... with the same environment the recipe sets (analytics and Hub off).
    recipe_env = dict(w.split("=", 1) for w in shlex.split(targets["demo"][1][-1]) if "=" in w)
    env = _docker_env(instructions)
    assert recipe_env.items() <= env.items(), (recipe_env, env)
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False" and env["HF_HUB_OFFLINE"] == "1"


def test_dockerfile_follows_spaces_conventions():
    instructions = _dockerfile()
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert re.search(r"useradd\b.*-u 1000\b", runs)
    assert ("USER", "user") in instructions
    assert ("EXPOSE", "7860") in instructions
    env = _docker_env(instructions)
    assert env["GRADIO_SERVER_PORT"] == "7860" and env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    # The Python of the image is the one the README's Spaces front matter asks for.
    image = dict(instructions)["FROM"]
    assert image.startswith(f"python:{_front_matter()['python_version']}")
    # The system packages set-up needs are the ones CI installs for it.
    ci = (ROOT / ".ci" / "run").read_text()
    ci_setup_packages = re.search(r"apt-get install -y -q (nodejs npm)", ci)[1].split()
    assert set(ci_setup_packages) <= set(runs.split())


def test_spaces_files_match_the_project():
    front = _front_matter()
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["python_version"] == "3.11"
    assert (ROOT / front["app_file"]).is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["app"]
    # ... then the run-time packages `make setup` installs with --no-deps (insightface is for tests only).
    variables, targets = _makefile()
    no_deps = [re.search(r'--no-deps "([^"]+)"', line)[1] for line in targets[f"{variables['VENV']}/.installed"][1]
               if "--no-deps" in line]
    wanted += [spec for spec in no_deps if not spec.startswith("insightface")]
    listed = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed == wanted
    # Spaces install packages.txt with apt, one name per line and nothing else.
    assert (ROOT / "packages.txt").read_text().split() == ["nodejs", "npm"]


def test_spaces_build_with_the_gradio_the_tests_use():
    """sdk_version decides which Gradio a Space installs: the one installed here, which the tests ran with,
    and one the project's own requirement admits."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    pinned = _front_matter()["sdk_version"]
    assert pinned == version("gradio"), "set README's sdk_version to the installed Gradio (or install that one)"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (wanted,) = [Requirement(r) for r in project["optional-dependencies"]["app"] if r.startswith("gradio")]
    assert wanted.specifier.contains(pinned)
    # The README says how to deploy, and the rehearsal script it names exists and reads the same pin.
    readme = (ROOT / "README.md").read_text()
    assert "## Deploy on Hugging Face Spaces" in readme and "scripts/rehearse_spaces.sh" in readme
    assert "sdk_version" in (ROOT / "scripts" / "rehearse_spaces.sh").read_text()
