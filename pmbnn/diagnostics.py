"""A fitted run -> checks with verdicts (data, not text): did inference work?

Weight-space convergence statistics are misleading for a BNN: permuting hidden units (and
flipping signs under odd activations) leaves the posterior unchanged, so chains in equivalent
modes disagree on every weight while agreeing on every prediction. Convergence is therefore
judged in function space, on the network output at fixed probe inputs, and on the noise sd;
weight R-hat is reported for information only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import arviz_stats as azs
import numpy as np
import xarray as xr

from pmbnn.fitted import FittedBnn
from pmbnn.loss import PLATEAU_Z, plateau_z
from pmbnn.trace import FUNCTION, NOISE, SAMPLE_STATS, VI_LOSS, n_samples, sample_dataarray
from pmbnn.vi_quality import has_approximation, importance_densities


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
PROBES_PER_SPLIT = 8
PROBE_SEED = 20180101  # any fixed value: the probe set must be the same every time


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
    """

    rhat_ok: float = 1.01
    rhat_fail: float = 1.1
    ess_per_chain_ok: int = 100
    ess_fail: int = 100
    divergence_fail: float = 0.01
    treedepth_warn: float = 0.01
    ebfmi_warn: float = 0.3
    khat_ok: float = 0.5
    khat_fail: float = 0.7


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


