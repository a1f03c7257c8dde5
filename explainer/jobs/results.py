"""What the three jobs return: plain dataclasses, JSON-serialisable, with no file writing (that is
explainer.reports.files) and no knowledge of where their photos came from (explainer.assets.datasets)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    significance_interval: dict[str, list[float]] = field(default_factory=dict)  # attr -> [low, high], 95 %
    stability: dict = field(default_factory=dict)  # members, refine rule, agreement between members
    evidence: dict = field(default_factory=dict)  # report.json's "quality" {probe, reference} and "calibration"
    seconds: dict[str, float] = field(default_factory=dict)  # stage timings; never in report.json
    case: str | None = None  # the investigator's case number (explainer.lab.case), in report.json when given

    @property
    def ranking(self) -> list[str]:
        """Attributes by s_a (the point estimate), largest first; those without one last, by name."""
        def key(name: str):
            value = self.significance.get(name)
            return (1, 0.0, name) if value is None else (0, -value, name)
        return sorted(self.groups, key=key)

    @property
    def significant(self) -> list[str]:
        """Attributes whose 95 % interval lies wholly above 1, by the interval's lower bound (largest first)."""
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
