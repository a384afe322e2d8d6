"""Samplers: the predictor–corrector loop with data consistency, and quick unconditional grids."""
from hidd.sampling.base import CONSISTENCIES, CORRECTORS, PREDICTORS, Consistency, Corrector, Predictor
from hidd.sampling.pc import SampleResult, sample
from hidd.sampling.unconditional import sample_grid

__all__ = ["CONSISTENCIES", "CORRECTORS", "PREDICTORS", "Consistency", "Corrector", "Predictor", "SampleResult",
           "sample", "sample_grid"]
