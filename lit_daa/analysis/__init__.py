"""Analysis of finished runs: scaling-law fits of win rate against sqrt(KL)."""

from lit_daa.analysis.fits import (
    FORMS,
    OFFSETS,
    Coefficients,
    FitError,
    FitResult,
    Form,
    Gain,
    Intercept,
    LogForm,
    Offset,
    QuadraticForm,
    Raw,
    fit,
    fit_table,
)

__all__ = [
    "FORMS",
    "OFFSETS",
    "Coefficients",
    "FitError",
    "FitResult",
    "Form",
    "Gain",
    "Intercept",
    "LogForm",
    "Offset",
    "QuadraticForm",
    "Raw",
    "fit",
    "fit_table",
]
