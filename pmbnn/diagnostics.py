"""A fitted run -> checks with verdicts (data, not text): did inference work?

Weight-space convergence statistics are misleading for a BNN: permuting hidden units (and
flipping signs under odd activations) leaves the posterior unchanged, so chains in equivalent
modes disagree on every weight while agreeing on every prediction. Convergence is therefore
judged in function space, on the network output at fixed probe inputs, and on the parameters no
permutation moves: the likelihood's noise parameters (sigma, Student-t's nu; a heteroscedastic
family's sigma(x) at the probes) and the learned weight scales (per layer, per input feature);
weight R-hat is reported for information only. "Function values" are what the likelihood family
calls its location in original units: the mean (of log y for log-normal), a Poisson rate, and
for classifiers the class probabilities, not the logits: softmax ignores a shift of every
logit, so chains may disagree on logits while agreeing on every probability.
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import xarray as xr

from pmbnn.fitted import FittedBnn
from pmbnn.loss import PLATEAU_Z, plateau_z
from pmbnn.trace import (
    FEATURE_SCALE,
    FUNCTION,
    LAYER_SCALE,
    NOISE,
    NU,
    SAMPLE_STATS,
    VI_LOSS,
    n_samples,
    sample_dataarray,
)
from pmbnn.verdicts import (
    DEFAULT_THRESHOLDS,
    FAIL,
    INFO,
    OK,
    WARN,
    Check,
    Diagnosis,
    Thresholds,
    Verdict,
)
from pmbnn.vi_quality import MIN_DRAWS_FOR_KHAT, has_approximation, importance_densities

__all__ = ["DEFAULT_THRESHOLDS", "FAIL", "INFO", "OK", "WARN", "Check", "Diagnosis",
           "Thresholds", "Verdict", "diagnose", "function_space_draws", "probe_inputs"]  # fmt: skip


SCALES = (LAYER_SCALE, FEATURE_SCALE)  # learned weight scales, judged like sigma
PROBES_PER_SPLIT = 8
PROBE_SEED = 20180101  # any fixed value: the probe set must be the same every time


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
    """The judged quantities per (chain, draw): the family's location at the probe inputs in
    original units (dims probe[, class]), its noise parameters (sigma, nu; sigma(x) per probe
    when the noise varies), and the learned weight scales (when the prior has them)."""
    x, labels = probe_inputs(fitted)
    distribution = fitted.distribution(x)
    location = distribution.location()
    posterior = fitted.posterior
    dims: tuple[str, ...] = ("probe",)
    coords: dict[str, list] = {"probe": labels}
    if location.ndim == 3:
        dims, coords = ("probe", "class"), coords | {"class": list(map(str, fitted.classes or []))}
    variables = {FUNCTION: sample_dataarray(location, posterior, dims, **coords)}
    for name, values in distribution.noise().items():
        per_probe = ("probe",) if values.ndim == 2 else ()
        variables[name] = sample_dataarray(
            values, posterior, per_probe, **({"probe": labels} if per_probe else {})
        )
    variables |= {name: posterior[name] for name in SCALES if name in posterior}
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
            detail = "max of sigma(x) over the probes" if draws[NOISE].ndim > 2 else "sigma"
            checks.append(
                _rhat_check("r_hat_sigma", "R-hat, noise sd", draws[NOISE], detail, limits)
            )
        if NU in draws:
            label = "R-hat, Student-t degrees of freedom"
            checks.append(_rhat_check("r_hat_nu", label, draws[NU], "nu", limits))
        if scales := [name for name in SCALES if name in draws]:
            judged = draws[scales]
            detail = "max over " + " and ".join(
                f"{draws.sizes[draws[n].dims[-1]]} {n}" for n in scales
            )
            checks.append(
                _rhat_check("r_hat_scales", "R-hat, learned weight scales", judged, detail, limits)
            )
    over = f"{draws.sizes['probe']} probe inputs"
    over += "".join(f", {name}" for name in (NOISE, NU) if name in draws)
    over += "".join(f", {name}" for name in SCALES if name in draws)
    for kind in ("bulk", "tail"):
        value = float(azs.ess(draws, method=kind).to_dataarray().min())
        checks.append(_ess_check(kind, value, n_chains, over, limits))
    checks += _sampler_checks(fitted, limits)
    checks.append(_weight_rhat(fitted, n_chains))
    return checks


def _rhat_check(
    name: str, label: str, values: xr.DataArray | xr.Dataset, detail: str, limits: Thresholds
) -> Check:
    """The largest R-hat over every element of values (each variable with its own dims)."""
    rhat = azs.rhat(values)
    value = float((rhat.to_dataarray() if isinstance(rhat, xr.Dataset) else rhat).max())
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
        f"ESS ({kind}), function values, sigma, scales",
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
            "persist, a narrower prior smooths the geometry ([prior].weight_scale, or with a "
            "learned scale a smaller scale_prior_scale or kind = 'fixed')",
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
        n_draws = n_samples(fitted.posterior)
        khat = importance_densities(fitted).pareto_k() if n_draws >= MIN_DRAWS_FOR_KHAT else None
        ok_up_to, fail_above = limits.khat_limits(n_draws)
        verdict = FAIL  # also when q cannot be judged at all
        if khat is not None and khat <= fail_above:
            verdict = OK if khat <= ok_up_to else WARN
        detail = (
            f"importance ratios log p(theta, y) - log q(theta) over {n_draws} draws from q"
            if khat is not None
            else f"only {n_draws} draws from q: k-hat needs {MIN_DRAWS_FOR_KHAT}; raise "
            "[inference].draws"
        )
        checks.append(
            Check(
                "pareto_k",
                "Pareto k-hat of p/q (PSIS)",
                khat,
                verdict,
                f"<= {ok_up_to:.2f} (FAIL > {fail_above:.2f}, for {n_draws} draws)",
                detail,
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
    for name in [n for n in (NOISE, NU, FUNCTION, *SCALES) if n in draws]:
        values = draws[name]
        element_dims = [dim for dim in values.dims if dim not in ("chain", "draw")]
        labels = [values[dim].values for dim in element_dims]
        for index in np.ndindex(*values.shape[2:]):
            rows.append(
                {
                    "quantity": _quantity(
                        name, [str(lab[i]) for lab, i in zip(labels, index, strict=True)]
                    )
                }
                | {k: float(v[name].values[index]) for k, v in columns.items()}
            )
    return rows


def _quantity(name: str, labels: list[str]) -> str:
    """f(train[3]), f(train[3])[b], sigma(test[1]), nu, layer_scale[0]."""
    if name == FUNCTION or (name == NOISE and labels):
        head = f"{name}({labels[0]})" if labels else name
        return head + "".join(f"[{label}]" for label in labels[1:])
    return name + "".join(f"[{label}]" for label in labels)


def _probe_records(fitted: FittedBnn) -> list[dict]:
    x, labels = probe_inputs(fitted)
    return [
        {"probe": label, "inputs": dict(zip(fitted.feature_names, map(float, row), strict=True))}
        for label, row in zip(labels, x, strict=True)
    ]
