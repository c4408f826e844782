"""A fitted BNN: the result of a fit or of loading a run, and everything it can predict.

A FittedBnn holds only data (spec, trace, scaling). The PyMC model and the compiled forward
pass are built from them on first use, or handed over by whoever already has them (the fit
that just built them), so a reloaded run is the same object as the one that was saved.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr
from xarray import DataTree

from pmbnn.data import Standardizer, numeric_columns
from pmbnn.errors import PmbnnError
from pmbnn.families import ClassPrediction, Family, Prediction, PredictiveDraws, family_of
from pmbnn.families.base import NetworkOutputs, lpd
from pmbnn.families.summaries import check_levels, first_rows, joined
from pmbnn.model import BnnModel, build_model
from pmbnn.predict import DEFAULT_LEVELS, NetworkFunction, padded
from pmbnn.spec import Spec
from pmbnn.trace import (
    CONSTANT_DATA,
    FUNCTION,
    INPUTS,
    OBSERVED,
    OBSERVED_DATA,
    POSTERIOR,
    TEST_DATA,
    group,
    sample_dataarray,
)


class FittedBnn:
    """A fitted BNN: predicts in the target's original units from raw (unscaled) inputs.

    Parameters
    ----------
    spec, trace, scaler, feature_names, target, meta
        What a run holds: the resolved spec, the DataTree of draws and data, the standardization
        of the training rows, the input columns in order, the target's name, and metadata.
    classes
        A labelled target's labels in code order (bernoulli, categorical); None otherwise.
    model, network
        The PyMC model the trace came from and its compiled forward pass, when the caller
        already has them (a fit that just built them); built from the trace when needed if not.
    """

    def __init__(
        self,
        spec: Spec,
        trace: DataTree,
        scaler: Standardizer,
        feature_names: list[str],
        target: str,
        meta: dict | None = None,
        *,
        classes: list | None = None,
        model: BnnModel | None = None,
        network: NetworkFunction | None = None,
    ):
        self.spec = spec
        self.trace = trace
        self.scaler = scaler
        self.feature_names = list(feature_names)
        self.target = target
        self.meta = dict(meta or {})
        self.classes = None if classes is None else list(classes)
        self.family: Family = family_of(spec.likelihood)
        self._model = model
        self._network = network

    def __getstate__(self) -> dict:
        # The model and its compiled programs are rebuilt from the data, never serialized.
        return self.__dict__ | {"_model": None, "_network": None}

    @property
    def model(self) -> BnnModel:
        """The PyMC model the trace came from, on the stored (scaled) training data."""
        if self._model is None:
            x = group(self.trace, CONSTANT_DATA)[INPUTS].values
            y = group(self.trace, OBSERVED_DATA)[OBSERVED].values
            self._model = build_model(
                self.spec,
                x,
                y,
                self.feature_names,
                classes=self.classes,
                target_scale=self.scaler.y_scale,
            )
        return self._model

    def with_trace(self, trace: DataTree) -> FittedBnn:
        """The same fit with other draws (its model and forward pass built anew from them)."""
        return FittedBnn(
            self.spec,
            trace,
            self.scaler,
            self.feature_names,
            self.target,
            self.meta,
            classes=self.classes,
        )

    def release_model(self) -> None:
        """Forget the model handed over at construction (it is rebuilt from the trace when
        next needed): for a model that later fits will reuse with other data."""
        self._model = None

    @property
    def network(self) -> NetworkFunction:
        """The network's output for every draw at once, compiled on first use."""
        if self._network is None:
            self._network = NetworkFunction(self.model)
        return self._network

    @property
    def posterior(self) -> xr.Dataset:
        return group(self.trace, POSTERIOR)

    def input_matrix(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """x as the (rows, features) float matrix the network takes, checked.

        A DataFrame's columns are found by name, in any order, extra columns ignored (as
        ``pmbnn predict`` does), as are those of any other table (pyarrow, polars: anything
        with the Arrow stream or dataframe interchange protocol); an array must have the
        fitted features as its columns, in order. Anything else is a PmbnnError naming the
        problem.
        """
        if not isinstance(x, pd.DataFrame) and _is_table(x):
            x = _as_pandas(x)
        if isinstance(x, pd.DataFrame):
            frame = x.rename(columns=str)
            return numeric_columns(frame, self.feature_names, "the DataFrame", "predict")
        array = np.asarray(x)
        n = len(self.feature_names)
        if array.ndim != 2 or array.shape[1] != n:
            raise PmbnnError(
                f"x has shape {array.shape}; the run was fitted on {n} feature(s) "
                f"({', '.join(self.feature_names)}): pass a (rows, {n}) array in that order, "
                "or a DataFrame with those columns"
            )
        if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
            raise PmbnnError(f"x holds {array.dtype} values; the run needs numbers")
        if np.iscomplexobj(array):  # astype(float) would drop the imaginary part
            raise PmbnnError("x holds complex numbers; the run needs real ones")
        array = array.astype(float)
        if not np.isfinite(array).all():
            row = int(np.nonzero(~np.isfinite(array).all(axis=1))[0][0])
            raise PmbnnError(f"x has a missing or infinite value in row {row}; fill it or drop it")
        return array

    def distribution(self, x: pd.DataFrame | np.ndarray) -> PredictiveDraws:
        """The target's conditional distribution for every posterior draw and row of x, in
        the target's original units: what every prediction, score and check is computed from."""
        return self._draws(self.scaler.x(self.input_matrix(x)))

    def _draws(self, inputs: np.ndarray) -> PredictiveDraws:
        """`distribution` of inputs already standardized."""
        outputs = self.network(self.posterior, inputs)
        scaler = self.scaler
        return self.family.draws(
            NetworkOutputs(outputs, self.posterior, scaler.y_mean, scaler.y_scale, self.classes)
        )

    def network_draws(self, draws: PredictiveDraws) -> xr.DataArray:
        """The network's outputs per draw as a DataArray (chain, draw, obs[, output])."""
        return sample_dataarray(
            draws.network, self.posterior, draws.network_dims, **draws.network_coords
        ).rename(FUNCTION)

    def predict(
        self, x: pd.DataFrame | np.ndarray, levels: tuple[float, ...] = DEFAULT_LEVELS
    ) -> Prediction | ClassPrediction:
        """The predictive summaries of each row of x (see `input_matrix`): mean, sds and
        interval bounds, or class probabilities and entropies for a classifier."""
        parts, network = [], []
        for summaries, draws, rows in self._blocks(x, levels):
            parts.append(summaries)
            network.append(draws.network[:, :rows])
        function_draws = sample_dataarray(
            np.concatenate(network, axis=1),
            self.posterior,
            draws.network_dims,
            **draws.network_coords,
        ).rename(FUNCTION)
        return joined(parts, function_draws)

    def predict_frame(
        self, x: pd.DataFrame | np.ndarray, levels: tuple[float, ...] = DEFAULT_LEVELS
    ) -> pd.DataFrame:
        """``predict(x, levels).to_frame()``: the same numbers, holding the draws of one block
        of rows at a time rather than of all of x (what ``pmbnn predict`` writes)."""
        frames = [summaries.to_frame() for summaries, _, _ in self._blocks(x, levels)]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _blocks(
        self, x: pd.DataFrame | np.ndarray, levels: tuple[float, ...]
    ) -> Iterator[tuple[Prediction | ClassPrediction, PredictiveDraws, int]]:
        """The summaries of x's rows block by block, with each block's draws and how many of
        its rows are x's.

        Every block has the network's fixed number of rows, the last one padded, and is
        summarized whole before the padding is dropped: every array has the same shape
        whatever the number of rows, so a row's numbers are the same however x was cut
        (predict.BLOCK_ELEMENTS says why).
        """
        check_levels(levels)
        inputs = self.scaler.x(self.input_matrix(x))
        size = self.network.block_rows(self.posterior.sizes["chain"] * self.posterior.sizes["draw"])
        for start in range(0, max(len(inputs), 1), size):
            block = inputs[start : start + size]
            draws = self._draws(padded(block, size))
            summaries = first_rows(draws.summarize(levels), len(block))
            finite = summaries.finite_rows()
            if not finite.all():
                row = int(np.argmin(finite))
                raise PmbnnError(
                    f"the prediction for input row {start + row} (counting from 0) is not "
                    f"finite (the input is {np.abs(block[row]).max():.3g} training sds from the "
                    "training mean): an input that far, or a fit that diverged, overflows "
                    "float64; nothing was written"
                )
            yield summaries, draws, len(block)

    def log_predictive_density(self, x: pd.DataFrame | np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pointwise log p(y | x, data) in original units (class codes for a classifier),
        averaged over draws."""
        return lpd(self.distribution(x).log_density(np.asarray(y, dtype=float)))

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows the model was fitted on, in original units."""
        x = group(self.trace, CONSTANT_DATA)[INPUTS].values
        y = group(self.trace, OBSERVED_DATA)[OBSERVED].values.astype(float)
        return self.scaler.x_original(x), self.family.untransform(self.scaler.y_original(y))

    def test_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out rows stored with the run (original units), or None if there were none."""
        if TEST_DATA not in self.trace.children or not self.trace[TEST_DATA].sizes.get("test_obs"):
            return None
        test = group(self.trace, TEST_DATA)
        return test[INPUTS].values, test[OBSERVED].values


def _is_table(x: object) -> bool:
    """A table with named columns (which np.asarray would flatten into positions): one that
    speaks the Arrow stream or interchange protocol and names its columns, unlike an xarray
    DataArray or a pandas Series, which speak it too."""
    speaks = hasattr(x, "__arrow_c_stream__") or hasattr(x, "__dataframe__")
    return speaks and any(hasattr(x, name) for name in ("column_names", "columns", "schema"))


def _as_pandas(table: object) -> pd.DataFrame:
    if hasattr(table, "__arrow_c_stream__") and hasattr(pd.DataFrame, "from_arrow"):
        return pd.DataFrame.from_arrow(table)  # pandas >= 3
    return pd.api.interchange.from_dataframe(table)
