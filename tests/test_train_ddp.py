"""Two CPU processes under torchrun (gloo): DDP keeps both ranks' networks identical while each rank
trains on its own share of the faces."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = """
import sys, torch
from pathlib import Path
torch.set_num_threads(1)
from training.configs import get_config
from training import train_decoder
out = Path(sys.argv[1])
config = get_config("cpu-tiny", "decoder").override(data=sys.argv[2], kimg=0.016)  # 2 steps of 2 x 4

def keep(models):
    rank = torch.distributed.get_rank()
    torch.save({name: m.state_dict() for name, m in models.items()}, out / f"rank{rank}.pt")

train_decoder.train(config, out, inspect=keep)
"""


def test_two_ranks_stay_identical(tmp_path, tiny_face_folder):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "ddp"
    out.mkdir()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), str(out), str(tiny_face_folder)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("g", "d", "g_ema"):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), f"{part}.{key} differs between ranks"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["world_size"] == 2 and checkpoint["step"] == 2
    # the global batch is both ranks' images: 2 steps x 4 x 2
    assert json.loads((out / "stats.jsonl").read_text().splitlines()[-1])["kimg"] == 0.016
    # and the ranks did train: weights moved from the shared initialisation
    assert not torch.equal(checkpoint["g"]["conv1.conv.weight"], checkpoint["g_ema"]["conv1.conv.weight"])
