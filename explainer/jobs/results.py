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
@dataclass
class PairExplanation:
    decision: dict  # match, similarity, threshold, metric, fmr, recognizer, threshold_source
    counterfactual: dict  # the representative member: attack, flipped, linf_eps, l2, similarity, ...; plus members
    significance: dict[str, float | None]  # s_a point estimate (median over members); None where undefined/invalid
    groups: dict[str, str]
    images: dict[str, np.ndarray]
    notes: list[str]
    provenance: dict
    significance_flags: dict[str, str] = field(default_factory=dict)  # attr -> "floored" | "undefined" | "invalid"
    kinds: dict[str, str] = field(default_factory=dict)
    significance_interval: dict[str, list[float]] = field(default_factory=dict)  # attr -> [low, high]
    stability: dict = field(default_factory=dict)  # members, refine rule, agreement between members
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
        """Attributes whose interval lies wholly above 1, by the interval's lower bound (largest first); none
        when the intervals do not reach CONFIDENCE (too few members)."""
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
        return {"decision": self.decision, "counterfactual": self.counterfactual, "significance": self.significance,
                "significance_flags": self.significance_flags, "significance_interval": self.significance_interval,
                "groups": self.groups, "kinds": self.kinds, "ranking": self.ranking, "significant": self.significant,
                "unresolved": self.unresolved, "stability": self.stability, "notes": self.notes,
                **({"interval_confidence": self.interval_confidence} if self.interval_confidence is not None else {}),
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
    mi: dict[str, dict]  # attr -> value, ci_low, ci_high, normalised, n, estimator, normalisation, entropy
    groups: dict[str, str]
    kinds: dict[str, str]
    notes: list[str]
    provenance: dict
    seconds: dict[str, float] = field(default_factory=dict)  # never in the JSON

    @property
    def ranking(self) -> list[str]:
        """Attributes by normalised MI, largest first; those without an estimate last."""
        def key(name):
            entry = self.mi.get(name)
            norm = None if entry is None else entry.get("normalised")
            return (norm is None, -(norm or 0.0), name)
        return sorted(self.groups, key=key)

    def as_dict(self) -> dict:
        return {"pack": self.pack, "data": self.data, "n_images": self.n_images, "n_faces": self.n_faces,
                "mi": self.mi, "groups": self.groups, "kinds": self.kinds, "ranking": self.ranking,
                "notes": self.notes, "provenance": self.provenance}

    def to_json(self) -> str:
        return canonical.dumps(self.as_dict())


@dataclass
class ModelComparison:
    packs: list[str]
    data: str
    reports: dict[str, ModelReport]

    def table(self) -> list[dict]:
        """One row per attribute: name, group, and each pack's MI, interval and normalised MI."""
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
