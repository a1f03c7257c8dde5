"""The one recovery rule (explainer.generation.recovery_rule) is what every path recovers with."""
from __future__ import annotations

import pytest
import torch

from explainer.generation.recovery_rule import (
    ANCHOR_WEIGHT,
    RECOVERY_RULE,
    REFINE_CAP,
    REFINE_LR,
    TOLERANCE,
    describe,
    recovery_rule,
)
from explainer.jobs import analysis


def test_the_rule_is_anchored_refinement_to_convergence_with_a_cap():
    assert RECOVERY_RULE == recovery_rule(REFINE_CAP)
    assert (RECOVERY_RULE.steps, RECOVERY_RULE.lr, RECOVERY_RULE.anchor_weight, RECOVERY_RULE.tolerance) == \
        (REFINE_CAP, REFINE_LR, ANCHOR_WEIGHT, TOLERANCE)
    assert recovery_rule(7).steps == 7 and recovery_rule(7).tolerance == TOLERANCE
    assert recovery_rule(0) is None and describe(None).startswith("feed-forward")
    assert "until the loss falls" in describe(RECOVERY_RULE) and "anchor to T(z)" in describe(RECOVERY_RULE)
    with pytest.raises(ValueError, match="0 or more"):
        recovery_rule(-1)


class _Asked(Exception):
    pass


class _RecordingPack:
    """Stands in for a Pack: records the refinement settings it is asked to recover with, then stops."""
    recognizer = None

    def recover(self, embeddings, refine=None):
        raise _Asked(refine)


def test_analysis_recovers_by_the_rule():
    """(explain_pair's rule is checked in test_pipeline, bench recover's and `recover`'s in test_bench_recover.)"""
    class Recognizer:
        crop = None

        def __call__(self, crops):
            return crops.flatten(1)[:, :4]

    pack = _RecordingPack()
    pack.recognizer = Recognizer()
    crops = torch.zeros(1, 3, 8, 8)
    with pytest.raises(_Asked) as asked:
        analysis._recover(pack, crops, 12)
    assert asked.value.args[0] == recovery_rule(12)
    with pytest.raises(_Asked) as asked:
        analysis._recover(pack, crops, 0)
    assert asked.value.args[0] is None  # feed-forward
