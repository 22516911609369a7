"""Scaling-law fits of win rate against d = sqrt(KL), after Gao et al. 2023 (PAPER.md section 4).

Two functional forms, each linear in its coefficients (alpha, beta) for fixed d, so ordinary least squares
(`numpy.linalg.lstsq`) fits them exactly, with no starting point and no local minima:

- `LogForm` (the RL form):         R(d) = d (alpha - beta log d)
- `QuadraticForm` (best-of-n form): R(d) = d (alpha - beta d)

Here alpha and beta are fit coefficients, not the DAA beta. Both forms are 0 at d = 0, but a win rate at d = 0
is the SFT model's, not 0. Three offset strategies say what to do about it:

- `Raw`: fit R directly (the forms as written; the curve is pinned to 0 at d = 0).
- `Gain`: fit the gain R - R0 over the SFT win rate R0, which the caller supplies; predictions add R0 back.
- `Intercept`: a free intercept c, R = c + d (...), three coefficients.

`Gain` is the recommended default when the SFT win rate is measured (it pins the curve to the measured
starting point and keeps two coefficients); `Intercept` when it is not. Every fit reports its coefficients,
its RMSE on the win-rate scale, the number of points and the peak (d*, R(d*)).

Peaks. Log form, beta > 0: d* = exp(alpha / beta - 1), R(d*) = c + beta d*. Quadratic form, beta > 0:
d* = alpha / (2 beta), R(d*) = c + alpha^2 / (4 beta), and d* = 0 (R = c) when alpha <= 0. With beta < 0, or
beta = 0 and alpha > 0, the curve grows without bound: the peak is reported as (inf, inf), meaning "no
over-optimisation within the fit". With beta = 0 and alpha <= 0 the curve never rises: (0, c). Non-finite
coefficients give (nan, nan).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lit_daa.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

ArrayLike = Sequence[float] | np.ndarray


class FitError(InputError):
    """Too few points, or too few distinct d values, to determine the coefficients of a fit."""


@dataclass(frozen=True)
class Coefficients:
    """Fitted coefficients: R(d) = intercept + d (alpha - beta f(d)) with f the form's shape."""

    alpha: float
    beta: float
    intercept: float = 0.0


def _as_coefficients(coef: Coefficients | ArrayLike) -> Coefficients:
    """Accept a `Coefficients` or a sequence (alpha, beta) or (alpha, beta, intercept)."""
    if isinstance(coef, Coefficients):
        return coef
    values = [float(v) for v in coef]
    if len(values) not in (2, 3):
        raise InputError(f"coefficients must be (alpha, beta) or (alpha, beta, intercept), got {len(values)} values")
    return Coefficients(*values)


