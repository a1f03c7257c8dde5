"""facexplain's web app: Gradio layout and wiring only; the logic is in explainer.app.

    python app.py        # serves http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

The main event is the API endpoint "/explain" (probe and reference first, the rest optional); the
README shows how to call it with gradio_client. Limits (queue, CPU time, pixels) are in
explainer/app/settings.py, each settable from the environment.
"""
from __future__ import annotations

import atexit
import os
import signal

from explainer.app.settings import AppSettings
from explainer.app.workspace import Workspace
from explainer.core.errors import FacexplainError
from explainer.lab.config import Lab

# Privacy first: no analytics, no version check, no Hub calls (set before gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SETTINGS = AppSettings.from_env()
try:  # sign-in and the audit trail of a lab deployment (off unless FACEXPLAIN_USERS_FILE / _AUDIT_LOG say)
    LAB = Lab.from_env()
except FacexplainError as error:
    raise SystemExit(f"facexplain cannot start: {error}") from None
# This run's folder; opening it deletes what crashed runs left (their uploads included).
WORKSPACE = Workspace(SETTINGS.state_dir)
atexit.register(WORKSPACE.close)
# Uploads and Gradio's file copies live in this run's folder unless the deployment chose a place.
os.environ.setdefault("GRADIO_TEMP_DIR", str(WORKSPACE.gradio))

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from explainer.app import about  # noqa: E402
from explainer.app.examples import digests, example_pairs  # noqa: E402
from explainer.app.handlers import (  # noqa: E402
    COMPARE_SOURCES,
    EXPLAIN_IMAGES,
    SLIDERS,
    Handlers,
    attack_choices,
    fresh_pack_dropdowns,
    pack_choices,
)
from explainer.app.uploads import UploadClaims  # noqa: E402
from explainer.app.wording import SLIDERS_HELP  # noqa: E402
from explainer.packs.catalogue import DEFAULT_PACK, PACKS  # noqa: E402

# Small recovered faces (64 px) are shown enlarged with visible pixels: enlarging must not look like
# detail the model never had.
# Recovered faces are capped at 3x their 64 px: larger, the blur of the decoder's faces would look
# like a display artefact rather than what the recovery has (no sharpening either).
CSS = """
.face-output img { width: 100%; height: 100%; min-height: 200px; object-fit: contain; image-rendering: pixelated; }
.recovered-face img { max-width: 192px; max-height: 192px; min-height: 0; margin: auto; }
.face-slider img { image-rendering: pixelated; object-fit: contain; }
"""
RECOVERED_IMAGES = ("recovered_probe", "recovered_reference", "recovered_counterfactual")


def _image(label: str, elem_id: str, recovered: bool = False) -> gr.Image:
    # PNG: lossless, so a counterfactual's few-levels perturbation survives (webp would destroy it).
    classes = ["face-output", "recovered-face"] if recovered else ["face-output"]
    return gr.Image(label=label, format="png", type="numpy", interactive=False, elem_id=elem_id,
                    elem_classes=classes, height=240, buttons=["download", "fullscreen"])


def _photo_input(label: str, elem_id: str) -> gr.Image:
    # type/image_mode: the handler gets the uploaded file as is and decodes it with facexplain's own
    # bounded loader (the events run with preprocess=False), so bad files get a plain-language error.
    return gr.Image(label=label, type="filepath", image_mode=None, format="png",
                    sources=["upload", "clipboard"], elem_id=elem_id)


