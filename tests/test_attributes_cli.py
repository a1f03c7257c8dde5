"""`facexplain attributes`: JSON shape for photos and for recovered (decoder-frame) faces."""
from __future__ import annotations

import json

import cv2
import numpy as np
import torch
from PIL import Image

from explainer import assets
from explainer.attributes import estimators
from explainer.cli import main


def test_attributes_json_for_photos(tmp_path):
    photo = str(assets.path("orl") / "s3" / "2.pgm")
    out = tmp_path / "attributes.json"
    assert main(["attributes", photo, "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    entry = payload["images"][photo]
    assert set(entry) == {e.name for e in estimators()}  # the file is written with sorted keys
    for e in estimators():
        assert set(entry[e.name]) == {"value", "valid"} and len(entry[e.name]["value"]) == e.dim
        if entry[e.name]["valid"]:
            assert all(isinstance(v, float) for v in entry[e.name]["value"])
        else:
            assert all(v is None for v in entry[e.name]["value"])
    assert entry["age"]["valid"] and entry["shape"]["valid"] and entry["expression_3dmm"]["valid"]
    assert len(entry["shape"]["value"]) == 40 and len(entry["expression_3dmm"]["value"]) == 10  # BFM coefficients


def test_attributes_json_for_recovered_faces(tmp_path):
    from explainer.packs.catalogue import load_decoder

    decoder = load_decoder("dcgan-digiface")
    with torch.no_grad():
        face = decoder(decoder.sample_latents(1, torch.Generator().manual_seed(2)))[0]
    pixels = (face.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "recovered.png"
    Image.fromarray(cv2.resize(pixels, (256, 256), interpolation=cv2.INTER_CUBIC)).save(path)
    out = tmp_path / "recovered.json"
    assert main(["attributes", str(path), "--recovered", "--pack", "dlib-dcgan", "--json", str(out)]) == 0
    entry = json.loads(out.read_text())["images"][str(path)]
    assert len(entry) == 84 and entry["lbp_r3_c3"]["valid"]

    odd = tmp_path / "odd.png"
    Image.fromarray(np.zeros((100, 90, 3), np.uint8)).save(odd)
    assert main(["attributes", str(odd), "--recovered"]) == 1  # not a decoder frame: a clear error