def _as_d(d: ArrayLike | float) -> np.ndarray:
    """(n,) float array of d = sqrt(KL) values, checked to be finite and >= 0."""
    arr = np.atleast_1d(np.asarray(d, dtype=float))
    if arr.ndim != 1:
        raise InputError(f"d must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError("d = sqrt(KL) must be finite and >= 0 (a negative KL estimate has no square root)")
    return arr


class Form(ABC):
    """A scaling-law shape R(d) = d (alpha - beta f(d)), linear in (alpha, beta)."""

    name: ClassVar[str]

    @abstractmethod
    def basis(self, d: ArrayLike | float) -> np.ndarray:
        """(n, 2) design columns [d, -d f(d)] so that R(d) = basis(d) @ (alpha, beta)."""

    def predict(self, d: ArrayLike | float, coef: Coefficients | ArrayLike) -> np.ndarray:
        """(n,) predicted win rates, intercept included."""
        c = _as_coefficients(coef)
        return c.intercept + self.basis(d) @ np.array([c.alpha, c.beta])

    @abstractmethod
    def _interior_peak(self, alpha: float, beta: float) -> tuple[float, float]:
        """(d*, R(d*) - intercept) for beta > 0."""

    def peak(self, coef: Coefficients | ArrayLike) -> tuple[float, float]:
        """(d*, R(d*)): where the fitted curve is highest on d >= 0; see the module docstring for the edge cases."""
        c = _as_coefficients(coef)
        if not all(np.isfinite([c.alpha, c.beta, c.intercept])):
            return float("nan"), float("nan")
        if c.beta < 0 or (c.beta == 0 and c.alpha > 0):
            return float("inf"), float("inf")
        if c.beta == 0:
            return 0.0, c.intercept
        d_star, gain = self._interior_peak(c.alpha, c.beta)
        return d_star, c.intercept + gain

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogForm(Form):
    """The RL form R(d) = d (alpha - beta log d); d log d is taken as 0 at d = 0 (its limit)."""

    name: ClassVar[str] = "log"

    def basis(self, d: ArrayLike | float) -> np.ndarray:
        arr = _as_d(d)
        safe = np.where(arr > 0, arr, 1.0)  # log(1) = 0, so d = 0 rows get d log d = 0 without a warning
        return np.stack([arr, -arr * np.log(safe)], axis=1)

    def _interior_peak(self, alpha: float, beta: float) -> tuple[float, float]:
        # R'(d) = alpha - beta - beta log d = 0; R'' = -beta / d < 0, so this is the maximum, always at d > 0.
        exponent = alpha / beta - 1.0
        if exponent > 700:  # exp would overflow: the peak is beyond any measurable KL
            return float("inf"), float("inf")
        d_star = float(np.exp(exponent))
        return d_star, beta * d_star  # R(d*) = d* (alpha - beta (alpha / beta - 1)) = beta d*


class QuadraticForm(Form):
    """The best-of-n form R(d) = d (alpha - beta d)."""

    name: ClassVar[str] = "quadratic"

    def basis(self, d: ArrayLike | float) -> np.ndarray:
        arr = _as_d(d)
        return np.stack([arr, -(arr**2)], axis=1)

    def _interior_peak(self, alpha: float, beta: float) -> tuple[float, float]:
        if alpha <= 0:  # the parabola's vertex is at d <= 0: on d >= 0 the curve only falls
            return 0.0, 0.0
        d_star = alpha / (2.0 * beta)
        return d_star, alpha * alpha / (4.0 * beta)


class Offset(ABC):
    """How the win rate at d = 0 enters a fit."""

    name: ClassVar[str]
    needs_r0: ClassVar[bool] = False
    num_coefficients: ClassVar[int] = 2

    @abstractmethod
    def solve(self, basis: np.ndarray, r: np.ndarray, r0: float | None) -> Coefficients:
        """Least-squares coefficients from the (n, 2) form basis and the (n,) win rates."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _lstsq(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with a rank check, so a degenerate design fails loudly instead of giving a min-norm answer."""
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise FitError(f"the fit needs at least {design.shape[1]} points with distinct d (> 0 for the form's columns)")
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return solution


class Raw(Offset):
    """Fit R directly: the curve passes through 0 at d = 0. `r0` is ignored."""

    name: ClassVar[str] = "raw"

    def solve(self, basis: np.ndarray, r: np.ndarray, r0: float | None) -> Coefficients:
        alpha, beta = _lstsq(basis, r)
        return Coefficients(float(alpha), float(beta), 0.0)


class Gain(Offset):
    """Fit the gain R - R0 over the SFT win rate R0 (required); R0 becomes the (fixed) intercept."""

    name: ClassVar[str] = "gain"
    needs_r0: ClassVar[bool] = True

    def solve(self, basis: np.ndarray, r: np.ndarray, r0: float | None) -> Coefficients:
        if r0 is None or not np.isfinite(r0):
            raise InputError("the gain offset needs the SFT win rate r0 (a finite number)")
        alpha, beta = _lstsq(basis, r - r0)
        return Coefficients(float(alpha), float(beta), float(r0))


class Intercept(Offset):
    """Fit a free intercept c: R = c + d (...), three coefficients. `r0` is ignored."""

    name: ClassVar[str] = "intercept"
    num_coefficients: ClassVar[int] = 3

    def solve(self, basis: np.ndarray, r: np.ndarray, r0: float | None) -> Coefficients:
        design = np.column_stack([basis, np.ones(len(r))])
        alpha, beta, c = _lstsq(design, r)
        return Coefficients(float(alpha), float(beta), float(c))


# Instances by name, for command lines and configs.
FORMS: dict[str, Form] = {form.name: form for form in (LogForm(), QuadraticForm())}
OFFSETS: dict[str, Offset] = {offset.name: offset for offset in (Raw(), Gain(), Intercept())}


@dataclass(frozen=True)
class FitResult:
    """One fitted curve.

    Attributes:
        form: the shape that was fitted.
        offset: how d = 0 was handled.
        alpha, beta: the shape coefficients.
        intercept: R(0): 0 for `Raw`, R0 for `Gain`, the fitted c for `Intercept`.
        rmse: root mean squared residual on the win-rate scale.
        n: number of points.
        d_star: where the curve peaks (inf when it never turns down, see the module docstring).
        peak_value: the curve's value there.
    """

    form: Form
    offset: Offset
    alpha: float
    beta: float
    intercept: float
    rmse: float
    n: int
    d_star: float
    peak_value: float

    @property
    def coefficients(self) -> Coefficients:
        return Coefficients(self.alpha, self.beta, self.intercept)

    def predict(self, d: ArrayLike | float) -> np.ndarray:
        """(n,) fitted win rates at d."""
        return self.form.predict(d, self.coefficients)


def fit(d: ArrayLike, r: ArrayLike, form: Form, offset: Offset, r0: float | None = None) -> FitResult:
    """Least-squares fit of win rates r at d = sqrt(KL) with the given form and offset.

    Args:
        d: (n,) sqrt(KL) values, finite and >= 0.
        r: (n,) win rates.
        form: `LogForm()` or `QuadraticForm()`.
        offset: `Raw()`, `Gain()` or `Intercept()`.
        r0: the SFT win rate at d = 0; required by `Gain`, ignored by the others.

    Raises:
        InputError: bad shapes or values; `FitError` (a subclass) when the points cannot determine the fit.
    """
    d_arr = _as_d(d)
    r_arr = np.atleast_1d(np.asarray(r, dtype=float))
    if r_arr.shape != d_arr.shape:
        raise InputError(f"d and r must have the same shape, got {d_arr.shape} and {r_arr.shape}")
    if not np.all(np.isfinite(r_arr)):
        raise InputError("win rates must be finite")
    if len(r_arr) < offset.num_coefficients:
        raise FitError(f"the {offset.name} offset needs at least {offset.num_coefficients} points, got {len(r_arr)}")
    coef = offset.solve(form.basis(d_arr), r_arr, r0)
    residual = r_arr - form.predict(d_arr, coef)
    d_star, peak_value = form.peak(coef)
    return FitResult(
        form=form,
        offset=offset,
        alpha=coef.alpha,
        beta=coef.beta,
        intercept=coef.intercept,
        rmse=float(np.sqrt(np.mean(residual**2))),
        n=len(r_arr),
        d_star=d_star,
        peak_value=peak_value,
    )


TABLE_COLUMNS = ("form", "offset", "alpha", "beta", "intercept", "rmse", "n", "d_star", "peak_win_rate")


def fit_table(
    df: pd.DataFrame,
    group_cols: Sequence[str] = ("objective", "model"),
    forms: Sequence[Form] = (LogForm(), QuadraticForm()),
    offsets: Sequence[Offset] = (Raw(), Gain(), Intercept()),
    sft_win_rate: Mapping[str, float] | float | None = None,
    model_col: str = "model",
    d_col: str = "sqrt_kl",
    r_col: str = "win_rate",
) -> pd.DataFrame:
    """Fit every (group, form, offset) and tabulate the results.

    Rows whose d or win rate is missing (NaN) are dropped first. `Gain` fits need the SFT win rate: one number
    for every group, or a mapping from the value of `model_col` (which must then be a group column) to it; with
    `sft_win_rate=None` the `Gain` rows are left out. A group with too few points (or too few distinct d) for a
    fit still gets its row, with NaN coefficients.

    Args:
        df: one row per checkpoint, with columns `d_col`, `r_col` and `group_cols`.
        group_cols: columns that define one curve (e.g. objective and model size); empty for a single curve.
        forms: the shapes to fit.
        offsets: the offset strategies to fit.
        sft_win_rate: R0 for `Gain`, see above (a pandas Series indexed by model name also works).
        model_col: the column holding the model name used to look up `sft_win_rate`.
        d_col: column of sqrt(KL).
        r_col: column of win rates.

    Returns:
        A DataFrame with the group columns then `TABLE_COLUMNS` (form and offset by name), one row per
        (group, form, offset), groups in sorted order.
    """
    import pandas as pd

    group_cols = list(group_cols)
    if isinstance(sft_win_rate, pd.Series):  # a Series indexed by model name works like a mapping
        sft_win_rate = sft_win_rate.to_dict()
    missing = [col for col in (*group_cols, d_col, r_col) if col not in df.columns]
    if missing:
        raise InputError(f"fit_table: the data frame has no column(s) {missing}")
    if isinstance(sft_win_rate, Mapping) and model_col not in group_cols:
        raise InputError(f"fit_table: a per-model sft_win_rate needs {model_col!r} among the group columns")
    data = df.dropna(subset=[d_col, r_col])
    _as_d(data[d_col].to_numpy())  # fail once, up front, on negative or infinite d
    groups = data.groupby(group_cols, sort=True) if group_cols else [((), data)]
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(group_cols, key, strict=True))
        r0 = _lookup_r0(sft_win_rate, labels.get(model_col))
        for form in forms:
            for offset in offsets:
                if offset.needs_r0 and r0 is None:
                    continue
                row: dict[str, object] = {**labels, "form": form.name, "offset": offset.name}
                try:
                    result = fit(group[d_col].to_numpy(), group[r_col].to_numpy(), form, offset, r0)
                except FitError:
                    nan = float("nan")
                    values = (nan, nan, nan, nan, len(group), nan, nan)
                else:
                    values = (
                        result.alpha,
                        result.beta,
                        result.intercept,
                        result.rmse,
                        result.n,
                        result.d_star,
                        result.peak_value,
                    )
                row.update(zip(TABLE_COLUMNS[2:], values, strict=True))
                rows.append(row)
    return pd.DataFrame(rows, columns=[*group_cols, *TABLE_COLUMNS])


def _lookup_r0(sft_win_rate: Mapping[Any, float] | float | None, model: Any) -> float | None:
    """The SFT win rate for one group: None, the single number, or the mapping's entry for `model`."""
    if sft_win_rate is None or not isinstance(sft_win_rate, Mapping):
        return None if sft_win_rate is None else float(sft_win_rate)
    if model not in sft_win_rate:
        raise InputError(f"fit_table: sft_win_rate has no entry for model {model!r}")
    return float(sft_win_rate[model])


__all__ = [
    "FORMS",
    "OFFSETS",
    "TABLE_COLUMNS",
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
