"""Do the predictions mean what they say? Calibration, posterior predictive draws and PSIS-LOO.

Everything here is computed from the run (trace, stored training and test data) and returned as
plain data; the report only renders it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import xarray as xr
from arviz_stats.utils import ELPDData
from scipy.stats import binom

from pmbnn.families import ClassPrediction, Prediction, PredictiveDraws
from pmbnn.families.classes import (
    CALIBRATION_BINS,
    expected_calibration_error,
    reliability_bins,
)
from pmbnn.fitted import FittedBnn
from pmbnn.trace import LOG_LIKELIHOOD, OBSERVED, OBSERVED_DATA, group, sample_dataarray
from pmbnn.vi_quality import has_approximation, importance_densities

COVERAGE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
PPC_SEED = 1  # posterior predictive noise draws: fixed so a report is reproducible


@dataclass(frozen=True)
class Calibration:
    """Held-out calibration of the predictive distribution (original units)."""

    split: str
    levels: np.ndarray  # nominal central-interval probabilities
    coverage: np.ndarray  # fraction of held-out targets inside each interval
    # The model's own probability of its intervals, averaged over the rows: the level for a
    # continuous target, more for whole counts. Central 95% range of the coverage a perfectly
    # calibrated model would show on this many points (binomial at that probability, which
    # bounds the Poisson-binomial of unequal rows): outside it is miscalibration, not noise.
    expected: np.ndarray
    expected_low: np.ndarray
    expected_high: np.ndarray
    pit: np.ndarray  # predictive CDF at each held-out target: Uniform(0, 1) if calibrated
    residual: np.ndarray  # y - predictive mean
    sd_total: np.ndarray
    sd_epistemic: np.ndarray

    def table(self) -> list[dict]:
        return [
            {
                "nominal": float(n),
                "empirical": float(e),
                "expected": float(p),
                "expected_low": float(lo),
                "expected_high": float(hi),
            }
            for n, e, p, lo, hi in zip(
                self.levels,
                self.coverage,
                self.expected,
                self.expected_low,
                self.expected_high,
                strict=True,
            )
        ]

    def to_dict(self) -> dict:
        # Rows whose predictive sd is infinite (Student-t, nu <= 2 in a draw) have no z: left
        # out, not counted as z = 0, which would shrink the sd towards "too wide".
        finite = np.isfinite(self.sd_total)
        z = self.residual[finite] / self.sd_total[finite]
        return {
            "split": self.split,
            "n": len(self.pit),
            "coverage": self.table(),
            "standardized_residual_sd": float(z.std()) if len(z) else None,
            "pit_ks_distance": _ks_uniform(self.pit),
        }


def calibration(
    fitted: FittedBnn, held_out: tuple[np.ndarray, np.ndarray, str] | None = None
) -> Calibration | ClassCalibration | None:
    """Calibration on held-out rows: `held_out` (inputs, targets, where they came from), else
    the run's stored test split; None when there are none. Interval coverage, PIT and residuals
    for continuous and count targets; a reliability table, ECE and confusion matrix for
    classifiers."""
    if held_out is None:
        stored = fitted.test_data()
        if stored is None:
            return None
        held_out = (*stored, "test")
    x, y, split = held_out
    distribution = fitted.distribution(x)
    if fitted.family.labelled:
        return _class_calibration(distribution.summarize(), y, split)
    tails = [(1 - level) / 2 for level in COVERAGE_LEVELS]
    prediction = distribution.summarize(tuple(tails + [1 - t for t in tails]))
    coverage, expected = interval_coverage(distribution, prediction, y)
    pit = distribution.cdf(y)
    assert pit is not None  # every family with interval bounds has a PIT
    return Calibration(
        split=split,
        levels=np.array(COVERAGE_LEVELS),
        coverage=coverage,
        expected=expected,
        expected_low=binom.ppf(0.025, len(y), expected) / len(y),
        expected_high=binom.ppf(0.975, len(y), expected) / len(y),
        pit=pit,
        residual=y - prediction.mean,
        sd_total=prediction.sd_total,
        sd_epistemic=prediction.sd_epistemic,
    )


def interval_coverage(
    distribution: PredictiveDraws, prediction: Prediction, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per level of COVERAGE_LEVELS: the share of targets inside the central interval, and
    the share the predictive itself expects there (`interval_probability`, averaged)."""
    coverage, expected = [], []
    for level in COVERAGE_LEVELS:
        tail = (1 - level) / 2
        lower, upper = prediction.quantiles[tail], prediction.quantiles[1 - tail]
        coverage.append(np.mean((y >= lower) & (y <= upper)))
        expected.append(np.mean(distribution.interval_probability(lower, upper, level)))
    return np.array(coverage), np.array(expected)


