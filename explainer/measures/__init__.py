"""Information measures: how much of an attribute a recognition model keeps, and which attributes a
counterfactual changed.

    mutual_information(a, a_hat, kind)   I(a; â) with a bootstrap interval and a normalised value
    significance(a_probe, a_ref, a_adv)  s_a = ||â_p − â_adv|| / ||â_p − â_ref||
"""
from explainer.measures.categorical import (as_labels, entropy_miller_madow, mutual_information_categorical)
from explainer.measures.knn import ksg_terms, mixed_terms, mutual_information_ksg, mutual_information_mixed
from explainer.measures.mutual_information import MIEstimate, linfoot, mutual_information
from explainer.measures.significance import Significance, significance

__all__ = [
    "MIEstimate", "Significance", "as_labels", "entropy_miller_madow", "ksg_terms", "linfoot", "mixed_terms",
    "mutual_information", "mutual_information_categorical", "mutual_information_ksg",
    "mutual_information_mixed", "significance",
]
