"""The declared model: validated, printable, saveable data (TOML in and out).

A spec says *what* to fit; `model.py` turns it into a PyMC model and `inference/`
decides nothing about the network. Every field has a default, so ``Spec()`` is valid.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from pmbnn.errors import PmbnnError
from pmbnn.validation_messages import describe

Activation = Literal["tanh", "relu", "gelu", "softplus", "sigmoid"]
Method = Literal["advi", "fullrank_advi", "nuts"]
# NUTS implementations: PyMC's own (numba-compiled), or nutpie / NumPyro / BlackJAX (the jax
# extra); "auto": the fastest installed, chosen when the fit starts (inference/samplers.py).
Sampler = Literal["auto", "pymc", "nutpie", "numpyro", "blackjax"]
# What PyTensor compiles ADVI, nutpie and prediction to ("auto": JAX if installed, else numba).
Backend = Literal["auto", "numba", "jax"]
# Where JAX-compiled fitting runs ("auto": the device with the faster gradient for the model).
Device = Literal["auto", "cpu", "gpu"]
BUILTIN_EXAMPLES = ("sine-gap", "two-moons", "hetero-sine", "outlier-sine")
Example = Literal["sine-gap", "two-moons", "hetero-sine", "outlier-sine"]
# Seeds reach NumPy, PyMC and JAX; JAX and PyMC's samplers take 32-bit unsigned seeds.
MAX_SEED = 2**32 - 1
# fixed: one given weight scale; hierarchical: one learned per layer; ard: also one per input.
PriorKind = Literal["fixed", "hierarchical", "ard"]
# Hyperpriors of a learned scale (PyMC's HalfNormal, HalfCauchy, Exponential with that scale).
ScalePrior = Literal["halfnormal", "halfcauchy", "exponential"]
DEFAULT_PRIOR_KIND: PriorKind = "hierarchical"
DEFAULT_SCALE_PRIOR_SCALE = 2.0
# TOML has inf and nan; neither is a usable scale or rate.
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _python_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _python_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_python_value(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Section(BaseModel):
    # strict: `iterations = true` or `draws = "100"` is an error, not 1 or 100.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _python_values(cls, data: Any) -> Any:
        """NumPy scalars and tuples, as Python code passes them, are the numbers and lists
        they stand for (strict mode would refuse them); bools and strings stay what they are."""
        return _python_value(data) if isinstance(data, dict) else data


class NetworkSpec(_Section):
    hidden: list[PositiveInt] = Field(default_factory=lambda: [50])
    activation: Activation = "tanh"


class PriorSpec(_Section):
    """The weight prior. Every kind draws w ~ Normal(0, s / sqrt(fan-in)) (just s without
    fan_in); the kinds differ in where the scale s comes from.

    ``fixed``: s = weight_scale, the same for every layer. ``hierarchical``: s is learned, one
    per layer, each with the hyperprior ``scale_prior(scale_prior_scale)``, non-centred
    (w = s / sqrt(fan-in) * z, z ~ N(0, 1)) so that NUTS meets no funnel. ``ard``: as
    hierarchical, but the first layer has one learned scale per input feature (automatic
    relevance determination) instead of one for the layer. Biases keep the fixed Normal(0,
    bias_scale) prior in every kind. A spec that sets ``weight_scale`` without a ``kind``
    asks for the fixed prior.
    """

    kind: PriorKind = DEFAULT_PRIOR_KIND
    weight_scale: PositiveFloat | None = None  # fixed only (default 1.0)
    bias_scale: PositiveFloat = 1.0
    fan_in: bool = True
    scale_prior: ScalePrior | None = None  # hierarchical and ard only (default halfnormal)
    scale_prior_scale: PositiveFloat | None = None  # likewise (default DEFAULT_SCALE_PRIOR_SCALE)
    # Learned scales only: w ~ N(0, s / sqrt(fan-in)) directly (centred) instead of s * z.
    centred: bool = False

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "kind" not in data and data.get("weight_scale") is not None:
            data = data | {"kind": "fixed"}
        if data.get("kind", DEFAULT_PRIOR_KIND) == "fixed":
            return {"weight_scale": 1.0} | {k: v for k, v in data.items() if v is not None}
        defaults = {"scale_prior": "halfnormal", "scale_prior_scale": DEFAULT_SCALE_PRIOR_SCALE}
        return defaults | {k: v for k, v in data.items() if v is not None}

    @model_validator(mode="after")
    def _keys_of_the_kind(self) -> PriorSpec:
        hyperprior_keys = self.scale_prior is not None or self.scale_prior_scale is not None
        if self.kind == "fixed" and (hyperprior_keys or self.centred):
            raise ValueError(
                "scale_prior, scale_prior_scale and centred describe a learned scale: "
                "use them with kind = 'hierarchical' or 'ard', or remove them"
            )
        if self.kind != "fixed" and self.weight_scale is not None:
            raise ValueError(
                f"weight_scale is the scale of kind = 'fixed'; kind = {self.kind!r} learns it "
                "(its hyperprior is scale_prior_scale): remove weight_scale or set kind = 'fixed'"
            )
        return self

    @property
    def learned(self) -> bool:
        """Whether the weight scales are parameters (hierarchical, ard) rather than constants."""
        return self.kind != "fixed"


# The likelihood of the target given the network's outputs (pmbnn/families/ knows each one).
Family = Literal["gaussian", "student_t", "heteroscedastic_gaussian", "lognormal", "poisson",
                 "bernoulli", "categorical"]  # fmt: skip
# Families with a noise sd shared by every input (sigma, learned or fixed).
_SHARED_NOISE = ("gaussian", "student_t", "lognormal")
# Juarez & Steel (2010): Gamma(2, 0.1) on Student-t's degrees of freedom, mean 20, the prior
# Stan's developers recommend; it lets the data choose from Cauchy-like tails to near-Normal.
DEFAULT_NU_PRIOR_RATE = 0.1
# The log-noise head's weight scale (fixed, whatever the prior kind): measured on hetero-sine
# (benchmarks/families.py), 0.5 cannot reach the 13-fold range of its noise sd (90% coverage
# 0.93 / 0.87 in the quiet / noisy half), 1.0 and 2.0 can (0.92 / 0.89, 0.92 / 0.89).
DEFAULT_NOISE_HEAD_SCALE = 1.0


class LikelihoodSpec(_Section):
    """How the target depends on the network's outputs.

    ``gaussian`` (default): y ~ Normal(f(x), sigma), sigma learned (HalfNormal with
    ``sigma_prior_scale``, in units of the training target's sd when it is standardized) or
    fixed (``sigma``, in the target's own units; of log y for lognormal). ``student_t``:
    the same with Student-t noise, its degrees of freedom ``nu`` fixed or learned
    (Gamma(2, ``nu_prior_rate``)). ``lognormal``: log y ~ Normal(f(x), sigma), for a positive,
    skewed target (predictions back-transformed exactly). ``heteroscedastic_gaussian``: a
    second output head g(x) gives the noise sd, sigma(x) = exp(g(x)); its weights have the
    fixed scale ``noise_head_scale``. ``poisson``: counts, rate exp(f(x)). ``bernoulli``: two
    classes, P(second label) = sigmoid(f(x)). ``categorical``: K classes, softmax of K outputs.
    """

    family: Family = "gaussian"
    sigma_prior_scale: PositiveFloat | None = None  # default 1.0 where sigma is learned
    sigma: PositiveFloat | None = None  # fixed noise sd in y's units; sigma_prior_scale unused
    nu: PositiveFloat | None = None  # student_t: fixed degrees of freedom (None: learned)
    nu_prior_rate: PositiveFloat | None = None  # student_t, learned nu (default 0.1)
    noise_head_scale: PositiveFloat | None = None  # heteroscedastic_gaussian (default 1.0)

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_family(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        family = data.get("family", "gaussian")
        defaults: dict[str, Any] = {}
        if family in _SHARED_NOISE and data.get("sigma") is None:
            defaults["sigma_prior_scale"] = 1.0
        if family == "student_t" and data.get("nu") is None:
            defaults["nu_prior_rate"] = DEFAULT_NU_PRIOR_RATE
        if family == "heteroscedastic_gaussian":
            defaults["noise_head_scale"] = DEFAULT_NOISE_HEAD_SCALE
        given = {k: v for k, v in data.items() if v is not None}
        # A fixed value makes its prior's key unused (as it always has for sigma).
        for fixed, prior_key in (("sigma", "sigma_prior_scale"), ("nu", "nu_prior_rate")):
            if fixed in given:
                given.pop(prior_key, None)
        return defaults | given

    @model_validator(mode="after")
    def _keys_of_the_family(self) -> LikelihoodSpec:
        allowed = {"family"}
        if self.family in _SHARED_NOISE:
            allowed |= {"sigma", "sigma_prior_scale"}
        if self.family == "student_t":
            allowed |= {"nu", "nu_prior_rate"}
        if self.family == "heteroscedastic_gaussian":
            allowed.add("noise_head_scale")
        given = {key for key, value in self if value is not None}
        if extra := sorted(given - allowed):
            raise ValueError(
                f"{extra[0]} does not apply to family = {self.family!r} (its keys: "
                f"{', '.join(sorted(allowed))}): remove it or choose another family"
            )
        return self

    @property
    def learned_noise(self) -> bool:
        """Whether a noise sd shared by every input is a parameter (sigma in the trace)."""
        return self.family in _SHARED_NOISE and self.sigma is None


class DataSpec(_Section):
    path: str | None = None
    example: Example | None = None
    target: str | None = None
    features: list[str] | None = None
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, allow_inf_nan=False)
    # A table of held-out rows (same columns) instead of a random test_fraction of path.
    test_path: str | None = None
    standardize: bool = True
    dropna: bool = False  # drop rows with missing or infinite values instead of failing

    @model_validator(mode="before")
    @classmethod
    def _test_table_replaces_the_split(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("test_path") is not None:
            data = {"test_fraction": 0.0} | data
        return data

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.path is not None and self.example is not None:
            raise ValueError("set either path (a data file) or example (built-in data), not both")
        if self.test_path is not None and self.test_fraction > 0:
            raise ValueError(
                "test_path gives the held-out rows: set test_fraction = 0 (or leave it out)"
            )
        return self


class InferenceSpec(_Section):
    method: Method = "nuts"
    draws: PositiveInt = 1000
    tune: NonNegativeInt = 1000
    chains: PositiveInt = 2
    target_accept: float = Field(default=0.9, gt=0.0, lt=1.0, allow_inf_nan=False)
    sampler: Sampler = "auto"
    backend: Backend = "auto"
    device: Device = "auto"
    iterations: PositiveInt = 30000
    learning_rate: PositiveFloat = 0.01
    # ADVI on random minibatches of this many rows (None: all rows each iteration).
    batch_size: PositiveInt | None = None
    seed: int = Field(default=0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _batch_size_is_for_advi(self) -> InferenceSpec:
        if self.batch_size is not None and self.method == "nuts":
            raise ValueError(
                "batch_size applies to ADVI only (NUTS needs the exact likelihood); "
                "remove batch_size or set method = 'advi'"
            )
        return self


class Spec(_Section):
    """A whole declared BNN: network, prior, likelihood, data and inference settings.

    Every key has a default (``Spec()`` is valid); `with_overrides` returns a changed copy,
    `to_toml` the resolved spec as TOML. Sections: ``network`` (hidden widths, activation),
    ``prior`` (weight and bias scales), ``likelihood`` (noise), ``data`` (table, target,
    features, held-out rows), ``inference`` (method, sampler, draws, seed, ...). The README's
    spec table lists every key.
    """

    network: NetworkSpec = NetworkSpec()
    prior: PriorSpec = PriorSpec()
    likelihood: LikelihoodSpec = LikelihoodSpec()
    data: DataSpec = DataSpec()
    inference: InferenceSpec = InferenceSpec()

    def with_overrides(
        self, source: str = "command-line options", **sections: dict[str, Any]
    ) -> Spec:
        """A new spec with some keys replaced, validated like a loaded one.

        ``spec.with_overrides(inference={"method": "advi"})``; ``None`` values are skipped
        so that unset CLI flags change nothing. A data file given as ``data={"path": ...}``
        replaces the built-in example; a test table (``test_path``) replaces the random split,
        and a test_fraction given alone replaces a test table. `source` names the overrides
        in an error message.
        """
        raw = self.model_dump()
        for section, values in sections.items():
            given = {k: v for k, v in values.items() if v is not None}
            if section == "prior" and "kind" not in given and "weight_scale" in given:
                given = {"kind": "fixed"} | given  # a weight scale alone asks for kind fixed
            if (
                section == "prior"
                and given.get("kind", raw["prior"]["kind"]) != raw["prior"]["kind"]
            ):
                # Another kind brings its own defaults: the old kind's keys do not carry over.
                for key in ("weight_scale", "scale_prior", "scale_prior_scale"):
                    raw["prior"][key] = None
                raw["prior"]["centred"] = False
            if section == "likelihood":
                likelihood = raw["likelihood"]
                if given.get("family", likelihood["family"]) != likelihood["family"]:
                    # Another family brings its own keys and defaults.
                    likelihood.update(dict.fromkeys(likelihood, None))
            if section == "data" and "path" in given:
                raw["data"]["example"] = None
            if section == "data" and "test_path" in given:
                raw["data"]["test_fraction"] = 0.0
            elif section == "data" and "test_fraction" in given:
                raw["data"]["test_path"] = None
            raw[section].update(given)
        return spec_from_dict(raw, source=source)

    def to_toml(self) -> str:
        """The resolved spec (defaults filled in) as TOML; None values are left out."""
        return tomli_w.dumps(self.model_dump(exclude_none=True))


def spec_from_dict(raw: dict[str, Any], source: str = "the spec") -> Spec:
    """Validate a nested dict into a Spec, or raise PmbnnError naming the bad key."""
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise PmbnnError(f"invalid {source}: {describe(exc, Spec)}") from None


def builtin_specs() -> list[str]:
    """Names of the specs shipped with pmbnn (``pmbnn/models/*.toml``)."""
    folder = files("pmbnn").joinpath("models")
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir()
                  if entry.name.endswith(".toml"))  # fmt: skip


def load_builtin_spec(name: str) -> Spec:
    """A spec shipped with pmbnn, by name (e.g. "sine-gap", "uci-1x50"), read as package data."""
    if name not in builtin_specs():
        raise PmbnnError(f"no built-in spec {name!r}; there are: {', '.join(builtin_specs())}")
    text = files("pmbnn").joinpath("models", f"{name}.toml").read_text()
    return spec_from_dict(tomllib.loads(text), source=f"built-in spec {name}")


def load_spec(argument: str | Path) -> Spec:
    """Read a spec: a TOML file, or one shipped with pmbnn by name.

    Parameters
    ----------
    argument : path or str
        A TOML file (relative data paths in it are taken relative to the file), or the name of
        a built-in spec ("sine-gap", "uci-1x50", ...); a file of that name wins.

    Returns
    -------
    Spec

    Raises
    ------
    PmbnnError
        When there is no such file or built-in spec, or naming the key and what is allowed for
        an unknown key or a bad value.
    """
    path = Path(argument)
    if path.is_file():
        return read_spec_file(path)
    name = path.name.removesuffix(".toml")
    # "models/uci-1x50.toml": where the built-in specs lay in a checkout before they were
    # package data; still understood.
    if path.parent in (Path("."), Path("models")) and name in builtin_specs():
        return load_builtin_spec(name)
    raise PmbnnError(
        f"spec file not found: {argument} (give the path of a .toml spec, or a built-in one: "
        f"{', '.join(builtin_specs())})"
    )


def read_spec_file(path: str | Path) -> Spec:
    """`load_spec` for a file only (a run's own spec.toml must never fall back to a built-in
    spec); relative data paths are taken relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise PmbnnError(f"spec file not found: {path} (give the path of a .toml spec)")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PmbnnError(f"{path} is not valid TOML: {exc}") from None
    spec = spec_from_dict(raw, source=f"spec {path}")
    relative = {
        key: str((path.parent / value).resolve())
        for key in ("path", "test_path")
        if (value := getattr(spec.data, key)) is not None and not Path(value).is_absolute()
    }
    return spec.model_copy(update={"data": spec.data.model_copy(update=relative)})