def diagnose(fitted: FittedBnn, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Diagnosis:
    """Did inference work? Every check that applies to the fit's inference method.

    Parameters
    ----------
    fitted : FittedBnn
        A fit or a loaded run.
    thresholds : Thresholds, optional
        The limits each check is judged by (defaults: the literature's, see `Thresholds`).

    Returns
    -------
    Diagnosis
        The checks (value, verdict, threshold, hint), the overall verdict, and the function-
        space draws they were computed on.
    """
    method = fitted.spec.inference.method
    draws = function_space_draws(fitted)
    if method == "nuts":
        checks = _mcmc_checks(fitted, draws, thresholds)
        quantities = _describe(draws, mcmc=True)
    else:
        checks, quantities = _vi_checks(fitted, thresholds), _describe(draws)
    return Diagnosis(method, checks, quantities, _probe_records(fitted), draws)


def probe_inputs(fitted: FittedBnn) -> tuple[np.ndarray, list[str]]:
    """Fixed probe inputs: a seeded sample of training rows plus of stored test rows."""
    rng = np.random.default_rng(PROBE_SEED)
    x_train, _ = fitted.training_data()
    test = fitted.test_data()
    parts, labels = [], []
    for split, x in [("train", x_train), ("test", None if test is None else test[0])]:
        if x is None or not len(x):
            continue
        rows = np.sort(rng.choice(len(x), min(PROBES_PER_SPLIT, len(x)), replace=False))
        parts.append(x[rows])
        labels += [f"{split}[{row}]" for row in rows]
    return np.concatenate(parts), labels


def function_space_draws(fitted: FittedBnn) -> xr.Dataset:
    """sigma (when learned) and f at the probe inputs per (chain, draw), in original units."""
    x, labels = probe_inputs(fitted)
    f, sigma = fitted.draws(x)
    posterior = fitted.posterior
    variables = {FUNCTION: sample_dataarray(f, posterior, ("probe",), probe=labels)}
    if fitted.model.fixed_sigma is None:
        variables[NOISE] = sample_dataarray(sigma, posterior)
    return xr.Dataset(variables)


def _mcmc_checks(fitted: FittedBnn, draws: xr.Dataset, limits: Thresholds) -> list[Check]:
    n_chains = draws.sizes["chain"]
    checks = []
    if n_chains < 2:
        checks.append(
            Check(
                "chains",
                "Number of chains",
                n_chains,
                WARN,
                ">= 2",
                "R-hat needs 2+ chains",
                "set [inference].chains to 4 so that chains can be compared",
            )
        )
    else:
        checks += [
            _rhat_check(
                "r_hat_function",
                "R-hat, function values",
                draws[FUNCTION],
                f"max over {draws.sizes['probe']} probe inputs",
                limits,
            ),
        ]
        if NOISE in draws:
            checks.append(
                _rhat_check("r_hat_sigma", "R-hat, noise sd", draws[NOISE], "sigma", limits)
            )
    over = f"{draws.sizes['probe']} probe inputs" + (" and sigma" if NOISE in draws else "")
    for kind in ("bulk", "tail"):
        value = float(azs.ess(draws, method=kind).to_dataarray().min())
        checks.append(_ess_check(kind, value, n_chains, over, limits))
    checks += _sampler_checks(fitted, limits)
    checks.append(_weight_rhat(fitted, n_chains))
    return checks


def _rhat_check(
    name: str, label: str, values: xr.DataArray, detail: str, limits: Thresholds
) -> Check:
    value = float(azs.rhat(values).max())
    verdict = OK if value < limits.rhat_ok else WARN if value < limits.rhat_fail else FAIL
    return Check(
        name,
        label,
        value,
        verdict,
        f"< {limits.rhat_ok} (FAIL >= {limits.rhat_fail})",
        detail,
        "chains disagree: run longer ([inference].tune and draws) or more chains; look at the "
        "trace and rank plots for a chain stuck elsewhere",
    )


def _ess_check(kind: str, value: float, n_chains: int, over: str, limits: Thresholds) -> Check:
    ok = limits.ess_per_chain_ok * n_chains
    verdict = OK if value >= ok else WARN if value >= limits.ess_fail else FAIL
    return Check(
        f"ess_{kind}",
        f"ESS ({kind}), function values and sigma",
        value,
        verdict,
        f">= {ok} ({limits.ess_per_chain_ok} per chain; FAIL < {limits.ess_fail})",
        f"minimum over {over}",
        "too few effective draws: raise [inference].draws (and tune)"
        + ("" if kind == "bulk" else "; tail ESS limits interval accuracy"),
    )


def _sampler_checks(fitted: FittedBnn, limits: Thresholds) -> list[Check]:
    stats = fitted.trace[SAMPLE_STATS].to_dataset()
    n_transitions = n_samples(stats)
    target_accept = fitted.spec.inference.target_accept
    divergences = int(stats["diverging"].sum())
    fraction = divergences / n_transitions
    checks = [
        Check(
            "divergences",
            "Divergent transitions",
            divergences,
            OK if divergences == 0 else WARN if fraction < limits.divergence_fail else FAIL,
            f"0 (FAIL >= {limits.divergence_fail:.0%} of transitions)",
            f"{fraction:.2%} of {n_transitions} transitions",
            f"raise [inference].target_accept (now {target_accept}) toward 0.99; if they "
            "persist, a narrower prior ([prior].weight_scale) smooths the geometry",
        )
    ]
    if "reached_max_treedepth" in stats:
        saturated = float(stats["reached_max_treedepth"].mean())
        checks.append(
            Check(
                "max_tree_depth",
                "Transitions at maximum tree depth",
                saturated,
                OK if saturated < limits.treedepth_warn else WARN,
                f"< {limits.treedepth_warn:.0%}",
                "fraction of transitions; costs time, does not bias",
                "trajectories are cut short: longer tuning helps adaptation; results are valid "
                "if the convergence checks pass",
            )
        )
    bfmi = azs.bfmi(stats)["energy"].values
    checks.append(
        Check(
            "e_bfmi",
            "E-BFMI (lowest chain)",
            float(bfmi.min()),
            OK if bfmi.min() >= limits.ebfmi_warn else WARN,
            f">= {limits.ebfmi_warn}",
            "per chain: " + ", ".join(f"{b:.2f}" for b in bfmi),
            "momentum resampling explores the energy poorly: longer tuning, or a narrower "
            "noise prior ([likelihood].sigma_prior_scale)",
            per_chain=[float(b) for b in bfmi],
        )
    )
    return checks


def _weight_rhat(fitted: FittedBnn, n_chains: int) -> Check:
    value = None
    if n_chains >= 2:
        names = list(fitted.model.weight_names)
        value = float(azs.rhat(fitted.posterior[names]).to_dataarray().max())
    return Check(
        "r_hat_weights",
        "R-hat, weights (information only)",
        value,
        INFO,
        "not judged",
        "expected to be high when chains visit permuted copies of the same network",
        "does not decide the verdict: hidden-unit symmetry makes it high even when predictions "
        "agree; trust the function-space R-hat",
    )


def _vi_checks(fitted: FittedBnn, limits: Thresholds) -> list[Check]:
    checks = []
    if VI_LOSS in fitted.trace.children:
        checks.append(_loss_check(fitted))
    if has_approximation(fitted):
        khat = importance_densities(fitted).pareto_k()
        verdict = OK if khat <= limits.khat_ok else WARN if khat <= limits.khat_fail else FAIL
        n_draws = n_samples(fitted.posterior)
        checks.append(
            Check(
                "pareto_k",
                "Pareto k-hat of p/q (PSIS)",
                khat,
                verdict,
                f"<= {limits.khat_ok} (FAIL > {limits.khat_fail})",
                f"importance ratios log p(theta, y) - log q(theta) over {n_draws} draws from q",
                "q is far from the posterior: its uncertainties are not the posterior's, though "
                "its predictions may still score well; judge them by the report's calibration "
                "and LOO, or fit with NUTS for a faithful posterior",
            )
        )
    return checks


def _loss_check(fitted: FittedBnn) -> Check:
    loss = fitted.trace[VI_LOSS].to_dataset()
    losses, window = loss["loss"].values, int(loss.attrs["window"])
    label, threshold = "Loss (negative ELBO) convergence", f"< {PLATEAU_Z} standard errors"
    if len(losses) < 2 * window:
        return Check(
            "loss_convergence",
            label,
            None,
            FAIL,
            threshold,
            f"only {len(losses)} iterations: fewer than two windows of {window} to compare",
            "raise [inference].iterations so the loss can be seen to level off",
        )
    z = plateau_z(losses, window)
    converged = bool(loss.attrs.get("converged", 0))
    verdict = OK if converged else WARN if z < PLATEAU_Z else FAIL
    stopped = "stopped on a plateau" if converged else "hit [inference].iterations"
    return Check(
        "loss_convergence",
        label,
        z,
        verdict,
        threshold,
        f"drop of the mean loss over the last {window} iterations; {stopped} after "
        f"{len(losses)} iterations",
        "the loss was still falling: raise [inference].iterations (or the learning rate)",
    )


def _describe(draws: xr.Dataset, mcmc: bool = False) -> list[dict]:
    """Per-quantity posterior summary (with MCMC diagnostics for NUTS runs)."""
    columns = {"mean": draws.mean(("chain", "draw")), "sd": draws.std(("chain", "draw"))}
    if mcmc:
        columns["mcse_mean"] = azs.mcse(draws)
        columns["ess_bulk"] = azs.ess(draws, method="bulk")
        columns["ess_tail"] = azs.ess(draws, method="tail")
        if draws.sizes["chain"] > 1:
            columns["r_hat"] = azs.rhat(draws)
    rows = []
    if NOISE in draws:
        rows.append({"quantity": NOISE} | {k: float(v[NOISE]) for k, v in columns.items()})
    for i, label in enumerate(draws["probe"].values):
        rows.append(
            {"quantity": f"f({label})"} | {k: float(v[FUNCTION][i]) for k, v in columns.items()}
        )
    return rows


def _probe_records(fitted: FittedBnn) -> list[dict]:
    x, labels = probe_inputs(fitted)
    return [
        {"probe": label, "inputs": dict(zip(fitted.feature_names, map(float, row), strict=True))}
        for label, row in zip(labels, x, strict=True)
    ]