@dataclass(frozen=True)
class ClassCalibration:
    """Held-out calibration of a classifier: do its probabilities mean what they say?"""

    split: str
    classes: list
    reliability: list[dict]  # per confidence bin: confidence, accuracy, rows
    ece: float  # expected calibration error over those bins
    confusion: np.ndarray  # (true class, predicted class) row counts
    accuracy: float

    def to_dict(self) -> dict:
        return {
            "split": self.split,
            "n": int(self.confusion.sum()),
            "accuracy": self.accuracy,
            "ece": self.ece,
            "ece_bins": CALIBRATION_BINS,
            "reliability": self.reliability,
            "classes": [str(c) for c in self.classes],
            "confusion": self.confusion.tolist(),
        }


def _class_calibration(prediction: ClassPrediction, y: np.ndarray, split: str) -> ClassCalibration:
    codes = np.asarray(y, dtype=np.int64)
    predicted = np.argmax(prediction.probabilities, axis=1)
    k = len(prediction.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (codes, predicted), 1)
    return ClassCalibration(
        split=split,
        classes=prediction.classes,
        reliability=reliability_bins(prediction.probabilities, codes),
        ece=expected_calibration_error(prediction.probabilities, codes),
        confusion=confusion,
        accuracy=float(np.mean(predicted == codes)),
    )


def posterior_predictive(fitted: FittedBnn, seed: int = PPC_SEED) -> xr.DataTree:
    """Replicated training targets y_rep drawn from each draw's conditional distribution,
    beside the observed ones (class codes for a classifier).

    Returned as a DataTree with ArviZ's ``posterior_predictive`` and ``observed_data`` groups in
    original units, which is what ArviZ's PPC plots read.
    """
    x, y = fitted.training_data()
    y_rep = fitted.distribution(x).sample(np.random.default_rng(seed))
    return xr.DataTree.from_dict(
        {
            "posterior_predictive": xr.Dataset(
                {OBSERVED: sample_dataarray(y_rep, fitted.posterior, ("obs",))}
            ),
            OBSERVED_DATA: xr.Dataset({OBSERVED: ("obs", y)}),
        }
    )


def loo_data(fitted: FittedBnn) -> ELPDData | None:
    """PSIS-LOO on the training data as ArviZ's pointwise ELPDData (what `arviz_stats.compare`
    takes), or None if the pointwise log-likelihood was not stored.

    VI runs use the approximate-posterior correction (log p - log q of each draw), since draws
    from q are not draws from the posterior.
    """
    if LOG_LIKELIHOOD not in fitted.trace.children:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high k is reported by the callers, not as a warning
        if has_approximation(fitted):
            densities = importance_densities(fitted)
            return azs.loo_approximate_posterior(
                fitted.trace, densities.log_p, densities.log_q, pointwise=True
            )
        return azs.loo(fitted.trace, pointwise=True, reff=relative_efficiency(fitted.trace))


def relative_efficiency(trace: xr.DataTree) -> float:
    """LOO's r_eff from what it weights: the mean over training rows of the ESS of each row's
    likelihood over the draws, per draw (R's loo::relative_eff). ArviZ's default averages the
    ESS of every posterior variable, the raw weights too, whose ESS collapses whenever chains
    sit in permuted copies of one network although the likelihoods agree."""
    log_lik = group(trace, LOG_LIKELIHOOD)[OBSERVED]
    sample_dims = ["chain", "draw"]
    likelihood = xr.ufuncs.exp(log_lik - log_lik.max(sample_dims))  # ESS ignores a row's scale
    ess = likelihood.azstats.ess(method="mean", sample_dims=sample_dims)
    return float(ess.mean()) / (log_lik.sizes["chain"] * log_lik.sizes["draw"])


def pareto_k_counts(result: ELPDData) -> dict[str, int]:
    """Training points per band of Pareto k: good, bad (above ArviZ's threshold), very bad."""
    k = np.asarray(result.pareto_k).ravel()
    good = float(result.good_k)
    return {
        f"good (k <= {good:.2f})": int(np.sum(k <= good)),
        f"bad ({good:.2f} < k <= 1)": int(np.sum((k > good) & (k <= 1))),
        "very bad (k > 1)": int(np.sum(k > 1)),
    }


def loo(fitted: FittedBnn) -> dict | None:
    """PSIS-LOO on the training data (`loo_data`) as plain numbers, or None if the pointwise
    log-likelihood was not stored."""
    result = loo_data(fitted)
    if result is None:
        return None
    return {
        "elpd_loo": float(result.elpd),
        "se": float(result.se),
        "p_loo": float(result.p),
        "elpd_loo_per_point": float(result.elpd) / result.n_data_points,
        "n": int(result.n_data_points),
        "n_samples": int(result.n_samples),
        "approximate_posterior_correction": has_approximation(fitted),
        "k_threshold": float(result.good_k),
        "k_counts": pareto_k_counts(result),
        "pareto_k": np.asarray(result.pareto_k).ravel().tolist(),
        "elpd_i": np.asarray(result.elpd_i).ravel().tolist(),
    }


def _ks_uniform(pit: np.ndarray) -> float:
    """Largest gap between the PIT values' empirical CDF and the uniform CDF."""
    u = np.sort(pit)
    n = len(u)
    ranks = np.arange(1, n + 1) / n
    return float(max(np.max(ranks - u), np.max(u - (ranks - 1 / n))))
