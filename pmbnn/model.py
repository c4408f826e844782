"""Spec -> PyMC model. The only module that knows the network's shape.

Layers are named ``w_0, b_0, ..., w_out, b_out`` with dims ``feature -> unit_0 -> ... -> unit_k``.
The network output ``f`` is a plain PyTensor expression, not a Deterministic, so traces hold
parameters only; prediction vectorises the same expression over posterior draws. The likelihood
family (families/) says how many outputs the network has (more than one: ``w_out`` and
``b_out`` gain the dim ``output``) and adds the observed variable.

With a learned weight scale (``[prior] kind = "hierarchical"`` or ``"ard"``) the free variables
are standard normal draws ``w_0_z`` and the scales (``layer_scale``, dim ``layer``;
``feature_scale``, dim ``feature``); each weight ``w_0`` is a Deterministic of them, so traces
and prediction keep the weight names whatever the prior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.tensor.variable import TensorVariable

from pmbnn.families import Family, family_of
from pmbnn.spec import PriorSpec, Spec
from pmbnn.trace import (
    FEATURE_SCALE,
    FUNCTION,
    INPUTS,
    LAYER_SCALE,
    STANDARD_SUFFIX,
    TARGET_DATA,
    TARGET_SCALE,
)

HYPERPRIORS: dict[str, Callable[..., TensorVariable]] = {
    "halfnormal": lambda name, scale, **kw: pm.HalfNormal(name, sigma=scale, **kw),
    "halfcauchy": lambda name, scale, **kw: pm.HalfCauchy(name, beta=scale, **kw),
    "exponential": lambda name, scale, **kw: pm.Exponential(name, scale=scale, **kw),
}
ACTIVATIONS: dict[str, Callable[[TensorVariable], TensorVariable]] = {
    "tanh": pt.tanh,
    "relu": lambda z: pt.maximum(z, 0.0),
    "gelu": lambda z: 0.5 * z * (1.0 + pt.erf(z / np.sqrt(2.0))),
    "softplus": pt.softplus,
    "sigmoid": pt.sigmoid,
}


@dataclass(frozen=True)
class BnnModel:
    """A built PyMC model plus the handles that prediction needs."""

    model: pm.Model
    output: TensorVariable  # network output f(X), shape (obs,) or (obs, output)
    inputs: SharedVariable  # the pm.Data holding X
    weight_names: tuple[str, ...]
    family: Family
    spec: Spec
    classes: list | None = None  # a labelled target's labels, in code order
    batch_size: int | None = None  # rows per likelihood evaluation; None: every row


def layer_names(hidden: list[int]) -> list[tuple[str, str]]:
    """(weight, bias) variable names, input layer first, output layer last."""
    return [(f"w_{i}", f"b_{i}") for i in range(len(hidden))] + [("w_out", "b_out")]


def scaled_layers(hidden: list[int], prior: PriorSpec) -> list[str]:
    """The ``layer`` coordinate: layers ("0", ..., "out") whose weights share one learned scale.

    Every layer with a hierarchical prior; with ARD all but the first, whose scale is one per
    input feature. Empty for a fixed prior.
    """
    if not prior.learned:
        return []
    layers = [w_name.removeprefix("w_") for w_name, _ in layer_names(hidden)]
    return layers[1:] if prior.kind == "ard" else layers


def parameter_shapes(
    spec: Spec, n_features: int, classes: list | None = None
) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every variable a posterior of the spec's model holds: the weights and
    biases, the likelihood's own (noise sd, ...), and with a learned scale the scales and
    standard-normal weights."""
    family = family_of(spec.likelihood)
    n_outputs = family.n_outputs(classes)
    outputs = () if n_outputs == 1 else (n_outputs,)
    widths = [n_features, *spec.network.hidden]
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (w_name, b_name) in enumerate(layer_names(spec.network.hidden)):
        is_output = layer == len(spec.network.hidden)
        shapes[w_name] = (
            (widths[layer], *outputs) if is_output else (widths[layer], widths[layer + 1])
        )
        shapes[b_name] = outputs if is_output else (widths[layer + 1],)
        if spec.prior.learned and not spec.prior.centred:
            shapes[w_name + STANDARD_SUFFIX] = shapes[w_name]
    if layers := scaled_layers(spec.network.hidden, spec.prior):
        shapes[LAYER_SCALE] = (len(layers),)
    if spec.prior.kind == "ard":
        shapes[FEATURE_SCALE] = (n_features,)
    return shapes | family.parameter_shapes()


