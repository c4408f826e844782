"""Likelihood families: each knows how the network's outputs become a distribution of the
target, and everything computed from that distribution (see `base.Family`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pmbnn.families.base import INTERVAL, Family, PredictiveDraws
from pmbnn.families.classes import Bernoulli, Categorical, reliability_bins
from pmbnn.families.continuous import Gaussian, HeteroscedasticGaussian, LogNormal, StudentT
from pmbnn.families.counts import Poisson
from pmbnn.families.summaries import (
    CLASS_COLUMNS,
    SUMMARY_COLUMNS,
    ClassPrediction,
    Prediction,
    entropy_split,
)

if TYPE_CHECKING:
    from pmbnn.spec import LikelihoodSpec

FAMILIES: dict[str, type[Family]] = {
    family.name: family
    for family in (
        Gaussian,
        StudentT,
        HeteroscedasticGaussian,
        LogNormal,
        Poisson,
        Bernoulli,
        Categorical,
    )
}


def family_of(settings: LikelihoodSpec) -> Family:
    """The family a spec's ``[likelihood]`` section declares."""
    return FAMILIES[settings.family](settings)


__all__ = ["CLASS_COLUMNS", "FAMILIES", "INTERVAL", "SUMMARY_COLUMNS", "ClassPrediction",
           "Family", "Prediction", "PredictiveDraws", "entropy_split", "family_of",
           "reliability_bins"]  # fmt: skip
