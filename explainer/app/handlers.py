"""The app's events: thin calls into explainer.jobs.pipeline, shaped for the UI. No layout here (that is app.py).

Each handler takes what its Gradio inputs deliver (an upload payload, a path or an array for photos) and
returns a tuple in the order of its outputs, so it runs the same in a test, through gradio_client and in
a browser. Errors facexplain raises on purpose become gr.Error with the library's plain-language
message; uploads are deleted when the last request that used them ends, whatever happened. Each event
has an `admit_*` validator, run when a request asks to join the queue: it refuses plainly when the queue
is full, and holds the request's uploads until its handler has finished with them.
"""
from __future__ import annotations

import functools
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import numpy as np
import torch

from explainer import faces, reports
from explainer.app import comparisons
from explainer.app.evidence import evidence_figures, evidence_markdown
from explainer.app.limits import checked, cpu_limit
from explainer.app.progress import StageReporter, StageTimes
from explainer.app.settings import AppSettings
from explainer.app.uploads import Upload, UploadLedger, read_photo, upload_path
from explainer.app.wording import (
    ATTACKS,
    COMPARE_SOURCES,
    ERROR_TITLES,
    EXPLAIN_IMAGES,
    SLIDERS,
    TRUST_FACES,
    decision_markdown,
    is_face_note,
    named_ranking,
    read_differences,
    read_pair_differences,
    s_a_text,
    trust_markdown,
)
from explainer.attributes.names import label
from explainer.core.errors import FaceTooSmallError, FacexplainError, NoFaceError
from explainer.jobs import pipeline
from explainer.lab.audit import AuditLog
from explainer.lab.case import case_number
from explainer.lab.records import AnalysisRecord, audited, input_sha256
from explainer.packs.catalogue import DEFAULT_PACK
from explainer.reports.pdf import write_pdf
from explainer.reports.summary import summary_markdown

GALLERY_SIZE = 4  # faces of the data set shown recovered by each model on the compare tab
# Report files are kept for download only this long: Gradio copies them into its own cache (which its
# delete_cache schedule empties) as soon as the handler returns.
REPORT_TTL_S = 600
def _stage_reporter(progress, start: float = 0.0, span: float = 1.0, prefix: str = ""):
    """The pipeline's progress(fraction, stage) as a Gradio progress bar (a no-op outside an event)."""
    def report(fraction: float, stage: str) -> None:
        progress(start + span * float(fraction), desc=prefix + stage.replace("_", " "))
    return report


def _plain_error(error: FacexplainError) -> gr.Error:
    return gr.Error(str(error), title=ERROR_TITLES.get(type(error).__name__, "Cannot do this"),
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


def _photo(value: Upload, role: str, max_pixels: int | None = None) -> tuple[np.ndarray, object]:
    """An upload checked and decoded (plain errors naming the photo), and what to hand the pipeline: the
    file itself where there is one, so the report's provenance has the sha256 of the file as uploaded."""
    pixels = read_photo(value, role, max_pixels)
    path = upload_path(value)
    return pixels, (str(path) if path is not None else pixels)


# -- how results read --------------------------------------------------------------------------------------
def summary(expl) -> dict:
    """The decision, counterfactual, top attributes and notes as plain data (the full record: report.json)."""
    return {"decision": expl.decision.as_dict(), "counterfactual": expl.counterfactual.as_dict(),
            "top_attributes": {n: expl.significance.get(n) for n in named_ranking(expl)[:10]},
            "significance_interval": {n: expl.significance_interval[n] for n in named_ranking(expl)[:10]},
            "significant": expl.significant, "unresolved": expl.unresolved, "stability": expl.stability.as_dict(),
            "notes": list(expl.notes)}


def _no_ranking_figure() -> go.Figure:
    """In place of an s_a chart when no counterfactual flipped the decision: no bars, only why."""
    figure = go.Figure()
    figure.add_annotation(text="No counterfactual flipped<br>the decision: no attribute<br>is ranked (see the summary).",
                          xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 15})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def _significance_figure(expl):
    """The s_a chart; when no named attribute could be measured it says so instead of staying blank."""
    if not expl.counterfactual.flipped:
        return _no_ranking_figure()
    figure = reports.significance_figure(expl)
    if not named_ranking(expl):
        figure.add_annotation(text="No named attribute could be<br>measured on these recovered<br>faces; the LBP "
                                   "texture map<br>beside this still can.",
                              xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 15})
    return figure


