"""What a diagnosis is made of: verdicts, the thresholds they are judged by, checks and the
diagnosis that holds them. Data only; `diagnostics.py` computes them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import xarray as xr


class Verdict(StrEnum):
    """How a check came out; INFO is reported but never decides the overall verdict."""

    INFO = "INFO"
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"

    @property
    def severity(self) -> int:
        return {"INFO": 0, "OK": 0, "WARN": 1, "FAIL": 2}[self.value]


OK, WARN, FAIL, INFO = Verdict.OK, Verdict.WARN, Verdict.FAIL, Verdict.INFO


@dataclass(frozen=True)
class Thresholds:
    """The limits every check is judged by, and where each comes from.

    Attributes
    ----------
    rhat_ok, rhat_fail : float
        Rank-normalized R-hat below rhat_ok is OK (Vehtari et al. 2021); at or above rhat_fail
        (Gelman and Rubin's classic 1.1) the chains certainly disagree.
    ess_per_chain_ok : int
        Bulk and tail ESS of at least this many per chain is OK (Vehtari et al. 2021).
    ess_fail : int
        Below this many in all, the Monte Carlo error exceeds a tenth of the posterior sd and the
        R-hat and ESS estimates themselves are unreliable.
    divergence_fail : float
        Any divergence can bias; this fraction or more means the geometry defeats NUTS.
    treedepth_warn : float
        Fraction of transitions at the maximum tree depth that warns (costs time, not validity:
        never a FAIL).
    ebfmi_warn : float
        E-BFMI below this warns (Betancourt 2016).
    khat_ok, khat_fail : float
        Pareto k-hat of the importance ratios p/q (Yao et al. 2018; Vehtari et al. 2024).
        khat_fail None (the default): min(1 - 1 / log10 S, 0.7) for S draws, the limit below
        which PSIS is reliable with that many draws (`khat_limits`).
    """

    rhat_ok: float = 1.01
    rhat_fail: float = 1.1
    ess_per_chain_ok: int = 100
    ess_fail: int = 100
    divergence_fail: float = 0.01
    treedepth_warn: float = 0.01
    ebfmi_warn: float = 0.3
    khat_ok: float = 0.5
    khat_fail: float | None = None

    def khat_limits(self, draws: int) -> tuple[float, float]:
        """(OK up to, FAIL above) for k-hat from `draws` draws. PSIS is reliable only below
        1 - 1 / log10(S) (Vehtari et al. 2024, JMLR 25(72)), at most 0.7: 0.5 at 100 draws,
        0.67 at 1000; ArviZ's LOO judges its k the same way."""
        fail = self.khat_fail
        if fail is None:
            fail = min(1 - 1 / math.log10(draws), 0.7) if draws > 10 else 0.0
        return min(self.khat_ok, fail), fail


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Check:
    """One diagnostic: the number, how it was judged and what to do about it."""

    name: str
    label: str
    value: float | None
    verdict: Verdict
    threshold: str
    detail: str
    hint: str
    per_chain: list[float] | None = None  # the value of each chain, where a check has one


@dataclass(frozen=True)
class Diagnosis:
    """What `diagnose` found about a run's inference: the checks (each with its verdict,
    threshold, citation and hint) and the quantities they were computed on. `verdict` is the
    worst graded check: OK, WARN or FAIL."""

    method: str
    checks: list[Check]
    # Per-quantity convergence table (sigma and each probe function value): mean, sd, mcse, ...
    quantities: list[dict] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)  # probe label, split and input values
    # sigma and f at the probes per (chain, draw): what the checks were computed on, for plots
    draws: xr.Dataset = field(default_factory=xr.Dataset, repr=False, compare=False)

    @property
    def verdict(self) -> Verdict:
        graded = [c.verdict for c in self.checks if c.verdict != INFO]
        return max(graded, key=lambda verdict: verdict.severity, default=OK)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "verdict": self.verdict,
            "checks": [asdict(c) for c in self.checks],
            "quantities": self.quantities,
            "probes": self.probes,
        }
