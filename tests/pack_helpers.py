"""Small real inputs for the pack tests: ONNX recognizers built with onnx.helper, and a ready pack on disk
made without training (for the app tests, which only need a pack to offer)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from explainer import assets


def faceplugin_onnx() -> Path:
    """The real ONNX recognizer the offline assets hold (faceplugin's fr_feature.onnx, 512-D)."""
    return assets.path("faceplugin-feature")


def conv_onnx(path: Path, size: int = 112, dim: int = 8, constant: bool = False, seed: int = 0) -> Path:
    """A one-conv 'recognizer' [N, 3, size, size] -> [N, dim]: 3x3 conv, global average pool, flatten.
    constant: zero weights and a fixed bias, so every face gets the same embedding (separates nobody)."""
    rng = np.random.default_rng(seed)
    weight = np.zeros((dim, 3, 3, 3), np.float32) if constant else rng.normal(size=(dim, 3, 3, 3)).astype(np.float32)
    bias = rng.uniform(0.5, 1.5, size=dim).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "weight", "bias"], ["features"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["embedding"])],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def ready_pack(name: str, seed: int = 0) -> Path:
    """A ready pack on disk ($FACEXPLAIN_PACKS/NAME) around fr_feature.onnx, with an untrained transformer
    drawn with `seed`: what `pack create` leaves, without its minutes of calibration and training."""
    import dataclasses
    import shutil

    from explainer.generation.registry import load_decoder
    from explainer.generation.transformer import LatentTransformer, TransformerConfig
    from explainer.packs.catalogue import save_transformer
    from explainer.packs.store import READY, PackManifest, pack_dir, write_manifest
    from explainer.packs.user_recognizers import describe_file, write_spec

    directory = pack_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "recognizer.onnx"
    shutil.copyfile(faceplugin_onnx(), target)
    spec, model = describe_file(target, name)
    calibration = {"value": 0.4, "fmr": 1e-3, "source": "test value, not calibrated", "auc": 1.0, "n_genuine": 0,
                   "n_impostor": 0}
    write_spec(dataclasses.replace(spec, file=target.name, threshold=calibration), directory)
    decoder = load_decoder("dcgan-digiface")
    torch.manual_seed(seed)
    transformer = LatentTransformer(TransformerConfig(model.embedding_dim, *decoder.latent_shape, tanh=True),
                                    decoder.mean_latent)
    save_transformer(directory / "transformer.pt", transformer, {"decoder": "dcgan-digiface", "test": True})
    write_manifest(PackManifest(name=name, kind="user", description="a test pack (untrained transformer)",
                                decoder="dcgan-digiface", training_config="none", status=READY,
                                files_sha256={target.name: spec.sha256}, calibration=calibration))
    return directory
