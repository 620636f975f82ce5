"""Gradient probes: per-layer and per-parameter gradient norms, input-gradient shattering,
activation activity, and :func:`probe`, a gradient-health report for any model."""

from reslab.probes.grad_norms import layer_grad_norms, param_grad_norms
from reslab.probes.shattering import (ACTIVATIONS, BATCHNORMS, activation_activity, autocorrelation, brown_noise,
                                      grid_batch_stats, gradient_covariance, input_gradients, input_grid,
                                      lag1_autocorrelation, relu_activity, white_noise)
from reslab.probes.health import ProbeReport, probe

__all__ = ["ACTIVATIONS", "BATCHNORMS", "ProbeReport", "activation_activity", "autocorrelation", "brown_noise",
           "grid_batch_stats", "gradient_covariance", "input_gradients", "input_grid", "lag1_autocorrelation",
           "layer_grad_norms",
           "param_grad_norms", "probe", "relu_activity", "white_noise"]
