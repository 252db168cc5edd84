"""Estimation: what removing the multipliers buys, measured on a target.

:func:`estimate` synthesises a shift engine and its multiplier twin for an FPGA (iCE40UP5K,
iCE40HX8K, ECP5-25F, ECP5-85F; Yosys and nextpnr) or for generic gates, places and routes
them, and estimates a model's energy per inference from operation counts and from a
Verilator run's switching activity.  :func:`run_sweep_points` synthesises a grid of designs;
:mod:`.model` is an analytic area model calibrated on such sweeps, answering in milliseconds
(:func:`estimate_analytic`: a design and its multiplier twins from the model alone;
:func:`suggest_fit`: settings near a design that the model says fit a device).
``docs/estimation.md`` describes the reports.
"""

from .fit import suggest as suggest_fit
from .flow import estimate, estimate_analytic, estimate_energy, mult_config
from .model import AreaModel, load_area_model
from .sweep import SweepPoint, run_sweep_points
from .targets import TARGET_NAMES, TARGETS, get_target

__all__ = ["estimate", "estimate_energy", "estimate_analytic", "mult_config", "TARGETS",
           "TARGET_NAMES", "get_target", "SweepPoint", "run_sweep_points", "AreaModel",
           "load_area_model", "suggest_fit"]