def build_demo(handlers: Handlers | None = None, settings: AppSettings = SETTINGS) -> gr.Blocks:
    pairs = example_pairs()
    handlers = handlers or Handlers(keep_digests=digests(pairs), work_dir=WORKSPACE.reports, settings=settings,
                                    audit=LAB.audit)
    atexit.register(handlers.close)
    with gr.Blocks(title="facexplain", analytics_enabled=False, delete_cache=settings.delete_cache) as demo:
        gr.Markdown("# facexplain\nWhy did a face-recognition model say *match* or *no match*? Recovered "
                    "faces, a minimal counterfactual and the attributes it moved (Ren et al., IEEE TIFS 2024).")
        with gr.Tab("Explain a match", id="explain"):
            with gr.Row():
                probe = _photo_input("Probe photo", "probe")
                reference = _photo_input("Reference photo", "reference")
            with gr.Row():
                pack = gr.Dropdown(pack_choices(), value=DEFAULT_PACK, label="Model pack", elem_id="pack")
                attack = gr.Radio(attack_choices(), value="pgd", label="Counterfactual attack", elem_id="attack")
                seed = gr.Number(0, precision=0, label="Seed", elem_id="seed", minimum=0,
                                 info="Draws every random choice (each counterfactual member's random start or "
                                      "dropout masks). The same photos and seed give the same report.")
                case = gr.Textbox("", label="Case (optional)", max_lines=1, max_length=64, elem_id="case",
                                  placeholder="e.g. 2026-0117", info="Written into the reports (and the audit "
                                  "trail, where the lab keeps one). Letters, digits, space and - _ . : #")
            run = gr.Button("Explain", variant="primary", elem_id="explain-button")
            gr.Examples([[str(p.probe), str(p.reference)] for p in pairs], inputs=[probe, reference],
                        example_labels=[p.label for p in pairs], label="Example pairs (held-out people)",
                        elem_id="examples")
            # The result: three sentences first, then the faces side by side and the two charts; the
            # detail below in collapsible sections.
            in_short = gr.Markdown(elem_id="summary")
            sliders = {}
            gr.Markdown(SLIDERS_HELP, elem_id="sliders-help")
            with gr.Row(equal_height=True):
                for name, (_, _, label) in SLIDERS.items():
                    sliders[name] = gr.ImageSlider(label=label, type="numpy", format="png", interactive=False,
                                                   elem_id=name.replace("_", "-"), elem_classes=["face-slider"],
                                                   max_height=192, min_width=200, buttons=["download", "fullscreen"])
            trust = gr.Markdown(elem_id="recovered-trust")  # a second model's verdict on each recovered face
            with gr.Row():
                significance = gr.Plot(label="Attribute significance s_a", elem_id="significance-plot",
                                       show_label=False, scale=3, min_width=340)
                heatmap = gr.Plot(label="LBP texture significance over the face", elem_id="lbp-plot",
                                  show_label=False, scale=2, min_width=340)
            with gr.Accordion("The decision in detail: scores, counterfactuals, significant attributes", open=False,
                              elem_id="decision-accordion"):
                decision = gr.Markdown(elem_id="decision")
            with gr.Accordion("Every image: aligned inputs, recovered faces, counterfactual", open=False,
                              elem_id="images-accordion"):
                images = {}
                for title, names in [("Aligned inputs", ["probe_aligned", "reference_aligned"]),
                                     ("Recovered faces: what each embedding keeps",
                                      ["recovered_probe", "recovered_reference", "recovered_counterfactual"]),
                                     ("Counterfactual", ["counterfactual", "perturbation_amplified"])]:
                    gr.Markdown(f"### {title}")
                    with gr.Row():
                        for name in names:
                            images[name] = _image(EXPLAIN_IMAGES[name], name.replace("_", "-"),
                                                  name in RECOVERED_IMAGES)
            with gr.Accordion("Reports: JSON, HTML, PDF", open=True):
                with gr.Row():
                    report_json = gr.File(label="Report (JSON)", elem_id="report-json")
                    report_html = gr.File(label="Report (HTML)", elem_id="report-html")
                    report_pdf = gr.File(label="Report (PDF)", elem_id="report-pdf")
            with gr.Accordion("Evidence strength: likelihood ratio, image quality, FISWG components", open=False,
                              elem_id="evidence-accordion"):
                evidence = gr.Markdown(elem_id="evidence")
                with gr.Row():
                    tippett = gr.Plot(label="Tippett plot (people held out)", elem_id="tippett-plot")
                    ece = gr.Plot(label="ECE plot (people held out)", elem_id="ece-plot")
            with gr.Accordion("Decision as data", open=False):
                details = gr.JSON(elem_id="details")
        run.click(handlers.explain, inputs=[probe, reference, pack, attack, seed, case],
                  outputs=[decision, details, *[images[n] for n in EXPLAIN_IMAGES], significance, heatmap,
                           report_json, report_html, evidence, tippett, ece, report_pdf, in_short,
                           *sliders.values(), trust],
                  api_name="explain", preprocess=False, concurrency_id="models", validator=handlers.admit_explain)

        with gr.Tab("Compare models", id="compare"):
            gr.Markdown("Which attributes does each model keep? Mutual information between attributes of "
                        "photos and of their recovered faces, with 95 % bootstrap intervals; the first run "
                        "over a data set takes a while, later ones are cached.")
            with gr.Row():
                names = list(PACKS)
                pack_a = gr.Dropdown(pack_choices(), value=names[0], label="Model A", elem_id="pack-a")
                pack_b = gr.Dropdown(pack_choices(), value=names[1], label="Model B", elem_id="pack-b")
                source = gr.Radio([(label, key) for key, label in COMPARE_SOURCES.items()],
                                  value=next(iter(COMPARE_SOURCES)), label="Over", elem_id="compare-source")
            compare_run = gr.Button("Compare", variant="primary", elem_id="compare-button")
            reading = gr.Markdown(elem_id="reading")
            mi_plot = gr.Plot(label="Mutual information per attribute", elem_id="mi-plot")
            recovered = gr.Gallery(label="Photos, then the faces each model recovers from them", format="png", columns=4,
                                   elem_id="compare-gallery")
        compare_run.click(handlers.compare, inputs=[pack_a, pack_b, source, probe, reference, case],
                          outputs=[reading, mi_plot, recovered], api_name="compare", preprocess=False,
                          concurrency_id="models", validator=handlers.admit_compare)

        with gr.Tab("About", id="about"):
            gr.Markdown(about.METHOD)
            with gr.Accordion("Model cards", open=False):
                gr.Markdown(about.model_cards())
            with gr.Accordion("Licences of every model and data set", open=False):
                gr.Markdown(about.licences())
        # Packs are read from disk at every page load, not only when the app started.
        demo.load(fresh_pack_dropdowns, outputs=[pack, pack_a, pack_b], api_visibility="private", queue=False)
    # The validators refuse, with a plain message, at settings.queue_size waiting; Gradio's own bare
    # "Queue is full" is only a backstop far beyond that (validators run concurrently, so a burst can
    # overshoot by a few).
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=4 * settings.queue_size + 16)
    handlers.waiting = lambda: len(demo._queue)  # requests waiting now (Gradio's own count, as max_size uses)
    demo.handlers = handlers  # for launch_options() and the tests
    return demo


