"""The paper's findings, measured: one row per finding with holds / partial / fails, and the detail tables behind it.

Each finding is read on its units (cells, sizes, contrasts) with the rule in `RULES`, written before the lab's
results and quoted in the report. Every interval is a seed-level t interval (`analysis.intervals`) of a statistic
defined once in `analysis.statistics`; contrasts between cells are paired by seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lit_daa.analysis import statistics as st
from lit_daa.analysis.against_dpo import against_dpo
from lit_daa.analysis.fits import Gain, QuadraticForm, fit
from lit_daa.analysis.intervals import (
    UNTESTED,
    Interval,
    Reading,
    directional,
    equivalent,
    fisher_z,
    t_interval,
    tally,
    verdict,
)
from lit_daa.analysis.results import Results

SMALLEST_DROP = 0.01  # 1 pp of win rate: a drop entirely below it is no drop worth the name
SLIC_DROP_MARGIN = 0.05  # "DPO and SLiC alike": drops within +-5 pp
SLIC_KL_MARGIN = math.log(1.5)  # ... and KL at equal beta within a factor 1.5
PROXY_MARGIN = 0.3  # "no relation": |r| <= 0.3
EQ7_MARGIN = (0.8, 1.25)  # "about equal": slope within a factor 1.25 of 1
FIT_TARGET, FIT_TOLERANCE = 0.5, 0.75  # "about half the RMSE"; above 0.75 is surely not about half
INTRA_EPOCH_WINDOW = (0.15, 0.40)  # "after about 25% of the epoch"

_VERDICT = "holds: every unit agrees; fails: at least half the units contradict, or none agrees; partial otherwise."
RULES = {
    "1": "Units: the (objective, size) cells. Per seed, cross-fitted (the peak and the 3 highest-KL points beyond it "
    "chosen on the other seeds' means, the SFT point at d = 0 a candidate peak): rise = win rate at the peak minus "
    "SFT, drop = win rate at the peak minus the mean of those points (0 when none lies beyond the peak). A cell "
    "agrees when both t intervals are above 0; contradicts when the rise's lies at or below 0 (the SFT model is the "
    "best point) or the drop's below 1 pp. " + _VERDICT,
    "fit": "Units: the cells. Per seed, r = RMSE(log form) / RMSE(quadratic form), both fitted as gains over that "
    "seed's SFT win rate to its checkpoints; the interval is the t interval of mean log r, exponentiated. The "
    "paper says about half: a cell agrees when the interval is below 1 and reaches 0.5 (lower end <= 0.5); "
    "contradicts when its lower end is above 0.75. " + _VERDICT,
    "2": "Two units per cell, at its smallest beta. (a) Early peak: per seed, drop = the cross-fitted best "
    "checkpoint inside the epoch minus the end, and contrast = that drop minus the same at the cell's largest beta "
    "(paired); agrees when both intervals are above 0, contradicts when either is below 0. (b) About a quarter: the "
    "best checkpoint on all seeds' means lies at 15-40% of the epoch with an earlier checkpoint evaluated (so it is "
    "told from 'at once'): agrees; inside the window but the first checkpoint evaluated: undecided; outside the "
    "window: contradicts. " + _VERDICT,
    "3": "Units: per objective, each pair of adjacent sizes (smaller minus larger, paired by seed): log KL at the "
    "end of the epoch at the objective's smallest beta, and the drop of rule 1. A unit agrees when its interval is "
    "above 0; contradicts when below 0 (a drop: or below 1 pp). " + _VERDICT,
    "4": "Units, per size, paired by seed: (a) log KL(DPO) - log KL(IPO) at equal beta (linear in log beta) agrees "
    "above 0, contradicts below 0; (b) drop(DPO) - drop(IPO) agrees above 0, contradicts below 0 or below 1 pp; "
    "(c) drop(DPO) - drop(SLiC) agrees when its 90% interval lies inside +-5 pp, contradicts when its 95% interval "
    "lies outside; (d) log KL(DPO) - log KL(SLiC) at equal beta agrees inside +-log 1.5 (90%), contradicts "
    "outside (95%). " + _VERDICT,
    "5": "Units: (a) per objective, smallest minus largest size, paired: mean length R^2 over the cell's "
    "checkpoints, agrees above 0, contradicts below 0; (b) per cell, per seed Spearman rho of log beta and "
    "end-of-epoch R^2: limited KL budgets are LARGE beta, so agrees above 0, contradicts below 0; (c) each R-DPO "
    "variant only when it measurably shortens answers (mean length minus DPO's at the same betas, paired, interval "
    "below 0): agrees when its cell agrees under rule 1, contradicts when it contradicts. " + _VERDICT,
    "6": "Units: per size, accuracy and loss. Per seed, Pearson r of win rate with the metric over the seed's "
    "checkpoints within each objective, averaged over objectives as Fisher z. No relation is equivalence to 0 "
    "with margin |r| <= 0.3: agrees when the 90% interval lies inside [-0.3, 0.3], contradicts when the 95% "
    "interval lies outside. " + _VERDICT,
    "7": "Per seed, the least-squares slope of the chosen log-ratio on -KL(pi_ref || pi) over every main-grid "
    "checkpoint. Units: (a) the slope is positive (interval above 0 agrees, below contradicts); (b) Eq. 7 says "
    "slope 1: agrees when the 90% interval lies inside [0.8, 1.25], contradicts when the 95% lies outside. " + _VERDICT,
    "8": "Toy tree MDP. Units: (objective, beta). Per seed, the change of in-data probability mass from the start "
    "to the end of training; agrees when the t interval is below 0, contradicts when above 0. " + _VERDICT,
    "rlhf": "Units: sizes. Best-of-n on the trained proxy reward model, gold win rate for n = 1..N from one pool of "
    "samples per prompt (unbiased estimator). Per seed, cross-fitted drop = win rate at the best n (chosen on the "
    "other seeds) minus at n = N. Agrees (classic RLHF over-optimises here too) when the interval is above 0; "
    "contradicts when below 0 or below 1 pp. " + _VERDICT,
}


@dataclass
class Findings:
    """The findings table and the detail tables behind it."""

    table: pd.DataFrame
    details: dict[str, pd.DataFrame] = field(default_factory=dict)


class FindingsBuilder:
    """Measures every finding of a results table.

    Args:
        results: the prepared results table.
        toy: the toy MDP's per-run summary (`lit_daa.toy_mdp`), for finding 8; None: not measured.
        best_of_n: the best-of-n table (`lit-daa best-of-n`, one row per model, seed, selector and n); None: the
            classic-RLHF row is not measured.
        command: the command that regenerates the table (quoted in its source column).
    """

    def __init__(
        self,
        results: Results,
        toy: pd.DataFrame | None = None,
        best_of_n: pd.DataFrame | None = None,
        command: str = "",
    ) -> None:
        self.results, self.toy, self.best_of_n, self.command = results, toy, best_of_n, command
        self.details: dict[str, pd.DataFrame] = {}

    def build(self) -> Findings:
        rows = [
            self.hump(),
            self.fit_form(),
            self.intra_epoch(),
            self.scale(),
            self.objectives(),
            self.length(),
            self.proxies(),
            self.eq7(),
            self.toy_mdp(),
            self.classic_rlhf(),
        ]
        self.controls()
        self.mechanism()
        compared = against_dpo(self.results)
        if compared is not None:
            self.details["against_dpo"] = compared
        table = pd.DataFrame(rows, columns=["finding", "paper", "here", "verdict", "units", "rule", "source"])
        return Findings(table, self.details)

    # -- finding 1: the hump ------------------------------------------------------------------------------------
    def hump_reading(self, c: st.Cell) -> tuple[Reading, Interval, Interval]:
        per_seed = st.hump(c)
        rise, drop = t_interval(per_seed["rise"]), t_interval(per_seed["drop"])
        if not (rise.finite and drop.finite):
            return Reading.UNDECIDED, rise, drop
        if rise.above and drop.above:
            return Reading.AGREES, rise, drop
        # a rise at or below 0 throughout: the SFT model itself is the best point (it degrades at once)
        if rise.high <= 0 or directional(drop, SMALLEST_DROP) == Reading.CONTRADICTS:
            return Reading.CONTRADICTS, rise, drop
        return Reading.UNDECIDED, rise, drop

    def hump(self) -> dict:
        out, readings = [], []
        for c in st.cells(self.results):
            reading, rise, drop = self.hump_reading(c)
            readings.append(reading)
            point = st.describe(c)
            out.append(
                {
                    "objective": c.objective,
                    "model": c.model,
                    "seeds": len(c.seeds),
                    "peak": point["peak"],
                    "peak_sqrt_kl": point["peak_sqrt_kl"],
                    "peak_beta": point.get("peak_beta", math.nan),
                    "peak_fraction": point.get("peak_fraction", math.nan),
                    "max_sqrt_kl": point["max_sqrt_kl"],
                    **rise.row("rise"),
                    **drop.row("drop"),
                    "reading": reading.value,
                }
            )
        table = pd.DataFrame(out)
        self.details["humps"] = table
        here = "no cells"
        if not table.empty and table["drop_low"].notna().any():
            worst = table.loc[table["drop_low"].idxmin()]
            here = (
                f"{tally(readings)}; cross-fitted drops {100 * table['drop'].min():.1f} to "
                f"{100 * table['drop'].max():.1f} pp, smallest lower end {100 * worst['drop_low']:.1f} pp "
                f"({worst['objective']}/{worst['model']})"
            )
        elif not table.empty:
            here = f"{tally(readings)}; fewer than 2 seeds per cell: no cross-fitted drop, no interval"
        return self._row(
            "1. Win rate vs sqrt(KL) is hump-shaped for every objective and size",
            "hump everywhere",
            here,
            readings,
            "1",
            "humps.csv",
        )

    def fit_form(self) -> dict:
        out, readings = [], []
        for c in st.cells(self.results):
            ratio = t_interval(st.fit_ratio(c)).map(_exp)
            if not ratio.finite:
                reading = Reading.UNDECIDED
            elif ratio.high < 1 and ratio.low <= FIT_TARGET:
                reading = Reading.AGREES
            elif ratio.low > FIT_TOLERANCE:
                reading = Reading.CONTRADICTS
            else:
                reading = Reading.UNDECIDED
            readings.append(reading)
            out.append(
                {"objective": c.objective, "model": c.model, **ratio.row("rmse_ratio"), "reading": reading.value}
            )
        table = pd.DataFrame(out)
        self.details["fit_form"] = table
        here = (
            f"{tally(readings)}; log/quadratic RMSE ratio (geometric mean over seeds) "
            + ", ".join(f"{r.objective}/{r.model} {r.rmse_ratio:.2f}" for r in table.itertuples())
            if not table.empty
            else "no cells"
        )
        return self._row(
            "Sec. 4: the log form R = d(a - b log d) fits better than the quadratic",
            "about half the RMSE",
            here,
            readings,
            "fit",
            "fit_form.csv",
        )

    # -- finding 2: intra-epoch ---------------------------------------------------------------------------------
    def intra_epoch(self) -> dict:
        out, readings = [], []
        for c in st.cells(self.results):
            betas = c.beta_grid
            small, large = betas[0], betas[-1]
            at_small, at_large = st.intra_epoch(c, small), st.intra_epoch(c, large)
            drop = t_interval(at_small["drop"])
            contrast = t_interval(at_small["drop"] - at_large["drop"])
            fractions = sorted(set(c.fractions[np.isclose(c.betas, small)].tolist()))
            best = _best_fraction(c, small)
            earlier = bool(fractions) and best > fractions[0] + 1e-9
            if drop.below or contrast.below:
                early = Reading.CONTRADICTS
            else:
                early = Reading.AGREES if drop.above and contrast.above else Reading.UNDECIDED
            inside = INTRA_EPOCH_WINDOW[0] <= best <= INTRA_EPOCH_WINDOW[1]
            if not math.isfinite(best):
                position = Reading.UNDECIDED
            elif inside:
                position = Reading.AGREES if earlier else Reading.UNDECIDED
            else:
                position = Reading.CONTRADICTS
            readings += [early, position]
            out.append(
                {
                    "objective": c.objective,
                    "model": c.model,
                    "beta": small,
                    "best_fraction": best,
                    "first_fraction": fractions[0] if fractions else math.nan,
                    "position_told": earlier,
                    **drop.row("drop"),
                    **contrast.row("minus_largest_beta"),
                    "reading_early": early.value,
                    "reading_position": position.value,
                }
            )
        table = pd.DataFrame(out)
        self.details["intra_epoch"] = table
        here = "no cells"
        if not table.empty:
            positions = table["best_fraction"].round(2).value_counts().sort_index()
            here = (
                f"{tally(readings)}; best checkpoint at "
                + ", ".join(f"{f:.0%} in {n} cells" for f, n in positions.items())
                + f"; earliest checkpoint evaluated {table['first_fraction'].min():.0%}"
            )
        return self._row(
            "2. At wide KL budgets the best checkpoint comes early in the epoch",
            "best after ~25% of the epoch",
            here,
            readings,
            "2",
            "intra_epoch.csv",
        )

    # -- finding 3: scale ---------------------------------------------------------------------------------------
    def scale(self) -> dict:
        models = self.results.models
        if len(models) < 2:
            return self._row("3. Smaller models reach more KL and degrade more", "", "one size only", [], "3", "")
        out, readings = [], []
        for objective in self.results.objectives:
            beta = min(st.cell(self.results, objective, m).beta_grid[0] for m in models if self._has(objective, m))
            present = [m for m in models if self._has(objective, m)]
            for smaller, larger in zip(present, present[1:], strict=False):
                a, b = st.cell(self.results, objective, smaller), st.cell(self.results, objective, larger)
                kl = t_interval(st.end_log_kl(a, beta) - st.end_log_kl(b, beta))
                drop = t_interval(st.hump(a)["drop"] - st.hump(b)["drop"])
                for quantity, interval, smallest in (("log KL", kl, 0.0), ("drop", drop, SMALLEST_DROP)):
                    reading = directional(interval, smallest)
                    readings.append(reading)
                    out.append(
                        {
                            "objective": objective,
                            "smaller": smaller,
                            "larger": larger,
                            "beta": beta,
                            "quantity": quantity,
                            **interval.row("difference"),
                            "reading": reading.value,
                        }
                    )
        table = pd.DataFrame(out)
        self.details["scale"] = table
        parts = []
        for r in table.itertuples():
            if r.quantity == "log KL":
                text = f"KL x{math.exp(r.difference):.2f} [{_exp(r.difference_low):.2f}, {_exp(r.difference_high):.2f}]"
            else:
                text = (
                    f"drop {100 * r.difference:+.1f} [{100 * r.difference_low:+.1f}, {100 * r.difference_high:+.1f}] pp"
                )
            parts.append(f"{r.objective} {r.smaller}/{r.larger} {text}")
        here = f"{tally(readings)}; " + "; ".join(parts)
        return self._row(
            "3. Smaller models reach more KL at equal beta and degrade more",
            "small: far more KL, degrades at once; large degrades least",
            here,
            readings,
            "3",
            "scale.csv",
        )

    # -- finding 4: objectives ----------------------------------------------------------------------------------
    def objectives(self) -> dict:
        have = set(self.results.objectives)
        if not {"DPO", "IPO"} <= have:
            return self._row("4. IPO reaches less KL and over-optimises less", "", "needs DPO and IPO", [], "4", "")
        out, readings = [], []
        for model in self.results.models:
            if not (self._has("DPO", model) and self._has("IPO", model)):
                continue
            dpo, ipo = st.cell(self.results, "DPO", model), st.cell(self.results, "IPO", model)
            units: list[tuple[str, Reading, Interval]] = []
            kl = t_interval(st.common_beta_log_kl_gap(dpo, ipo))
            units.append(("log KL(DPO) - log KL(IPO)", directional(kl), kl))
            drop = t_interval(st.hump(dpo)["drop"] - st.hump(ipo)["drop"])
            units.append(("drop(DPO) - drop(IPO)", directional(drop, SMALLEST_DROP), drop))
            if self._has("SLiC", model):
                slic = st.cell(self.results, "SLiC", model)
                reading, narrow, _ = equivalent(
                    st.hump(dpo)["drop"] - st.hump(slic)["drop"], -SLIC_DROP_MARGIN, SLIC_DROP_MARGIN
                )
                units.append(("drop(DPO) - drop(SLiC), 90%", reading, narrow))
                reading, narrow, _ = equivalent(st.common_beta_log_kl_gap(dpo, slic), -SLIC_KL_MARGIN, SLIC_KL_MARGIN)
                units.append(("log KL(DPO) - log KL(SLiC), 90%", reading, narrow))
            for name, reading, interval in units:
                readings.append(reading)
                out.append({"model": model, "contrast": name, **interval.row("value"), "reading": reading.value})
        table = pd.DataFrame(out)
        self.details["objectives"] = table

        def summary(name: str, scale: float, unit: str, log: bool = False) -> str:
            part = table[table["contrast"] == name]
            if part.empty:
                return ""
            f = _exp if log else (lambda x: x * scale)
            cells_ = ", ".join(
                f"{r.model} {f(r.value):.2f}{unit} [{f(r.value_low):.2f}, {f(r.value_high):.2f}] ({r.reading})"
                for r in part.itertuples()
            )
            return f"{name.replace('log KL', 'KL').replace(') - ', ')/') if log else name}: {cells_}"

        parts = [
            summary("log KL(DPO) - log KL(IPO)", 1, "x", log=True),
            summary("drop(DPO) - drop(IPO)", 100, " pp"),
            summary("drop(DPO) - drop(SLiC), 90%", 100, " pp"),
            summary("log KL(DPO) - log KL(SLiC), 90%", 1, "x", log=True),
        ]
        here = f"{tally(readings)}; " + "; ".join(p for p in parts if p)
        return self._row(
            "4. IPO reaches less KL at equal beta and over-optimises less; DPO and SLiC alike",
            "IPO less KL, less over-optimisation; DPO ~ SLiC",
            here,
            readings,
            "4",
            "objectives.csv",
        )

    # -- finding 5: length --------------------------------------------------------------------------------------
    def length(self) -> dict:
        results, out, readings = self.results, [], []
        if results.has("length_r2"):
            for objective in results.objectives if len(results.models) >= 2 else []:
                present = [m for m in results.models if self._has(objective, m)]
                if len(present) < 2:
                    continue
                a, b = st.cell(results, objective, present[0]), st.cell(results, objective, present[-1])
                gap = t_interval(st.column_mean(a, "length_r2") - st.column_mean(b, "length_r2"))
                reading = directional(gap)
                readings.append(reading)
                out.append(
                    {
                        "unit": f"R^2 {present[0]} - {present[-1]}",
                        "objective": objective,
                        "model": "",
                        **gap.row("value"),
                        "reading": reading.value,
                    }
                )
            for c in st.cells(results):
                rho = t_interval(st.beta_rho(c, "length_r2"))
                reading = directional(rho)
                readings.append(reading)
                out.append(
                    {
                        "unit": "rho(log beta, end R^2)",
                        "objective": c.objective,
                        "model": c.model,
                        **rho.row("value"),
                        "reading": reading.value,
                    }
                )
        for variant in sorted(results.variants.loc[results.variants["objective"] == "RDPO", "variant"].unique()):
            model = results.variants.loc[results.variants["variant"] == variant, "model"].iloc[0]
            rdpo = st.cell(results, "RDPO", model, variant)
            dpo = st.cell(results, "DPO", model).only(rdpo.beta_grid)
            shorter = t_interval(st.column_mean(rdpo, "mean_length") - st.column_mean(dpo, "mean_length"))
            if shorter.below:
                reading, _, drop = self.hump_reading(rdpo)
                readings.append(reading)
                status = reading.value
            else:
                drop = t_interval(st.hump(rdpo)["drop"])
                status = "not counted: answers not measurably shorter"
            out.append(
                {
                    "unit": f"R-DPO {variant} keeps the hump",
                    "objective": "RDPO",
                    "model": model,
                    **drop.row("value"),
                    "length_change": shorter.estimate,
                    "length_change_low": shorter.low,
                    "length_change_high": shorter.high,
                    "reading": status,
                }
            )
        table = pd.DataFrame(out)
        self.details["length"] = table
        if table.empty:
            return self._row("5. Length", "", "not measured", [], "5", "")
        parts = []
        for unit, part in table.groupby("unit", sort=False):
            if unit.startswith("R-DPO"):
                r = part.iloc[0]
                parts.append(
                    f"{unit}: length change {r.length_change:+.2f} [{r.length_change_low:+.2f}, "
                    f"{r.length_change_high:+.2f}] tokens, {r.reading}"
                )
            else:
                counts = part["reading"].value_counts()
                parts.append(
                    f"{unit}: {', '.join(f'{n} {k}' for k, n in counts.items())}, mean {part.value.mean():.2f}"
                )
        here = f"{tally(readings)}; " + "; ".join(parts)
        return self._row(
            "5. R-DPO keeps the hump; implicit reward leans on length more for small models and "
            "limited KL budgets (large beta)",
            "hump kept; R^2 higher for small models and large beta",
            here,
            readings,
            "5",
            "length.csv",
        )

    # -- finding 6: proxies -------------------------------------------------------------------------------------
    def proxies(self) -> dict:
        if not self.results.has("val_accuracy"):
            return self._row(
                "6. Held-out accuracy and loss do not predict win rate", "", "no held-out metrics", [], "6", ""
            )
        out, readings = [], []
        for model in self.results.models:
            cells_ = [c for c in st.cells(self.results) if c.model == model]
            for column in ("val_accuracy", "val_loss"):
                if not self.results.has(column) or not cells_:
                    continue
                z = st.pooled(cells_, lambda c, col=column: st.within_r(c, col).map(fisher_z))
                reading, narrow, wide = equivalent(z, -fisher_z(PROXY_MARGIN), fisher_z(PROXY_MARGIN))
                readings.append(reading)
                out.append(
                    {
                        "model": model,
                        "metric": column,
                        **narrow.map(math.tanh).row("r90"),
                        **wide.map(math.tanh).row("r95"),
                        "reading": reading.value,
                    }
                )
        table = pd.DataFrame(out)
        self.details["proxies"] = table
        here = f"{tally(readings)}; r(win rate, metric) " + ", ".join(
            f"{r.model}/{r.metric.removeprefix('val_')} {r.r95:.2f} [{r.r95_low:.2f}, {r.r95_high:.2f}]"
            for r in table.itertuples()
        )
        return self._row(
            "6. Within a size, held-out accuracy and loss do not predict win rate",
            "no relation",
            here,
            readings,
            "6",
            "proxies.csv",
        )

    # -- finding 7: Eq. 7 ---------------------------------------------------------------------------------------
    def eq7(self) -> dict:
        if not self.results.has("chosen_logratio", "forward_kl"):
            return self._row("7. Eq. 7", "", "no forward KL", [], "7", "")
        # one slope per seed over every main-grid checkpoint of that seed (not a mean of per-cell slopes)
        slopes = st.eq7_slopes(self.results)
        positive = t_interval(slopes)
        sign = directional(positive)
        magnitude, narrow, wide = equivalent(slopes, *EQ7_MARGIN)
        readings = [sign, magnitude]
        self.details["eq7"] = pd.DataFrame(
            [
                {
                    **wide.row("slope"),
                    **narrow.row("slope90"),
                    "reading_sign": sign.value,
                    "reading_value": magnitude.value,
                }
            ]
        )
        here = f"{tally(readings)}; slope {wide.text(2)} (90%: [{narrow.low:.2f}, {narrow.high:.2f}])"
        return self._row(
            "7. Mean log-ratio of chosen answers is about -KL(pi_ref || pi) (Eq. 7)",
            "slope 1",
            here,
            readings,
            "7",
            "eq7.csv",
        )

    # -- finding 8: toy MDP -------------------------------------------------------------------------------------
    def toy_mdp(self) -> dict:
        toy = self.toy
        if toy is None or toy.empty:
            return self._row(
                "8. Toy MDP: in-data mass falls", "falls", "not in this table (run lit-daa toy-mdp)", [], "8", ""
            )
        out, readings = [], []
        for (objective, beta), group in toy.groupby(["objective", "beta"], sort=True):
            change = t_interval(group["in_data_change"])
            reading = directional(change.map(lambda x: -x))
            readings.append(reading)
            out.append(
                {
                    "objective": objective,
                    "beta": beta,
                    **change.row("in_data_change"),
                    "start": group["in_data_start"].mean(),
                    "reading": reading.value,
                }
            )
        table = pd.DataFrame(out)
        self.details["toy_mdp"] = table
        by_beta = table.groupby("beta")["reading"].agg(
            lambda r: ", ".join(f"{n} {k}" for k, n in r.value_counts().items())
        )
        here = f"{tally(readings)}; by beta: " + "; ".join(f"{b:g}: {r}" for b, r in by_beta.items())
        return self._row(
            "8. Toy MDP, tabular policy: DAAs move mass out of the data",
            "in-data mass falls",
            here,
            readings,
            "8",
            "toy_mdp.csv",
        )

    # -- classic RLHF: best-of-n on a trained proxy ---------------------------------------------------------------
    def classic_rlhf(self) -> dict:
        bon = self.best_of_n
        title = "Classic RLHF (best-of-n on a learned reward model) over-optimises in the same world"
        if bon is None or bon.empty:
            return self._row(
                title, "over-optimises like DAAs", "not in this table (run lit-daa best-of-n)", [], "rlhf", ""
            )
        out, readings = [], []
        for model, group in bon.groupby("model", sort=False):
            proxy = group[group["selector"] == "proxy"]
            gold = group[group["selector"] == "gold"]
            if proxy.empty:
                continue
            drop = t_interval(st.best_of_n_drop(proxy))
            reading = directional(drop, SMALLEST_DROP)
            readings.append(reading)
            curve = proxy.groupby("n")[["sqrt_kl", "win_rate"]].mean()
            best_n = int(curve["win_rate"].idxmax())
            frontier = gold.groupby("n")["win_rate"].mean() if not gold.empty else pd.Series(dtype=float)
            daa = self._daa_at(model, float(curve.loc[best_n, "sqrt_kl"]), float(curve["sqrt_kl"].max()))
            # Gao et al.'s best-of-n form, R = R(n=1) + d (a - b d), fitted to the seed-mean proxy curve
            gao = (
                fit(
                    curve["sqrt_kl"].to_numpy(),
                    curve["win_rate"].to_numpy(),
                    QuadraticForm(),
                    Gain(),
                    float(curve["win_rate"].iloc[0]),
                )
                if len(curve) >= 3
                else None
            )
            out.append(
                {
                    "model": model,
                    "seeds": proxy["seed"].nunique(),
                    "best_n": best_n,
                    "peak_sqrt_kl": curve.loc[best_n, "sqrt_kl"],
                    "peak_win_rate": curve.loc[best_n, "win_rate"],
                    "max_n": int(curve.index.max()),
                    "max_sqrt_kl": curve["sqrt_kl"].max(),
                    "win_rate_at_max_n": curve["win_rate"].iloc[-1],
                    **drop.row("drop"),
                    "gold_frontier_at_max_n": frontier.iloc[-1] if not frontier.empty else math.nan,
                    "gao_alpha": gao.alpha if gao else math.nan,
                    "gao_beta": gao.beta if gao else math.nan,
                    "gao_peak_sqrt_kl": gao.d_star if gao else math.nan,
                    "gao_rmse": gao.rmse if gao else math.nan,
                    **daa,
                    "reading": reading.value,
                }
            )
        table = pd.DataFrame(out)
        self.details["best_of_n"] = table
        here = f"{tally(readings)}; " + "; ".join(
            f"{r.model}: proxy best-of-n peaks at n = {r.best_n} (sqrt KL {r.peak_sqrt_kl:.2f}, win rate "
            f"{r.peak_win_rate:.3f}), drop to n = {r.max_n} {100 * r.drop:+.1f} [{100 * r.drop_low:+.1f}, "
            f"{100 * r.drop_high:+.1f}] pp; Gao form d(a - b d) peaks at sqrt KL {r.gao_peak_sqrt_kl:.2f}; gold "
            f"frontier {r.gold_frontier_at_max_n:.3f}; best DPO checkpoint up to the same KL "
            f"{r.daa_win_rate_at_peak:.3f}"
            for r in table.itertuples()
        )
        return self._row(title, "over-optimises like DAAs (Gao et al.)", here, readings, "rlhf", "best_of_n.csv")

    def _daa_at(self, model: str, *ds: float) -> dict:
        """DPO's seed-mean win rate at given sqrt(KL)s: the upper envelope of its checkpoints, linearly
        interpolated (the best any DPO checkpoint reached up to that KL)."""
        out = {}
        for name, d in zip(("daa_win_rate_at_peak", "daa_win_rate_at_max"), ds, strict=False):
            out[name] = math.nan
            if not self._has("DPO", model):
                continue
            c = st.cell(self.results, "DPO", model)
            with np.errstate(all="ignore"):
                wm, dm = np.nanmean(c["win_rate"], axis=0), np.nanmean(c["sqrt_kl"], axis=0)
            keep = np.isfinite(wm) & np.isfinite(dm) & (dm <= d)
            if keep.any():
                out[name] = float(wm[keep].max())
        return out

    # -- controls and mechanism -----------------------------------------------------------------------------------
    def controls(self) -> None:
        """Each non-R-DPO variant against the main grid's runs of its objective and size at the same betas, per seed
        paired: cross-fitted drop change and peak change."""
        results, out = self.results, []
        variants = results.variants.drop_duplicates("variant")
        for _, v in variants[variants["objective"] != "RDPO"].iterrows():
            if not self._has(v["objective"], v["model"]):  # an objective only run as a variant: see against_dpo
                continue
            mine = st.cell(results, v["objective"], v["model"], v["variant"])
            base = st.cell(results, v["objective"], v["model"]).only(mine.beta_grid)
            drop = t_interval(st.hump(mine)["drop"] - st.hump(base)["drop"])
            me, them = st.describe(mine), st.describe(base)
            shape = "flattens" if drop.below else ("deepens" if drop.above else "no measurable change")
            out.append(
                {
                    "variant": v["variant"],
                    "objective": v["objective"],
                    "model": v["model"],
                    "seeds": len(mine.seeds),
                    "peak": me["peak"],
                    "base_peak": them["peak"],
                    "peak_sqrt_kl": me["peak_sqrt_kl"],
                    "base_peak_sqrt_kl": them["peak_sqrt_kl"],
                    **drop.row("drop_change"),
                    "hump": shape,
                    "beta_kl_rho": st.beta_orders_kl(mine),
                }
            )
        if out:
            self.details["controls"] = pd.DataFrame(out)

    def mechanism(self) -> None:
        """At each main-grid cell's smallest beta: the gold terms, length and out-of-data mass at the seed-mean best
        checkpoint and at the end, with the per-seed change from best to end."""
        out = []
        for c in st.cells(self.results):
            beta = c.beta_grid[0]
            run = np.flatnonzero(np.isclose(c.betas, beta))
            with np.errstate(all="ignore"):
                wm = np.nanmean(c["win_rate"][:, run], axis=0)
            if not np.isfinite(wm).any():
                continue
            best, end = run[int(np.nanargmax(wm))], run[-1]
            row = {"objective": c.objective, "model": c.model, "beta": beta, "best_fraction": c.fractions[best]}
            for column in (
                "win_rate",
                "sqrt_kl",
                "mean_length",
                "cut_share",
                "gold_relevance",
                "gold_short_penalty",
                "gold_long_penalty",
                "ood_mass",
                "ood_token_share",
            ):
                if column not in c.values or not np.isfinite(c[column]).any():
                    continue
                change = t_interval(c[column][:, end] - c[column][:, best])
                row |= {f"best_{column}": float(np.nanmean(c[column][:, best])), **change.row(f"change_{column}")}
            out.append(row)
        if out:
            self.details["mechanism"] = pd.DataFrame(out)

    def _has(self, objective: str, model: str, variant: str = "") -> bool:
        frame = st.rows(self.results, variant)
        return bool(((frame["objective"] == objective) & (frame["model"] == model)).any())

    @property
    def single_seed(self) -> bool:
        """Every main-grid cell has one seed: no seed-level interval exists, so no DAA finding can be read."""
        return bool(self.results.policy.groupby(["objective", "model"])["seed"].nunique().max() < 2)

    def _row(self, finding: str, paper: str, here: str, readings: list[Reading], rule: str, source: str) -> dict:
        judged = verdict(readings) if readings else UNTESTED
        if rule not in ("8", "rlhf") and self.single_seed:
            judged, here = UNTESTED, f"one seed per cell: no interval ({here})"
        return {
            "finding": finding,
            "paper": paper,
            "here": here,
            "verdict": judged,
            "units": tally(readings) if readings else "",
            "rule": rule,
            "source": f"{self.command} ({source})" if self.command and source else source,
        }


def _exp(x: float) -> float:
    return math.exp(x) if math.isfinite(x) else math.nan


def _best_fraction(c: st.Cell, beta: float) -> float:
    """The epoch fraction of the best seed-mean checkpoint inside the epoch at one beta."""
    run = np.isclose(c.betas, beta) & (c.fractions < st.FINAL)
    if not run.any():
        return math.nan
    with np.errstate(all="ignore"):
        wm = np.nanmean(c["win_rate"][:, run], axis=0)
    return float(c.fractions[run][int(np.nanargmax(wm))]) if np.isfinite(wm).any() else math.nan


__all__ = ["RULES", "Findings", "FindingsBuilder"]
