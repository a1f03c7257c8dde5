"""`analyze` under torchrun: two CPU processes (gloo) share the photos out and rank 0 writes the same JSON,
byte for byte, that one process writes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from explainer import assets

ROOT = Path(__file__).resolve().parents[1]


def _photos(folder: Path) -> Path:
    """14 ORL photos of 7 held-out people: enough for mutual information (12), in four chunks of 4."""
    folder.mkdir()
    for person in range(31, 38):
        for shot in (1, 2):
            shutil.copy(assets.path("orl") / f"s{person}" / f"{shot}.pgm", folder / f"s{person}_{shot}.pgm")
    return folder


def _analyze(launcher: list[str], data: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "FACEXPLAIN_ATTRIBUTE_THREADS": "1"}
    command = [*launcher, "-m", "explainer.cli", "analyze", "--pack", "dlib-dcgan", "--data", str(data),
               "--json", str(out), "--chunk", "4", "--n-boot", "20"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_two_processes_write_the_single_process_json(tmp_path):
    data = _photos(tmp_path / "photos")
    one = _analyze([sys.executable], data, tmp_path / "one.json")
    assert one.returncode == 0, one.stderr[-3000:]
    two = _analyze([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], data,
                   tmp_path / "two.json")
    assert two.returncode == 0, two.stderr[-3000:]
    single, sharded = (tmp_path / "one.json").read_bytes(), (tmp_path / "two.json").read_bytes()
    assert b'"chunk": 4' in single and b'"n_images": 14' in single
    assert sharded == single