def build_model(
    spec: Spec,
    x: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    batch_size: int | None = None,
    *,
    target_scale: float,
    classes: list | None = None,
) -> BnnModel:
    """The BNN of `spec` on (already scaled) inputs x and targets y (class codes, with the
    labels in `classes`, for a labelled family); `target_scale` is the sd the targets were
    divided by (1.0 for targets in their own units), so that a fixed noise sd keeps the
    target's units. It has no default: a wrong one silently rescales the noise.

    With `batch_size`, the likelihood sees a fresh random minibatch of that many rows at each
    evaluation, scaled up to all rows (``total_size``): an unbiased, stochastic log density
    for minibatch ADVI, whose cost per evaluation does not grow with the number of rows. Such a
    model only trains; prediction and diagnostics use the full-data model (`minibatch_model`).
    """
    hidden = spec.network.hidden
    unit_dims = [f"unit_{i}" for i in range(len(hidden))]
    coords: dict[str, object] = {"obs": np.arange(len(y)), "feature": feature_names}
    coords |= {dim: np.arange(width) for dim, width in zip(unit_dims, hidden, strict=True)}
    activation = ACTIVATIONS[spec.network.activation]
    prior = spec.prior
    names = layer_names(hidden)
    if layers := scaled_layers(hidden, prior):
        coords["layer"] = layers
    family = family_of(spec.likelihood)
    n_outputs = family.n_outputs(classes)
    out_dims: tuple[str, ...] = ()
    if n_outputs > 1:
        coords["output"] = family.output_names(classes)
        out_dims = ("output",)

    with pm.Model(coords=coords) as model:
        inputs = pm.Data(INPUTS, x, dims=("obs", "feature"))
        targets = pm.Data(TARGET_DATA, family.model_values(y), dims="obs")
        if batch_size is None:
            h, observed = inputs, targets
        else:
            h, observed = pm.Minibatch(inputs, targets, batch_size=batch_size)
        in_dim, fan_in = "feature", x.shape[1]
        scales = _weight_scales(prior, len(names))
        for layer, (w_name, b_name) in enumerate(names):
            is_output = layer == len(hidden)
            w_dims = (in_dim, *out_dims) if is_output else (in_dim, unit_dims[layer])
            w_sd = scales[layer] / np.sqrt(fan_in) if prior.fan_in else scales[layer]
            if prior.kind == "ard" and layer == 0 and len(w_dims) == 2:
                w_sd = w_sd[:, None]  # one scale per input: a row of w_0 each
            if is_output and (heads := family.head_scales()):
                w_sd = _with_fixed_heads(w_sd, heads, fan_in, n_outputs, prior.fan_in)
            # initval="prior": each chain (and ADVI) starts from its own prior draw, which breaks
            # the hidden-unit symmetry that an all-zero start would leave in place.
            if prior.learned and not prior.centred:  # the scale and z independent a priori
                z = pm.Normal(w_name + STANDARD_SUFFIX, 0.0, 1.0, dims=w_dims, initval="prior")
                w = pm.Deterministic(w_name, w_sd * z, dims=w_dims)
            else:
                w = pm.Normal(w_name, 0.0, w_sd, dims=w_dims, initval="prior")
            b = pm.Normal(
                b_name,
                0.0,
                prior.bias_scale,
                dims=out_dims if is_output else unit_dims[layer],
                initval="prior",
            )
            h = h @ w + b
            if not is_output:
                h = activation(h)
                in_dim, fan_in = unit_dims[layer], hidden[layer]
        output = h
        output.name = FUNCTION
        if batch_size is None:
            family.likelihood(output, targets, target_scale, dims="obs", shape=h.shape[0])
        else:
            family.likelihood(output, observed, target_scale, total_size=len(y))

    return BnnModel(
        model=model,
        output=output,
        inputs=inputs,
        weight_names=tuple(name for pair in names for name in pair),
        family=family,
        spec=spec,
        classes=classes,
        batch_size=batch_size,
    )


def _with_fixed_heads(
    w_sd: Any, heads: dict[int, float], fan_in: int, n_outputs: int, by_fan_in: bool
) -> TensorVariable:
    """The output layer's (fan-in, outputs) weight sds: the layer's in most columns, a fixed
    scale in the columns a family gives its own (a noise head's)."""
    base = pt.as_tensor(w_sd)
    base = base[:, 0] if base.ndim == 2 else base
    columns = [
        pt.full((fan_in,), heads[c] / np.sqrt(fan_in) if by_fan_in else heads[c])
        if c in heads
        else pt.ones(fan_in) * base
        for c in range(n_outputs)
    ]
    return pt.stack(columns, axis=1)


def _weight_scales(prior: PriorSpec, n_layers: int) -> list:
    """Each layer's weight scale s (w ~ N(0, s / sqrt(fan-in))): the fixed number, or the
    learned scale; with ARD the first layer's is the vector of per-feature scales."""
    if not prior.learned:
        return [prior.weight_scale] * n_layers
    assert prior.scale_prior is not None and prior.scale_prior_scale is not None
    hyperprior = HYPERPRIORS[prior.scale_prior]
    scales = []
    if prior.kind == "ard":
        scales.append(hyperprior(FEATURE_SCALE, prior.scale_prior_scale, dims="feature"))
    if n_layers > len(scales):  # ARD without hidden layers has no per-layer scale
        layer_scale = hyperprior(LAYER_SCALE, prior.scale_prior_scale, dims="layer")
        scales += [layer_scale[i] for i in range(n_layers - len(scales))]
    return scales


def minibatch_model(bnn: BnnModel, batch_size: int) -> BnnModel:
    """The same BNN on the same rows with a minibatch likelihood, for training only.

    Its free variables have the same names and shapes as `bnn`'s, so draws fitted on it
    predict through `bnn`.
    """
    feature_names = list(bnn.model.coords["feature"])
    x, y = bnn.inputs.get_value(), bnn.model[TARGET_DATA].get_value()
    return build_model(
        bnn.spec,
        x,
        y,
        feature_names,
        batch_size=batch_size,
        classes=bnn.classes,
        target_scale=target_scale_of(bnn.model),
    )


def target_scale_of(model: pm.Model) -> float:
    """The target sd a model with a fixed noise sd was built for (1.0 when none is needed)."""
    if TARGET_SCALE in model.named_vars:
        return float(model[TARGET_SCALE].get_value())
    return 1.0
