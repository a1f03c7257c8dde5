"""The app's events: thin calls into explainer.pipeline, shaped for the UI. No layout here (that is app.py).

Each handler takes what its Gradio inputs deliver (an upload payload, a path or an array for photos) and
returns a tuple in the order of its outputs, so it runs the same in a test, through gradio_client and in
a browser. Errors facexplain raises on purpose become gr.Error with the library's plain-language
message; uploads are deleted when the request ends, whatever happened.
"""
from __future__ import annotations

import functools
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from explainer import pipeline, reports
from explainer.app.uploads import Upload, discard, read_photo
from explainer.errors import FacexplainError
from explainer.packs import DEFAULT_PACK, PACKS

ATTACKS = {"pgd": "PGD (white-box, on this model)", "transfer": "Transfer (crafted on another model)"}
# Recovered and derived images of the explain tab, in output order, with the label each is shown under.
EXPLAIN_IMAGES = {
    "probe_aligned": "Probe, aligned as the model sees it",
    "reference_aligned": "Reference, aligned",
    "recovered_probe": "Recovered from the probe's embedding",
    "recovered_reference": "Recovered from the reference's embedding",
    "recovered_counterfactual": "Recovered from the counterfactual's embedding",
    "counterfactual": "Counterfactual probe (the smallest change that flips the decision)",
    "perturbation_amplified": "The change, AMPLIFIED for visibility (the real one is far fainter)",
}
# What the compare tab can run over: an offline data set of held-out people, or the explain tab's pair.
COMPARE_SOURCES = {"orl": "ORL held-out people (s31-s40)", "pair": "The uploaded pair"}
# Held-out faces shown recovered by each model on the compare tab.
GALLERY_FACES = [("orl", 31, 1), ("orl", 33, 1), ("orl", 36, 1), ("orl", 39, 1)]
# Report files kept for download only this long: Gradio copies them into its own cache (which its
# delete_cache schedule empties) as soon as the handler returns.
REPORT_TTL_S = 600


def _stage_reporter(progress):
    """The pipeline's progress(fraction, stage) as a Gradio progress bar (a no-op outside an event)."""
    def report(fraction: float, stage: str) -> None:
        progress(float(fraction), desc=stage)
    return report


def _plain_error(error: FacexplainError) -> gr.Error:
    return gr.Error(str(error), title=_ERROR_TITLES.get(type(error).__name__, "Cannot explain this pair"),
                    print_exception=False)


_ERROR_TITLES = {
    "NoFaceError": "No face found",
    "FaceTooSmallError": "Face too small",
    "ImageError": "Photo unreadable or too large",
    "UploadMissing": "Photo no longer on the server",
}


def _fmr_words(fmr: float | None) -> str:
    if not fmr:
        return "the model's published threshold (its false-match rate is not known)"
    return f"a false-match rate of {fmr:g} (about 1 in {round(1 / fmr):,} different-person pairs accepted)"


def decision_markdown(expl) -> str:
    """The decision in words: outcome, score against threshold, what it corresponds to, the counterfactual."""
    d, cf = expl.decision, expl.counterfactual
    euclidean = d["metric"] == "euclidean"
    score = "distance" if euclidean else "cosine similarity"
    rule = "at most" if euclidean else "at least"
    lines = [f"## {'Match' if d['match'] else 'No match'}",
             f"**{score.capitalize()} {d['similarity']:.3f}**; the model says *same person* at a {score} "
             f"{rule} **{d['threshold']:.3f}**, the threshold set at {_fmr_words(d.get('fmr'))}."]
    if cf:
        flipped = "flips the decision" if cf.get("flipped") else "did **not** flip the decision"
        lines.append(f"Counterfactual ({ATTACKS.get(cf.get('attack'), cf.get('attack'))}): a change of at most "
                     f"{cf['linf_eps'] * 255:.1f}/255 per pixel (L2 {cf['l2']:.3f}) {flipped}; "
                     f"its {score} to the reference is {cf['similarity']:.3f}.")
        if cf.get("transferred") is not None:
            lines.append(f"Crafted on another model, it {'also' if cf['transferred'] else 'did not'} "
                         "transfer to this one.")
    top = sorted(expl.significance.items(), key=lambda kv: -kv[1])
    named = [(name, s) for name, s in top if expl.groups.get(name) != "lbp" and np.isfinite(s)][:3]
    if named:
        lines.append("Attributes the flip moved most (s_a): "
                     + ", ".join(f"**{name.replace('_', ' ')}** {s:.2f}" for name, s in named) + ".")
    lines += [f"> {note}" for note in expl.notes]
    return "\n\n".join(lines)