def pair_significance_figure(explanations: dict):
    """s_a of the named attributes for each model on the same pair, side by side, with 95 % intervals."""
    first = next(iter(explanations.values()))
    names = [n for n in first.groups if first.groups[n] != "lbp"]
    figure = go.Figure()
    for k, (pack, expl) in enumerate(explanations.items()):
        ys = [expl.significance.get(n) for n in names]
        intervals = [expl.significance_interval.get(n) for n in names]
        figure.add_bar(x=[label(n) for n in names], y=ys, name=pack, marker_color=reports.figures.PACK_COLOURS[k],
                       error_y={"type": "data", "symmetric": False,
                                "array": [None if i is None else i[1] - y for i, y in zip(intervals, ys)],
                                "arrayminus": [None if i is None else y - i[0] for i, y in zip(intervals, ys)]})
    figure.add_hline(y=1.0, line_dash="dash", line_color="black")
    figure.update_layout(title="Attribute significance s_a on the uploaded pair, per model", barmode="group",
                         yaxis_title="s_a", xaxis_title="attribute", xaxis_automargin=True, template="plotly_white",
                         height=520)
    return figure


# -- the handlers ------------------------------------------------------------------------------------------
@dataclass
class Handlers:
    """The app's handlers, with what they need to know about the running app.

    upload_folder: where Gradio stores uploads (only files inside it are ever deleted);
    keep_digests: sha256 of the example photos, which are public and must survive a request;
    work_dir: where report files are written for download;
    settings: the app's limits (queue, CPU time, pixels);
    waiting: how many requests wait in the app's queue now (app.py reads Gradio's; none in direct calls);
    audit: the lab's audit log (explainer.lab), one line per analysis; None: no audit trail.
    """

    upload_folder: Path = field(default_factory=lambda: Path(gr.utils.get_upload_folder()))
    keep_digests: frozenset[str] = frozenset()
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facexplain-app-")))
    settings: AppSettings = field(default_factory=AppSettings)
    waiting: Callable[[], int] = lambda: 0
    audit: AuditLog | None = None

    def __post_init__(self) -> None:
        self.uploads = UploadLedger(self.upload_folder, self.keep_digests, self.settings.upload_max_age_s)
        self._typical_s = 10.0  # seconds per request, for the expected wait; updated as requests finish
        self.stage_times = StageTimes()  # per (pack, attack): the progress bar's time left

    # -- admission (Gradio validators: run when a request asks to join the queue) ----------------------
    def _admit(self, uploads: list[Upload | None], arguments: int) -> list[dict]:
        ahead = self.waiting()
        if ahead >= self.settings.queue_size:
            self.uploads.hold(uploads)
            self.uploads.release(uploads)  # this request is over: its uploads go unless others need them
            minutes = max(1, round(ahead * self._typical_s / self.settings.concurrency / 60))
            message = (f"The app is busy: {ahead} requests are already waiting (about {minutes} min of work). "
                       f"Nothing of yours was kept; please try again in {minutes} min.")
            return [gr.validate(False, message)] + [gr.validate(True, "")] * (arguments - 1)
        self.uploads.hold(uploads)
        return [gr.validate(True, "")] * arguments

    def admit_explain(self, probe: Upload, reference: Upload, pack: str = DEFAULT_PACK, attack: str = "pgd",
                      seed: float = 0, case: str | None = None) -> list[dict]:
        return self._admit([probe, reference], 6)

    def admit_compare(self, pack_a: str, pack_b: str, source: str = "orl", probe: Upload | None = None,
                      reference: Upload | None = None, case: str | None = None) -> list[dict]:
        # Only a comparison on the pair uses (and then deletes) the uploads.
        return self._admit([probe, reference] if source == "pair" else [], 6)

    def _record(self, endpoint: str, request, photos: dict[str, Upload | None], parameters: dict) -> AnalysisRecord:
        """The audit line of this request, begun before anything can fail (inputs hashed only when logging)."""
        inputs = {role: input_sha256(value) for role, value in photos.items()} if self.audit is not None else {}
        return AnalysisRecord(endpoint, user=getattr(request, "username", None), inputs=inputs, parameters=parameters)

    def _timed(self, started: float) -> None:
        self._typical_s = 0.8 * self._typical_s + 0.2 * (time.monotonic() - started)

    def explain(self, probe: Upload, reference: Upload, pack: str = DEFAULT_PACK, attack: str = "pgd",
                seed: float = 0, case: str | None = None, request: gr.Request = None, progress=gr.Progress()) -> tuple:
        """Outputs: decision (Markdown), summary (JSON), the EXPLAIN_IMAGES, s_a figure, LBP heat map,
        JSON report, HTML report; then the evidence accordion: LR and quality (Markdown), Tippett and ECE
        plots, PDF report; then the summary in three sentences (Markdown), the SLIDERS (image pairs) and,
        last, the second model's line on each recovered face (Markdown). `case`: the case number, in the
        reports and the audit line; `request`: Gradio's (who signed in)."""
        photos, started, limit = {}, time.monotonic(), self.settings.max_pixels
        try:
            record = self._record("explain", request, {"probe": probe, "reference": reference},
                                  {"pack": pack, "attack": attack, "seed": seed})
            with audited(self.audit, record):
                record.case = case_number(case)
                photos["probe photo"], probe_source = _photo(probe, "probe photo", limit)
                photos["reference photo"], reference_source = _photo(reference, "reference photo", limit)
                stages = StageReporter(progress, self.stage_times, (str(pack), str(attack)))
                with cpu_limit(self.settings.cpu_seconds, "This explanation") as check:
                    expl = pipeline.explain_pair(probe_source, reference_source, pack=pack, attack=attack,
                                                 seed=int(seed or 0), progress=checked(stages, check))
                expl.case = record.case
                reports_started = stages.reports()
                trust = _trust(expl, pack, {"probe": probe_source, "reference": reference_source})
                saved = self._save_report(expl)
                stages.finish(expl.seconds, reports_started)
                record.explained(expl, saved)
            self._timed(started)
        except (NoFaceError, FaceTooSmallError) as error:
            raise _plain_error(_which_photo(error, photos)) from error
        except FacexplainError as error:
            raise _plain_error(error) from error
        finally:
            self.uploads.release([probe, reference])
        for note in expl.notes:
            if is_face_note(note):
                gr.Warning(note)  # several faces: say which one was used
        return (decision_markdown(expl), summary(expl), *[expl.images[name] for name in EXPLAIN_IMAGES],
                _significance_figure(expl),
                reports.lbp_heatmap_figure(expl) if expl.counterfactual.flipped else _no_ranking_figure(),
                str(saved["report.json"]), str(saved["report.html"]),
                evidence_markdown(expl), *evidence_figures(expl), str(saved["report.pdf"]),
                summary_markdown(expl), *[(expl.images[a], expl.images[b]) for a, b, _ in SLIDERS.values()],
                trust)

    def compare(self, pack_a: str, pack_b: str, source: str = "orl", probe: Upload | None = None,
                reference: Upload | None = None, case: str | None = None, request: gr.Request = None,
                progress=gr.Progress()) -> tuple:
        """Outputs: a short reading of the differences (Markdown), the figure, recovered faces per model
        (a gallery of (image, caption)). Over a data set the result is cached; the uploads are only used,
        and then deleted, when `source` is "pair"."""
        on_pair = source == "pair"
        try:
            record = self._record("compare", request, {"probe": probe, "reference": reference} if on_pair else {},
                                  {"packs": [pack_a, pack_b], "source": source})
            with audited(self.audit, record):
                record.case = case_number(case)
                if pack_a == pack_b:
                    raise FacexplainError("Choose two different packs to compare.")
                if source not in COMPARE_SOURCES:
                    raise FacexplainError(f"Unknown source {source!r}; choose one of {', '.join(COMPARE_SOURCES)}.")
                if on_pair:
                    return self._compare_on_pair(pack_a, pack_b, probe, reference, progress, record)
                comparison = comparisons.comparison((pack_a, pack_b), source,
                                                    progress=_stage_reporter(progress, 0.0, 0.9))
                record.compared(comparison)
                progress(0.95, desc="recovered faces")
                gallery = [*_photos_gallery(source), *_recovered_gallery(pack_a, source),
                           *_recovered_gallery(pack_b, source)]
        except FacexplainError as error:
            raise _plain_error(error) from error
        finally:
            if on_pair:  # whatever happened, the uploads go (unless another request still needs them)
                self.uploads.release([probe, reference])
        return read_differences(comparison), reports.comparison_figure(comparison), gallery

    def _compare_on_pair(self, pack_a: str, pack_b: str, probe: Upload, reference: Upload, progress,
                         record: AnalysisRecord) -> tuple:
        photos, limit = {}, self.settings.max_pixels
        photos["probe photo"], probe_source = _photo(probe, "probe photo", limit)
        photos["reference photo"], reference_source = _photo(reference, "reference photo", limit)
        explanations = {}
        try:
            for k, pack in enumerate((pack_a, pack_b)):
                with cpu_limit(self.settings.cpu_seconds, f"The explanation by {pack}") as check:
                    explanations[pack] = pipeline.explain_pair(
                        probe_source, reference_source, pack=pack,
                        progress=checked(_stage_reporter(progress, k / 2, 1 / 2, prefix=f"{pack}: "), check))
                record.explained(explanations[pack])
        except (NoFaceError, FaceTooSmallError) as error:
            raise _which_photo(error, photos) from error
        gallery = [(expl.images[name], f"{pack}: {EXPLAIN_IMAGES[name].lower()}") for pack, expl in explanations.items()
                   for name in ("recovered_probe", "recovered_reference", "recovered_counterfactual")]
        return read_pair_differences(explanations), pair_significance_figure(explanations), gallery

    def _save_report(self, expl) -> dict[str, Path]:
        """The report files in a fresh folder `report-*`, which appears only once complete: they are
        written in a hidden staging folder first, then renamed (atomic). Folders older than REPORT_TTL_S,
        and staging folders left by a crash, are removed."""
        now = time.time()
        for old in [*self.work_dir.glob("report-*"), *self.work_dir.glob(".staging-*")]:
            try:
                if now - old.stat().st_mtime > REPORT_TTL_S:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                pass  # another request removed it first
        name = uuid.uuid4().hex
        staging, folder = self.work_dir / f".staging-{name}", self.work_dir / f"report-{name}"
        staging.mkdir(parents=True)
        try:
            saved = expl.save(staging)
            saved["report.pdf"] = write_pdf(expl, staging / "report.pdf")
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {key: folder / path.relative_to(staging) for key, path in saved.items()}

    def close(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _trust(expl, pack: str, sources: dict) -> str:
    """The second model's line under each recovered face (wording.trust_markdown)."""
    from explainer.packs.catalogue import load_pack
    from explainer.packs.second_opinion import second_opinions

    loaded = load_pack(pack)
    names = list(TRUST_FACES)
    opinions = second_opinions(loaded, {n: expl.images[n] for n in names},
                               {n: sources[TRUST_FACES[n][0]] for n in names})
    return trust_markdown(opinions, loaded.recognizer.name)


def _gallery_paths(data: str) -> list[Path]:
    """GALLERY_SIZE photos of the data set, evenly spaced (different people in the sorted data sets)."""
    paths = pipeline.data_paths(data)
    return [paths[k * len(paths) // GALLERY_SIZE] for k in range(GALLERY_SIZE)]


@functools.lru_cache(maxsize=None)
def _photos_gallery(data: str) -> tuple[tuple[np.ndarray, str], ...]:
    return tuple((faces.load_image(path), f"photo: {path.parent.name}/{path.stem}") for path in _gallery_paths(data))


def _recovered_gallery(pack_name: str, data: str) -> tuple[tuple[np.ndarray, str], ...]:
    """The gallery photos recovered by one pack feed-forward (as the comparison recovers them), each
    captioned with the pack and the photo; remembered per version of the pack's files."""
    from explainer.packs.catalogue import pack_version

    return _recovered_gallery_of(pack_name, pack_version(pack_name), data)


@functools.lru_cache(maxsize=None)
def _recovered_gallery_of(pack_name: str, version: tuple, data: str) -> tuple[tuple[np.ndarray, str], ...]:
    from explainer.generation.frame import to_uint8
    from explainer.packs.catalogue import load_pack

    chosen = _gallery_paths(data)
    pack = load_pack(pack_name)
    with torch.no_grad():
        recovered = to_uint8(pack.recover(pack.embed(chosen)).images)
    return tuple((face, f"{pack_name}: {path.parent.name}/{path.stem}") for face, path in zip(recovered, chosen))


def pack_choices() -> list[tuple[str, str]]:
    """The built-in packs, then the user's packs on disk (`facexplain pack create`), as dropdown choices."""
    from explainer.packs.catalogue import pack_names, pack_spec

    return [(f"{name}: {pack_spec(name).description}", name) for name in pack_names()]


def fresh_pack_dropdowns(count: int = 3) -> list[gr.Dropdown]:
    """The pack dropdowns with the packs there are now, for every page load: a pack made with
    `facexplain pack create` while the app runs is offered without a restart."""
    choices = pack_choices()
    return [gr.Dropdown(choices=choices) for _ in range(count)]


def attack_choices() -> list[tuple[str, str]]:
    return [(label, name) for name, label in ATTACKS.items()]
