"""Writing an explanation to a folder: the PNGs, report.json, report.html and timings.json."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def save_explanation(explanation, out_dir) -> dict[str, Path]:
    """Write report.json, report.html, one PNG per image and timings.json (kept apart: not reproducible)."""
    from explainer.reports.html import write_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, image in sorted(explanation.images.items()):
        path = out / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")  # lossless
        written[name] = path
    written["report.json"] = out / "report.json"
    written["report.json"].write_text(explanation.to_json())
    written["report.html"] = write_html(explanation, out / "report.html")
    written["timings.json"] = out / "timings.json"
    written["timings.json"].write_text(json.dumps({k: round(v, 4) for k, v in explanation.seconds.items()}, indent=2)
                                       + "\n")
    return written
