"""Gradient probes: per-layer gradient norms, input-gradient shattering, ReLU activity."""

from reslab.probes.grad_norms import layer_grad_norms
from reslab.probes.shattering import (autocorrelation, brown_noise, grid_batch_stats, gradient_covariance,
                                      input_gradients, input_grid, lag1_autocorrelation, relu_activity,
                                      white_noise)

__all__ = ["autocorrelation", "brown_noise", "grid_batch_stats", "gradient_covariance", "input_gradients",
           "input_grid", "lag1_autocorrelation", "layer_grad_norms", "relu_activity", "white_noise"]