def launch_options(blocks: gr.Blocks | None = None, lab: Lab | None = None) -> dict:
    """How the app is served: private by default (used by __main__ and by the tests); with a users file,
    only to those who sign in (the pages and the API alike)."""
    blocks, lab = blocks or demo, lab or LAB
    # UploadClaims: the upload route tells the ledger of each stored file (shared uploads stay while needed).
    return dict(enable_monitoring=False, max_file_size=SETTINGS.max_file_bytes, share=False, ssr_mode=False,
                mcp_server=False, pwa=False, show_error=False, footer_links=["api"], css=CSS,
                app_kwargs={"middleware": [Middleware(UploadClaims, ledger=blocks.handlers.uploads)]},
                auth=lab.auth, auth_message="Sign in with your lab account." if lab.auth else None)


def _fetch_assets_on_spaces() -> None:
    """Hugging Face Spaces (sdk: gradio) run no set-up step of ours: fetch the packages on first start."""
    if os.environ.get("SPACE_ID"):
        from explainer.assets.fetch import fetch
        from explainer.recognition.registry import convert_all

        fetch()
        convert_all()


_fetch_assets_on_spaces()
demo = build_demo()

if __name__ == "__main__":
    # SIGTERM (docker stop, the bench) shuts down like Ctrl-C, so the run folder and its uploads go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if LAB.users or LAB.audit:
        print(LAB.describe(), flush=True)
    demo.launch(**launch_options())  # 127.0.0.1:7860 unless GRADIO_SERVER_NAME/PORT say otherwise
