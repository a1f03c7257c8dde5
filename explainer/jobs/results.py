"""What the three jobs return: plain dataclasses, JSON-serialisable, with no file writing (that is
explainer.reports.files) and no knowledge of where their photos came from (explainer.assets.datasets)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explainer.measures.ensemble import CONFIDENCE
from explainer.measures.median_interval import confidence_label
from explainer.reports import canonical


# -- explain_pair -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The recognizer's decision on the pair, and the strength of evidence of its score."""

    match: bool
    similarity: float  # the recognizer's score (a distance or a similarity: `metric`)
    threshold: float
    metric: str  # "euclidean" (lower = closer) or "cosine"
    fmr: float | None  # the false-match rate the threshold was set at
    threshold_source: str
    recognizer: str
    # explainer.evidence.decision_evidence: None / empty where the recognizer has no calibration
    log10_lr: float | None = None
    verbal: str | None = None
    lr_bounded: bool | None = None
    warnings: tuple[str, ...] = ()
    verbal_scale: str | None = None  # with propositions: only where there is a calibrated LR
    propositions: dict[str, str] | None = None

    @property
    def euclidean(self) -> bool:
        return self.metric == "euclidean"

    def as_dict(self) -> dict:
        out = {"match": self.match, "similarity": self.similarity, "threshold": self.threshold, "metric": self.metric,
               "fmr": self.fmr, "threshold_source": self.threshold_source, "recognizer": self.recognizer,
               "log10_lr": self.log10_lr, "verbal": self.verbal, "lr_bounded": self.lr_bounded,
               "warnings": list(self.warnings)}
        if self.verbal_scale is not None:
            out.update(verbal_scale=self.verbal_scale, propositions=self.propositions)
        return out


@dataclass(frozen=True)
class Member:
    """One seeded member of the counterfactual ensemble."""

    seed: int | None  # None: the unseeded one-draw baseline
    flipped: bool  # the saved uint8 image flips the target's decision
    linf_eps_255: float  # its budget, in uint8 levels
    l2: float
    similarity: float  # the target's score between it and the reference
    recovered_similarity: float  # the target's score between its recovered face and itself
    linf_255: int  # the measured L∞ change of its saved image, in uint8 levels
    recovered_to_reference: float | None = None  # the target's score between its recovered face and the reference

    def as_dict(self) -> dict:
        return {"seed": self.seed, "flipped": self.flipped, "linf_eps_255": self.linf_eps_255,
                "linf_255": self.linf_255, "l2": self.l2, "similarity": self.similarity,
                "recovered_similarity": self.recovered_similarity,
                "recovered_to_reference": self.recovered_to_reference}


@dataclass(frozen=True)
class CounterfactualOutcome:
    """The counterfactual member shown (a flipping one with the median budget; when none flipped, the one that
    came closest) and all members. `flipped`: some member flipped the decision. Fields of the shown member are explainer.counterfactual.Counterfactual's."""

    attack: str
    flipped: bool
    linf_eps: float  # the budget that flipped ([0, 1] units; the largest tried when none did)
    linf: float
    l2: float
    similarity: float
    steps: int = 0
    budgets_tried: tuple[float, ...] = ()
    transferred: bool | None = None  # transfer attacks only
    surrogate: str | None = None
    target_checks: int = 0
    details: dict = field(default_factory=dict)  # the attack's own record (seed, dropout, ...), flat in report.json
    perturbation_gain: int = 1  # the amplification of the perturbation image
    shown_member: int = 0
    recovered_similarity: tuple[float, ...] = ()  # probe, reference, the shown member
    members: tuple[Member, ...] = ()
    # the target's score against the reference of the probe's recovered face and of the shown member's (the
    # probe's recovered latent moved by T(z_cf) - T(z_probe)), beside the member's own `similarity`
    recovered_to_reference: dict[str, float] | None = None

    @property
    def linf_eps_255(self) -> float:
        return self.linf_eps * 255

    @property
    def linf_255(self) -> int:
        """The measured L∞ change of the shown counterfactual's saved PNG, in uint8 levels: what writers print
        (never the search's budget, linf_eps)."""
        return round(self.linf * 255)

    def recovered_score_text(self) -> str:
        """The model's score of the counterfactual's recovered face against the reference, as writers add it
        beside the counterfactual's own score ("" when not measured)."""
        moved = self.recovered_to_reference
        if not moved:
            return ""
        return (f"; its recovered face (the probe's, moved by T(z_cf) − T(z_probe)) scores "
                f"{moved['counterfactual']:.4f} against the reference (the probe's recovered face {moved['probe']:.4f})")

    def as_dict(self) -> dict:
        return {"attack": self.attack, "flipped": self.flipped, "linf_eps": self.linf_eps,
                "linf_eps_255": self.linf_eps_255, "linf": self.linf, "linf_255": self.linf_255, "l2": self.l2,
                "similarity": self.similarity,
                "steps": self.steps, "budgets_tried": list(self.budgets_tried), "transferred": self.transferred,
                "surrogate": self.surrogate, "target_checks": self.target_checks, **self.details,
                "perturbation_gain": self.perturbation_gain, "shown_member": self.shown_member,
                "recovered_similarity": list(self.recovered_similarity),
                **({"recovered_to_reference": self.recovered_to_reference} if self.recovered_to_reference else {}),
                "members": [m.as_dict() for m in self.members]}


