"""Counterfactuals on real ORL pairs: PGD flips with a minimal budget, the flip survives a PNG round
trip, and the transfer attack never takes gradients from the target."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from explainer import assets, faces
from explainer.counterfactual import (
    DecisionGoal,
    EmbeddingPGD,
    FeatureDropout,
    pgd_counterfactual,
    quantise,
    transfer_counterfactual,
)
from explainer.counterfactual.transfer import SurrogateView, crop_to_crop
from explainer.evidence.verification import prepare
from explainer.recognition.registry import load_recognizer


@pytest.fixture(scope="module")
def dlib():
    return load_recognizer("dlib-resnet")


def _pair(dlib, probe: str, reference: str):
    root = assets.path("orl")
    p, r = prepare(root / f"{probe}.pgm"), prepare(root / f"{reference}.pgm")
    crops = [faces.align(x.image, x.face.landmarks, dlib.crop) for x in (p, r)]
    with torch.no_grad():
        z = dlib(faces.to_tensor(np.stack(crops)))
    return p, r, crops, z


@pytest.fixture(scope="module")
def genuine(dlib):
    return _pair(dlib, "s33/2", "s33/7")


def _png_round_trip(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def test_pgd_flips_a_genuine_pair_and_the_saved_png_keeps_the_flip(dlib, genuine):
    _, _, crops, z = genuine
    assert dlib.matches(z[:1], z[1:]).item()
    result = pgd_counterfactual(dlib, crops[0], z[1], currently_matches=True)
    assert result.flipped and result.attack == "pgd"
    assert result.image.dtype == np.uint8 and result.image.shape == crops[0].shape
    # the reported L∞ is the measured change of the saved image, and the budget is a whole level it respects
    measured = np.abs(result.image.astype(int) - crops[0].astype(int)).max()
    assert result.linf_255 == measured > 0 and result.l2 > 0
    assert float(result.linf_eps * 255).is_integer() and measured <= round(result.linf_eps * 255)
    reloaded = _png_round_trip(result.image)
    with torch.no_grad():
        score = float(dlib.similarity(dlib(faces.to_tensor(reloaded)), z[1:]))
    assert score == pytest.approx(result.similarity, abs=1e-6)
    assert score > dlib.threshold.value  # Euclidean: beyond the threshold is "no match"
    again = pgd_counterfactual(dlib, crops[0], z[1], currently_matches=True)
    assert np.array_equal(again.image, result.image)  # deterministic


def test_pgd_pulls_an_impostor_pair_to_a_match(dlib):
    _, _, crops, z = _pair(dlib, "s34/1", "s36/1")
    assert not dlib.matches(z[:1], z[1:]).item()
    result = pgd_counterfactual(dlib, crops[0], z[1], currently_matches=False)
    assert result.flipped and result.similarity < dlib.threshold.value
    assert result.linf_eps * 255 <= 32


def test_a_smaller_budget_than_the_minimal_one_does_not_flip(dlib):
    # The minimal budget is a whole level found by the schedule and bisection: one level less must not flip
    # with the same number of steps.
    _, _, crops, z = _pair(dlib, "s34/1", "s36/1")
    result = pgd_counterfactual(dlib, crops[0], z[1], currently_matches=False)
    budget = round(result.linf_eps * 255)
    assert result.flipped and budget == result.linf_eps * 255 and result.linf_255 <= budget
    if budget > 1:
        smaller = pgd_counterfactual(dlib, crops[0], z[1], currently_matches=False, schedule=(budget - 1,),
                                     bisection_rounds=0)
        assert not smaller.flipped


def test_a_half_level_budget_is_reported_as_the_change_it_makes(dlib):
    # PGD's sign steps saturate at the budget; re-quantised, a pixel at +2.5 levels lands on +3 as often as
    # on +2. The counterfactual says what the saved image changed (3 levels), not the budget (2.5), and the
    # bisection never tries such a budget: between whole levels there is nothing to gain.
    from explainer.counterfactual.pgd import whole_level_between

    _, _, crops, z = _pair(dlib, "s34/1", "s36/1")
    result = pgd_counterfactual(dlib, crops[0], z[1], currently_matches=False, schedule=(2.5,), bisection_rounds=0)
    change = np.abs(result.image.astype(int) - crops[0].astype(int))
    assert result.flipped and result.linf_eps * 255 == pytest.approx(2.5)
    assert (change == 3).sum() > 1000  # measured: 9146 channel values moved by 3 levels, 28789 by 2
    assert result.linf_255 == change.max() == 3  # what every writer prints (CounterfactualOutcome.linf_255)
    assert [whole_level_between(*gap) for gap in ((1, 2), (1, 1.5), (0, 1), (4, 6), (16, 24), (17, 18))] == \
        [None, None, None, 5, 20, None]


def test_embedding_pgd_moves_the_embedding_within_its_budget(dlib, genuine):
    _, _, crops, z = genuine
    goal = DecisionGoal.for_pair(dlib, currently_matches=True)
    attack = EmbeddingPGD(dlib, goal, dlib.metric, eps=2 / 255, steps=3, stop_early=False)
    x = faces.to_tensor(crops[0])
    adversarial = attack(x, z[1:])
    assert (adversarial - x).abs().max() <= 2 / 255 + 1e-6 and 0 <= adversarial.min() and adversarial.max() <= 1
    with torch.no_grad():
        before, after = dlib.similarity(dlib(x), z[1:]), dlib.similarity(dlib(adversarial), z[1:])
    assert after > before  # pushed away: the Euclidean distance grew
    assert torch.equal(quantise(quantise(adversarial)), quantise(adversarial))


def test_feature_dropout_hooks_perturb_and_are_removed():
    model = load_recognizer("mobilefacenet")
    x = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = model(x)
        with FeatureDropout(model, 0.1):
            torch.manual_seed(0)
            dropped = model(x)
        after = model(x)
    assert not torch.allclose(clean, dropped)
    assert torch.equal(clean, after)


def test_surrogate_view_sees_the_target_crop_in_its_own_frame(dlib, genuine):
    probe = genuine[0]
    surrogate = load_recognizer("mobilefacenet")
    matrix = crop_to_crop(probe.face.landmarks, dlib, surrogate)
    assert crop_to_crop(probe.face.landmarks, surrogate, load_recognizer("faceplugin-r")) is None  # same frame
    direct = faces.to_tensor(faces.align(probe.image, probe.face.landmarks, surrogate.crop))
    via_target = SurrogateView(surrogate, matrix)
    from explainer.generation.crop import warp_affine
    warped = warp_affine(faces.to_tensor(genuine[2][0]), matrix, surrogate.crop.size)
    inside = (warped > 0).all(1, keepdim=True).expand_as(warped)  # where the dlib chip covers the frame
    assert inside.float().mean() > 0.7  # ORL photos end above the chin; black outside
    assert (warped - direct)[inside].abs().mean() < 0.05
    with torch.no_grad():
        z_view = via_target(faces.to_tensor(genuine[2][0]))
        z_direct = surrogate(direct)
    assert surrogate.matches(z_view, z_direct).item()


def test_transfer_attack_never_takes_target_gradients_and_reports_the_transfer(dlib, genuine):
    probe, reference, crops, z = genuine
    surrogate = load_recognizer("mobilefacenet")
    with torch.no_grad():
        z_ref_surrogate = surrogate(faces.to_tensor(faces.align(reference.image, reference.face.landmarks, surrogate.crop)))
    grad_modes = []
    handle = dlib.register_forward_hook(lambda _m, _i, _o: grad_modes.append(torch.is_grad_enabled()))
    try:
        result = transfer_counterfactual(dlib, [surrogate], crops[0], probe.face.landmarks, z[1], [z_ref_surrogate[0]],
                                         currently_matches=True, seed=0)
    finally:
        handle.remove()
    assert grad_modes and not any(grad_modes)  # the target only ever judged, under no_grad
    assert len(grad_modes) == result.target_checks
    assert result.surrogate == "mobilefacenet" and result.transferred == result.flipped
    assert result.transferred  # measured: this pair transfers within 16/255
    assert result.linf_255 == np.abs(result.image.astype(int) - crops[0].astype(int)).max() > 0
    again = transfer_counterfactual(dlib, [surrogate], crops[0], probe.face.landmarks, z[1], [z_ref_surrogate[0]],
                                    currently_matches=True, seed=0)
    assert np.array_equal(again.image, result.image)
    with pytest.raises(ValueError, match="other than the target"):
        transfer_counterfactual(dlib, [dlib], crops[0], probe.face.landmarks, z[1], [z[1]], currently_matches=True)


def test_input_diversity_shrinks_and_pads_reproducibly_and_passes_gradients():
    from explainer.counterfactual.transfer import diverse

    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    same = diverse(x, [torch.Generator().manual_seed(s) for s in (3, 4)], p=0.0)
    assert torch.allclose(same, x, atol=1e-5)  # p = 0: the crop as it is
    shrunk = diverse(x, [torch.Generator().manual_seed(s) for s in (3, 4)], p=1.0, shrink=0.8)
    again = diverse(x, [torch.Generator().manual_seed(s) for s in (3, 4)], p=1.0, shrink=0.8)
    assert torch.equal(shrunk, again) and not torch.equal(shrunk[0], shrunk[1])  # each sample its own draw
    border = torch.cat([shrunk[..., :2, :].flatten(), shrunk[..., -2:, :].flatten()])
    assert (border == 0).float().mean() > 0.3  # black frame on at least one side of each
    shrunk.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_ensemble_transfers_an_impostor_pair_the_single_surrogate_did_not(dlib):
    from explainer.counterfactual.attacks import ATTACKS, AttackInput

    probe, reference, crops, z = _pair(dlib, "s31/1", "s32/1")
    assert not dlib.matches(z[:1], z[1:]).item()
    run = ATTACKS["transfer"].run(AttackInput(dlib, crops[0], probe.face.landmarks, reference.image,
                                              reference.face.landmarks, z[1], False, [5]))
    (member,) = run.members
    # measured: crafted on MobileFaceNet alone (with feature dropout 0.1), 0 of 8 impostor pairs transferred
    # to dlib; on the ensemble with input diversity this one does, within 16/255
    assert member.flipped and member.transferred and member.linf_eps <= 16 / 255


# -- the attack registry -------------------------------------------------------------------------------
def test_an_unknown_attack_is_a_plain_error_listing_the_known_ones():
    from explainer.core.errors import FacexplainError
    from explainer.counterfactual.attacks import ATTACKS, attack

    assert list(ATTACKS) == ["pgd", "transfer"]
    with pytest.raises(FacexplainError, match="unknown attack 'fgsm'; known: pgd, transfer"):
        attack("fgsm")


def test_the_app_cli_and_benches_offer_the_registered_attacks():
    from explainer.app.wording import ATTACKS as LABELS
    from explainer.bench.stability import ATTACKS as STABILITY
    from explainer.cli.commands import build_parser
    from explainer.counterfactual.attacks import ATTACKS
    from explainer.jobs.explain import MEMBERS

    assert LABELS == {name: entry.label for name, entry in ATTACKS.items()}
    assert STABILITY == tuple(ATTACKS) and MEMBERS == {name: entry.members for name, entry in ATTACKS.items()}
    parser = build_parser()
    explain = parser._subparsers._group_actions[0].choices["explain"]
    (option,) = [a for a in explain._actions if "--attack" in a.option_strings]
    assert list(option.choices) == list(ATTACKS)


def test_every_attack_runs_through_the_one_signature(dlib, genuine):
    from explainer.counterfactual.attacks import ATTACKS, AttackInput

    probe, reference, crops, z = genuine
    given = AttackInput(dlib, crops[0], probe.face.landmarks, reference.image, reference.face.landmarks, z[1],
                        currently_matches=True, seeds=[3])
    for name, entry in ATTACKS.items():
        run = entry.run(given)
        (member,) = run.members
        assert member.attack == name and member.image.shape == crops[0].shape and member.details["seed"] == 3
        assert all(r is not dlib for r in run.crafted_on)  # the target's gradients are PGD's alone
    assert ATTACKS["transfer"].run(given).parameters["surrogates"] == ["mobilefacenet", "faceplugin-r"]
