"""No flip, no ranking: s_a comes only from counterfactual members that flip the decision. Three cases on a
real genuine pair, with attacks registered for the test (the registry is the one extension point): every
member flips, some do, none does."""
from __future__ import annotations

import json

import pytest
import torch

from explainer import assets, faces
from explainer.app.handlers import _significance_figure
from explainer.app.wording import decision_markdown
from explainer.counterfactual.attacks import ATTACKS, AttackEntry, AttackRun
from explainer.counterfactual.objective import DecisionGoal
from explainer.counterfactual.pgd import pgd_counterfactuals
from explainer.counterfactual.result import finish
from explainer.jobs.explain import explain_pair
from explainer.reports.html import write_html
from explainer.reports.pdf import write_pdf

PAIR = ("s31/1.pgm", "s31/6.pgm")
SMALL = {"jitters": 2, "refine_steps": 5}
SEEDS = (11, 12)  # the flipping members' own PGD seeds, whatever the explanation's


def _unchanged(given, seed):
    """A "counterfactual" that changes nothing: it never flips the decision."""
    goal = DecisionGoal.for_pair(given.target, given.currently_matches)
    reference = given.reference_embedding.reshape(1, -1)
    return finish("still", given.target, given.probe_crop, faces.to_tensor(given.probe_crop), reference, goal,
                  1 / 255, 0, [1 / 255], details={"seed": seed})


def _flipping(given):
    return pgd_counterfactuals(given.target, given.probe_crop, given.reference_embedding,
                               currently_matches=given.currently_matches, seeds=list(SEEDS))


ENTRIES = {
    "flipping": AttackEntry("PGD members only", 2, lambda g: AttackRun(_flipping(g)), {}),
    "partly": AttackEntry("PGD members and one unchanged", 3,
                          lambda g: AttackRun([_flipping(g)[0], _unchanged(g, 0), _flipping(g)[1]]), {}),
    "still": AttackEntry("Still (changes nothing)", 2, lambda g: AttackRun([_unchanged(g, s) for s in g.seeds]), {}),
}


@pytest.fixture(scope="module")
def explanations():
    root = assets.path("orl")
    with pytest.MonkeyPatch.context() as patch:
        for name, entry in ENTRIES.items():
            patch.setitem(ATTACKS, name, entry)
        yield {name: explain_pair(str(root / PAIR[0]), str(root / PAIR[1]), attack=name, **SMALL)
               for name in ENTRIES}


def test_every_member_flips_and_the_ranking_uses_them_all(explanations):
    expl = explanations["flipping"]
    assert expl.counterfactual.flipped and expl.stability.members_flipped == 2 and expl.scored
    assert "significant" in json.loads(expl.to_json())


def test_only_the_members_that_flip_are_scored(explanations):
    partly, flipping = explanations["partly"], explanations["flipping"]
    assert partly.stability.members == 3 and partly.stability.members_flipped == 2
    assert [m.flipped for m in partly.counterfactual.members] == [True, False, True]
    # the unchanged member takes no part: the same s_a and intervals as the two flipping members alone
    assert partly.significance == flipping.significance
    assert partly.significance_interval == flipping.significance_interval
    assert partly.stability.significant_members_agree == flipping.stability.significant_members_agree
    assert all(count <= 2 for count in partly.stability.significant_members_agree.values())
    assert any("use the 2 that did" in note for note in partly.notes)
    assert "use the 2 members that flipped it" in decision_markdown(partly)


def test_no_member_flips_so_nothing_is_ranked(explanations, tmp_path):
    expl = explanations["still"]
    report = json.loads(expl.to_json())
    assert report["counterfactual"]["flipped"] is False and "significant" not in report
    assert set(report["significance_flags"].values()) == {"no_flip"} and report["significance_interval"] == {}
    assert all(value is None for value in report["significance"].values()) and expl.scored == []
    d = expl.decision
    said = decision_markdown(expl)
    for words in ("No counterfactual flipped the decision", "Still (changes nothing)", "up to L∞ 1/255",
                  f"against the threshold {d.threshold:.3f}", f"to {expl.counterfactual.similarity:.3f}",
                  "may find a flip: try it", "no attribute is ranked"):
        assert words in said, words
    assert not any(trace.type == "bar" for trace in _significance_figure(expl).data)  # no chart of s_a
    page = write_html(expl, tmp_path / "report.html").read_text()
    assert "No counterfactual flipped the decision" in page and "Top 10" not in page
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(write_pdf(expl, tmp_path / "report.pdf")).pages)
    assert "No counterfactual flipped the decision" in " ".join(text.split())
    assert torch.equal(faces.to_tensor(expl.images["counterfactual"]), faces.to_tensor(expl.images["probe_aligned"]))