@dataclass(frozen=True)
class Stability:
    """How the ensemble was made and how far its members agree."""

    members: int
    members_flipped: int
    jitters: int
    refine_rule: str
    refine_steps_taken: dict[str, int]  # probe, reference
    top10_agreement_between_members: float | None  # None: fewer than two members with a top 10
    significant_members_agree: dict[str, int]  # significant attribute -> members whose own s_a exceeds 1

    def as_dict(self) -> dict:
        return {"members": self.members, "members_flipped": self.members_flipped, "jitters": self.jitters,
                "refine_rule": self.refine_rule, "refine_steps_taken": self.refine_steps_taken,
                "top10_agreement_between_members": self.top10_agreement_between_members,
                "significant_members_agree": self.significant_members_agree}


@dataclass
class PairExplanation:
    decision: Decision
    counterfactual: CounterfactualOutcome
    significance: dict[str, float | None]  # s_a point estimate (median over members); None where undefined/invalid
    groups: dict[str, str]
    images: dict[str, np.ndarray]
    notes: list[str]
    provenance: dict
    stability: Stability  # members, refine rule, agreement between members
    # attr -> "floored" | "undefined" | "invalid" | "no_flip" (no member flipped the decision: nothing is ranked)
    significance_flags: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    significance_interval: dict[str, list[float]] = field(default_factory=dict)  # attr -> [low, high]
    evidence: dict = field(default_factory=dict)  # report.json's "quality" {probe, reference} and "calibration"
    seconds: dict[str, float] = field(default_factory=dict)  # stage timings; never in report.json
    case: str | None = None  # the investigator's case number (explainer.lab.case), in report.json when given
    # the level of every significance_interval: what the member count reaches (measures.median_interval;
    # 0.969 with 6 members, 0.75 with 3). None: not recorded (taken as CONFIDENCE)
    interval_confidence: float | None = None

    @property
    def ranking(self) -> list[str]:
        """Attributes by s_a (the point estimate), largest first; those without one last, by name."""
        def key(name: str):
            value = self.significance.get(name)
            return (1, 0.0, name) if value is None else (0, -value, name)
        return sorted(self.groups, key=key)

    @property
    def interval_reaches_confidence(self) -> bool:
        """The intervals are at least CONFIDENCE (95 %) intervals: enough members for them."""
        return self.interval_confidence is None or self.interval_confidence >= CONFIDENCE

    @property
    def interval_label(self) -> str:
        """How writers name the intervals' level: "95 %" when they reach it, else their own level ("75 %")."""
        return confidence_label(CONFIDENCE if self.interval_reaches_confidence else self.interval_confidence)

    @property
    def significant(self) -> list[str]:
        """Attributes whose 95 % interval lies wholly above 1, by the interval's lower bound (largest first);
        none when the intervals do not reach CONFIDENCE (too few flipping members)."""
        if not self.interval_reaches_confidence:
            return []
        above = [n for n, (low, _) in self.significance_interval.items() if low > 1.0]
        return sorted(above, key=lambda n: (-self.significance_interval[n][0], n))

    @property
    def unresolved(self) -> list[str]:
        """Attributes whose interval straddles 1: the ensemble cannot say whether they took part, in ranking order."""
        return [n for n in self.ranking if n in self.significance_interval
                and self.significance_interval[n][0] <= 1.0 <= self.significance_interval[n][1]]

    @property
    def scored(self) -> list[str]:
        """Attributes with an s_a, in ranking order."""
        return [n for n in self.ranking if self.significance.get(n) is not None]

    def top(self, n: int = 10) -> list[str]:
        """The n highest-ranked attributes that have an s_a (fewer when fewer were scored)."""
        return self.scored[:n]

    def as_dict(self) -> dict:
        # No flip, no ranking: without a counterfactual that flips the decision the report names nothing significant.
        significant = {"significant": self.significant} if self.counterfactual.flipped else {}
        return {"decision": self.decision.as_dict(), "counterfactual": self.counterfactual.as_dict(),
                "significance": self.significance,
                "significance_flags": self.significance_flags, "significance_interval": self.significance_interval,
                "groups": self.groups, "kinds": self.kinds, "ranking": self.ranking, **significant,
                "unresolved": self.unresolved, "stability": self.stability.as_dict(),
                **({"interval_confidence": self.interval_confidence} if self.interval_confidence is not None else {}),
                "notes": self.notes,
                "provenance": self.provenance, "images": {name: f"{name}.png" for name in sorted(self.images)},
                **self.evidence, **({"case": self.case} if self.case is not None else {})}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, rounded floats): identical bytes for identical inputs and seed."""
        return canonical.dumps(self.as_dict())

    def save(self, out_dir) -> dict[str, Path]:
        """Write report.json, report.html, one PNG per image and timings.json (explainer.reports.files)."""
        from explainer.reports.files import save_explanation

        return save_explanation(self, out_dir)


# -- analyze_model / compare_models --------------------------------------------------------------------------
@dataclass
class ModelReport:
    pack: str
    data: str
    n_images: int  # photos in the data set
    n_faces: int  # photos with a usable face
    # attr -> value, ci_low, ci_high, normalised, n, n_people, estimator, normalisation, entropy, and the
    # identity-permutation null: null_mean, null_high, excess, p_value, n_null, p_holm, kept
    mi: dict[str, dict]
    groups: dict[str, str]
    kinds: dict[str, str]
    notes: list[str]
    provenance: dict
    probe: dict[str, dict | None] = field(default_factory=dict)  # attr -> the same, a = probe's read-out; {}: none
    seconds: dict[str, float] = field(default_factory=dict)  # never in the JSON

    @property
    def kept(self) -> list[str]:
        """Attributes whose I(a; â) beats the identity-permutation null (Holm-adjusted p < 0.05), by excess
        over the null's mean, largest first."""
        names = [n for n, e in self.mi.items() if e is not None and e.get("kept")]
        return sorted(names, key=lambda n: (-self.mi[n]["excess"], n))

    @property
    def not_distinguishable(self) -> list[str]:
        """Attributes with an estimate that does not beat the null: not distinguishable from chance."""
        return sorted(n for n, e in self.mi.items() if e is not None and not e.get("kept"))

    @property
    def ranking(self) -> list[str]:
        """The kept attributes by excess over the null, then those not distinguishable from chance (by
        name: an order among them would mean nothing), then those without an estimate."""
        rest = sorted(n for n in self.groups if self.mi.get(n) is None)
        return self.kept + self.not_distinguishable + rest

    def as_dict(self) -> dict:
        return {"pack": self.pack, "data": self.data, "n_images": self.n_images, "n_faces": self.n_faces,
                "mi": self.mi, "groups": self.groups, "kinds": self.kinds, "ranking": self.ranking,
                "kept": self.kept, "notes": self.notes, "provenance": self.provenance,
                **({"probe": self.probe} if self.probe else {})}

    def to_json(self) -> str:
        return canonical.dumps(self.as_dict())


@dataclass
class ModelComparison:
    packs: list[str]
    data: str
    reports: dict[str, ModelReport]

    def table(self) -> list[dict]:
        """One row per attribute: name, group, and each pack's MI entry (interval, null, excess, p, kept)."""
        first = self.reports[self.packs[0]]
        rows = []
        for name in first.groups:
            row = {"attribute": name, "group": first.groups[name]}
            for pack in self.packs:
                row[pack] = self.reports[pack].mi.get(name)
            rows.append(row)
        return rows

    def as_dict(self) -> dict:
        return {"packs": self.packs, "data": self.data, "table": self.table(),
                "reports": {name: report.as_dict() for name, report in self.reports.items()}}

    def to_json(self) -> str:
        return canonical.dumps(self.as_dict())
