"""Information measures: how much of an attribute a recognition model keeps, and which attributes a
counterfactual changed.

    mutual_information(a, a_hat, kind)   I(a; â) with a bootstrap interval and a normalised value
    ensemble_significance(...)           s_a over counterfactual members, with an interval (measures.ensemble)
    median_interval(values)              distribution-free interval of a median, at the level n values reach
"""
from explainer.measures.categorical import (as_labels, entropy_miller_madow, mutual_information_categorical)
from explainer.measures.knn import ksg_terms, mixed_terms, mutual_information_ksg, mutual_information_mixed
from explainer.measures.mutual_information import MIEstimate, linfoot, mutual_information

__all__ = [
    "MIEstimate", "as_labels", "entropy_miller_madow", "ksg_terms", "linfoot", "mixed_terms",
    "mutual_information", "mutual_information_categorical", "mutual_information_ksg",
    "mutual_information_mixed",
]