def summary(expl) -> dict:
    """The decision, counterfactual and notes as plain data (the full record is in the JSON report)."""
    return {"decision": expl.decision, "counterfactual": expl.counterfactual, "notes": list(expl.notes)}


@dataclass
class Handlers:
    """The app's handlers, with what they need to know about the running app.

    upload_folder: where Gradio stores uploads (only files inside it are ever deleted);
    keep_digests: sha256 of the example photos, which are public and must survive a request;
    work_dir: where report files are written for download.
    """

    upload_folder: Path = field(default_factory=lambda: Path(gr.utils.get_upload_folder()))
    keep_digests: frozenset[str] = frozenset()
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facexplain-app-")))

    # -- explain a match -----------------------------------------------------------------------------
    def explain(self, probe: Upload, reference: Upload, pack: str = DEFAULT_PACK, attack: str = "pgd",
                seed: float = 0, progress=gr.Progress()) -> tuple:
        """Outputs: decision (Markdown), summary (JSON), the EXPLAIN_IMAGES, s_a figure, LBP heatmap,
        JSON report, HTML report."""
        try:
            probe_pixels = read_photo(probe, "probe photo")
            reference_pixels = read_photo(reference, "reference photo")
            expl = pipeline.explain_pair(probe_pixels, reference_pixels, pack=pack, attack=attack,
                                         seed=int(seed), progress=_stage_reporter(progress))
            saved = expl.save(self._report_dir())
        except FacexplainError as error:
            raise _plain_error(error) from error
        finally:
            discard([probe, reference], self.upload_folder, self.keep_digests)
        for note in expl.notes:
            gr.Warning(note)
        images = [expl.images[name] for name in EXPLAIN_IMAGES]
        return (decision_markdown(expl), summary(expl), *images, reports.significance_figure(expl),
                reports.lbp_heatmap_figure(expl), str(saved["report.json"]), str(saved["report.html"]))

    # -- compare models ------------------------------------------------------------------------------
    def compare(self, pack_a: str, pack_b: str, source: str = "orl", probe: Upload | None = None,
                reference: Upload | None = None, progress=gr.Progress()) -> tuple:
        """Outputs: a short reading of the differences (Markdown), the figure, recovered faces per model
        (gallery of (image, caption))."""
        try:
            if pack_a == pack_b:
                raise FacexplainError("Choose two different packs to compare.")
            if source == "pair":
                try:
                    return self._compare_on_pair(pack_a, pack_b, probe, reference, progress)
                finally:
                    discard([probe, reference], self.upload_folder, self.keep_digests)
            if source not in COMPARE_SOURCES:
                raise FacexplainError(f"Unknown data set {source!r}; choose one of {', '.join(COMPARE_SOURCES)}.")
            comparison = _cached_comparison((pack_a, pack_b), source, _stage_reporter(progress))
            gallery = [item for pack in (pack_a, pack_b) for item in _recovered_gallery(pack)]
        except FacexplainError as error:
            raise _plain_error(error) from error
        return read_differences(comparison), reports.comparison_figure(comparison), gallery

    def _compare_on_pair(self, pack_a, pack_b, probe, reference, progress) -> tuple:
        probe_pixels = read_photo(probe, "probe photo")
        reference_pixels = read_photo(reference, "reference photo")
        explanations = {}
        for k, pack in enumerate((pack_a, pack_b)):
            def stage(fraction, text, k=k, pack=pack):
                progress((k + float(fraction)) / 2, desc=f"{pack}: {text}")
            explanations[pack] = pipeline.explain_pair(probe_pixels, reference_pixels, pack=pack, progress=stage)
        gallery = [(expl.images[name], f"{pack}: {EXPLAIN_IMAGES[name].lower()}")
                   for pack, expl in explanations.items()
                   for name in ("recovered_probe", "recovered_reference", "recovered_counterfactual")]
        return read_pair_differences(explanations), pair_significance_figure(explanations), gallery

    def _report_dir(self) -> Path:
        """A fresh folder for one request's report; folders older than REPORT_TTL_S are removed."""
        now = time.time()
        for old in self.work_dir.glob("report-*"):
            if now - old.stat().st_mtime > REPORT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.work_dir / f"report-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        return folder

    def close(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def pack_choices() -> list[tuple[str, str]]:
    return [(f"{name}: {spec.description}", name) for name, spec in PACKS.items()]


def attack_choices() -> list[tuple[str, str]]:
    return [(label, name) for name, label in ATTACKS.items()]


# -- compare helpers ---------------------------------------------------------------------------------
_COMPARISONS: dict[tuple, object] = {}


def _cached_comparison(packs: tuple[str, str], data: str, progress) -> object:
    """compare_models over an offline data set, computed once per process (it takes a while)."""
    key = (packs, data)
    if key not in _COMPARISONS:
        _COMPARISONS[key] = pipeline.compare_models(list(packs), data=data, seed=0, progress=progress)
    return _COMPARISONS[key]


@functools.lru_cache(maxsize=None)
def _recovered_gallery(pack_name: str) -> tuple[tuple[np.ndarray, str], ...]:
    """GALLERY_FACES recovered by one pack (feed-forward: what the transformer alone reads off the embedding)."""
    from explainer import assets
    from explainer.generation.frame import to_uint8
    from explainer.packs import load_pack

    pack = load_pack(pack_name)
    paths = [assets.path(data) / f"s{subject}" / f"{photo}.pgm" for data, subject, photo in GALLERY_FACES]
    with torch.no_grad():
        faces = to_uint8(pack.recover(pack.embed(paths)).images)
    return tuple((face, f"{pack_name}: ORL s{subject}") for face, (_, subject, _) in zip(faces, GALLERY_FACES))


def read_differences(comparison) -> str:
    """A few sentences on where the two models differ, from their MI intervals (not their point values)."""
    reports_by_pack = comparison.reports
    (name_a, report_a), (name_b, report_b) = reports_by_pack.items()
    lines, clear = [], []
    for attr, a in report_a.mi.items():
        b = report_b.mi.get(attr)
        if b is None:
            continue
        if a["ci_low"] > b["ci_high"]:
            clear.append((a["value"] - b["value"], attr, name_a, name_b, a, b))
        elif b["ci_low"] > a["ci_high"]:
            clear.append((b["value"] - a["value"], attr, name_b, name_a, b, a))
    clear.sort(reverse=True)
    for _, attr, more, less, hi, lo in clear[:4]:
        lines.append(f"- **{attr.replace('_', ' ')}**: `{more}` keeps more ({hi['value']:.2f}, "
                     f"[{hi['ci_low']:.2f}, {hi['ci_high']:.2f}]) than `{less}` ({lo['value']:.2f}, "
                     f"[{lo['ci_low']:.2f}, {lo['ci_high']:.2f}]).")
    if not clear:
        return (f"No attribute separates `{name_a}` from `{name_b}`: every pair of 95 % intervals overlaps, so "
                "on this data the two models keep the same attributes as far as can be told.")
    head = (f"{len(clear)} attribute{'s' * (len(clear) != 1)} separate the two models (non-overlapping 95 % "
            "intervals of mutual information, in bits); the largest differences:")
    return "\n".join([head, *lines])


def read_pair_differences(explanations: dict) -> str:
    """How each model decided the uploaded pair, and which attributes its counterfactual moved most."""
    lines = []
    for pack, expl in explanations.items():
        d = expl.decision
        top = [name for name, s in sorted(expl.significance.items(), key=lambda kv: -kv[1])
               if expl.groups.get(name) != "lbp" and np.isfinite(s)][:3]
        lines.append(f"- `{pack}`: **{'match' if d['match'] else 'no match'}** ({d['metric']} "
                     f"{d['similarity']:.3f} against {d['threshold']:.3f}); its counterfactual moved most: "
                     f"{', '.join(t.replace('_', ' ') for t in top) or 'nothing measurable'}.")
    agree = len({e.decision["match"] for e in explanations.values()}) == 1
    head = "The two models " + ("agree" if agree else "**disagree**") + " on this pair."
    return "\n".join([head, *lines])


def pair_significance_figure(explanations: dict):
    """s_a of the named attributes for each model on one pair, side by side."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for pack, expl in explanations.items():
        names = [n for n in expl.significance if expl.groups.get(n) != "lbp"]
        figure.add_bar(name=pack, x=names, y=[expl.significance[n] for n in names])
    figure.update_layout(barmode="group", title="Attribute significance s_a on the uploaded pair, per model",
                         yaxis_title="s_a", template="plotly_white")
    return figure
