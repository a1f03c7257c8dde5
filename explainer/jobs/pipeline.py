"""The three jobs in one place, for callers that want them together:

    explain_pair(probe, reference, pack, attack)   why one decision (explainer.jobs.explain)
    analyze_model(pack, data)                      what a model keeps, I(a; â) (explainer.jobs.analysis)
    compare_models(packs, data)                    two models on the same photos (explainer.jobs.analysis)

Results are explainer.jobs.results' dataclasses; data-set names are explainer.assets.datasets'.
"""
from explainer.assets.datasets import DATA_SETS, IMAGE_SUFFIXES, data_paths
from explainer.counterfactual.attacks import ATTACKS
from explainer.generation.recovery_rule import RECOVERY_RULE, recovery_rule
from explainer.jobs.analysis import MIN_MI_SAMPLES, RESOLUTION, analyze_model, compare_models, randomised_pack
from explainer.jobs.explain import (
                               IMAGE_NAMES,
                               JITTERS,
                               MEMBERS,
                               REFINE_CAP,
                               TOLERANCE,
                               ExplanationError,
                               explain_pair,
                               member_seeds,
)
from explainer.jobs.results import ModelComparison, ModelReport, PairExplanation

__all__ = ["ATTACKS", "DATA_SETS", "IMAGE_NAMES", "IMAGE_SUFFIXES", "JITTERS", "MEMBERS", "MIN_MI_SAMPLES", "REFINE_CAP",
           "RESOLUTION", "TOLERANCE", "ExplanationError", "ModelComparison", "ModelReport", "PairExplanation",
           "RECOVERY_RULE", "analyze_model", "compare_models", "data_paths", "explain_pair", "member_seeds", "randomised_pack",
           "recovery_rule"]
