"""The paper's findings, measured with intervals: one row per finding saying holds, partial or fails, and the detail
tables behind each row. Every verdict follows a rule stated in `RULES` and computed below from bootstrap intervals
(`analysis.bootstrap`), never from fixed text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lit_daa.analysis import statistics as st
from lit_daa.analysis.bootstrap import Bootstrap, Interval
from lit_daa.analysis.results import Results

HOLDS, PARTIAL, FAILS, UNTESTED = "holds", "partial", "fails", "not measured"

RULES = {
    "1": "per (objective, size) cell of seed-mean points with the SFT point at d = 0: the peak is interior and the "
    "peak minus the 3 highest-KL points has a 95% interval above 0. holds: every cell; partial: at least half.",
    "fit": "per cell, RMSE(log form) / RMSE(quadratic form), gain offset, every checkpoint of every seed. holds: the "
    "interval is below 1 in at least half the cells; fails: it is below 1 in none; partial otherwise.",
    "2": "per cell at its smallest beta: the best intra-epoch checkpoint minus the end (seed means) has an interval "
    "above 0 and above the same quantity at the largest beta. holds: every cell; partial: at least one.",
    "3": "per objective, smallest vs largest size: log(end KL at the smallest beta) is higher for the smallest size "
    "and its drop (rule 1) is larger, each with an interval excluding 0. holds: both, every objective; partial: "
    "some.",
    "4": "log KL(DPO) - log KL(IPO) at the same beta > 0; drop(DPO) - drop(IPO) > 0 (mean over sizes); "
    "drop(DPO) - drop(SLiC) has an interval containing 0. holds: all three; partial: one or two.",
    "5": "R-DPO cells keep the hump (rule 1); mean length R^2 of the smallest size minus the largest > 0; Spearman rho "
    "of beta and end-of-epoch R^2 < 0 in every size. holds: all; partial: some.",
    "6": "within each size, Pearson r of win rate with held-out accuracy: holds when every interval contains 0 or "
    "lies inside [-0.3, 0.3]; fails when every interval is above 0.3; partial otherwise.",
    "7": "Pearson r of chosen_logratio with -forward_kl over every checkpoint: holds when its interval is above 0.8.",
    "8": "toy tree MDP, tabular policy, rejected-favouring reference: holds when in-data mass falls in at least 3/4 "
    "of runs and the mean change has an interval below 0.",
}


@dataclass
class Findings:
    """The findings table and the detail tables behind it."""

    table: pd.DataFrame
    details: dict[str, pd.DataFrame] = field(default_factory=dict)


def _verdict(passed: int, total: int, half: bool = False) -> str:
    if total == 0:
        return UNTESTED
    if passed == total:
        return HOLDS
    if passed >= (math.ceil(total / 2) if half else 1):
        return PARTIAL
    return FAILS


def _cells(results: Results) -> list[tuple[str, str]]:
    present = set(zip(results.policy["objective"], results.policy["model"], strict=True))
    return [(o, m) for o in results.objectives for m in results.models if (o, m) in present]


class FindingsBuilder:
    """Measures every finding from one bootstrap of `results`.

    Args:
        results: the prepared results table.
        bootstrap: its replicates (default: 400, seed 0).
        toy: the toy MDP's per-run summary (`lit_daa.toy_mdp` report), for finding 8; None: not measured.
        command: the command that regenerates the table (quoted in its last column).
    """

    def __init__(
        self, results: Results, bootstrap: Bootstrap | None = None, toy: pd.DataFrame | None = None, command: str = ""
    ) -> None:
        self.results = results
        self.boot = bootstrap or Bootstrap(results)
        self.toy, self.command = toy, command
        self.details: dict[str, pd.DataFrame] = {}

    def ci(self, statistic: Callable[[Results], float]) -> Interval:
        return self.boot.interval(statistic)

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
        ]
        self.controls()
        table = pd.DataFrame(rows, columns=["finding", "paper", "here", "verdict", "rule", "source"])
        return Findings(table, self.details)

    # -- finding 1: the hump ------------------------------------------------------------------------------------
    def hump(self) -> dict:
        out, ok = [], 0
        for objective, model in _cells(self.results):
            drop = self.ci(lambda r, o=objective, m=model: st.hump(r, o, m)["drop"])
            peak = self.ci(lambda r, o=objective, m=model: st.hump(r, o, m)["peak"])
            point = st.hump(self.results, objective, model)
            interior = self.boot.share(lambda r, o=objective, m=model: st.hump(r, o, m)["interior"])
            passed = point["interior"] and drop.above
            ok += passed
            out.append(
                {
                    "objective": objective,
                    "model": model,
                    **peak.row("peak_win_rate"),
                    "peak_sqrt_kl": point["peak_sqrt_kl"],
                    "max_sqrt_kl": point["max_sqrt_kl"],
                    "interior": point["interior"],
                    "interior_share": interior,
                    **drop.row("drop"),
                    "hump": passed,
                }
            )
        table = pd.DataFrame(out)
        self.details["humps"] = table
        worst = table.loc[table["drop_low"].idxmin()] if not table.empty else None
        here = (
            f"{ok}/{len(table)} cells; drops {100 * table['drop'].min():.1f} to {100 * table['drop'].max():.1f} pp; "
            f"smallest lower bound {100 * worst['drop_low']:.1f} pp ({worst['objective']}/{worst['model']})"
            if worst is not None
            else "no cells"
        )
        return self._row("1. Win rate vs sqrt(KL) is hump-shaped for every objective and size", "hump everywhere",
                         here, _verdict(ok, len(table), half=True), "1", "humps.csv")  # fmt: skip

    def fit_form(self) -> dict:
        out, ok = [], 0
        for objective, model in _cells(self.results):
            ratio = self.ci(lambda r, o=objective, m=model: st.rmse_ratio(r, o, m))
            ok += ratio.high < 1
            out.append({"objective": objective, "model": model, **ratio.row("rmse_ratio")})
        table = pd.DataFrame(out)
        self.details["fit_form"] = table
        verdict = HOLDS if ok >= math.ceil(len(table) / 2) else (FAILS if ok == 0 else PARTIAL)
        median = table["rmse_ratio"].median() if not table.empty else math.nan
        here = f"log/quadratic RMSE median {median:.2f}; interval below 1 in {ok}/{len(table)} cells"
        return self._row("Sec. 4: the log form R = d(a - b log d) fits better than the quadratic",
                         "about half the RMSE", here, verdict, "fit", "fit_form.csv")  # fmt: skip

    # -- finding 2: intra-epoch ---------------------------------------------------------------------------------
    def intra_epoch(self) -> dict:
        out, ok = [], 0
        for objective, model in _cells(self.results):
            betas = st.betas_of(self.results, objective)
            small, large = betas[0], betas[-1]
            drop = self.ci(lambda r, o=objective, m=model, b=small: st.intra_epoch_drop(r, o, m, b)["drop"])
            contrast = self.ci(
                lambda r, o=objective, m=model, s=small, g=large: (
                    st.intra_epoch_drop(r, o, m, s)["drop"] - st.intra_epoch_drop(r, o, m, g)["drop"]
                )
            )
            point = st.intra_epoch_drop(self.results, objective, model, small)
            passed = drop.above and contrast.above
            ok += passed
            out.append(
                {
                    "objective": objective,
                    "model": model,
                    "beta": small,
                    "best_fraction": point["best_fraction"],
                    "kl_rise": point["kl_rise"],
                    **drop.row("drop"),
                    **contrast.row("minus_largest_beta"),
                    "early_peak": passed,
                }
            )
        table = pd.DataFrame(out)
        self.details["intra_epoch"] = table
        fractions = ", ".join(f"{f:.0%}" for f in table["best_fraction"]) if not table.empty else ""
        here = f"{ok}/{len(table)} cells; best checkpoint at {fractions} of the epoch"
        verdict = _verdict(ok, len(table))
        return self._row("2. At wide KL budgets the best checkpoint comes early in the epoch",
                         "best after ~25% of the epoch", here, verdict, "2", "intra_epoch.csv")  # fmt: skip

    # -- finding 3: scale ---------------------------------------------------------------------------------------
    def scale(self) -> dict:
        models = self.results.models
        if len(models) < 2:
            return self._row("3. Smaller models reach more KL and degrade more", "", "one size only", UNTESTED, "3", "")
        small, large = models[0], models[-1]
        out, ok, total = [], 0, 0
        for objective in self.results.objectives:
            beta = st.betas_of(self.results, objective)[0]

            def kl_gap(r: Results, o: str = objective, b: float = beta) -> float:
                return math.log(st.end_kl(r, o, small, b)) - math.log(st.end_kl(r, o, large, b))

            kl = self.ci(kl_gap)
            drop = self.ci(lambda r, o=objective: st.hump(r, o, small)["drop"] - st.hump(r, o, large)["drop"])
            for interval in (kl, drop):
                if math.isfinite(interval.low):  # a size without runs of this objective decides nothing
                    ok += interval.above
                    total += 1
            out.append({"objective": objective, "beta": beta, **kl.row("log_kl_ratio"), **drop.row("drop_gap")})
        table = pd.DataFrame(out)
        self.details["scale"] = table
        here = "; ".join(
            f"{r.objective}: KL x{math.exp(r.log_kl_ratio):.2f} [{math.exp(r.log_kl_ratio_low):.2f}, "
            f"{math.exp(r.log_kl_ratio_high):.2f}], drop {100 * r.drop_gap:+.1f} pp "
            f"[{100 * r.drop_gap_low:+.1f}, {100 * r.drop_gap_high:+.1f}]"
            for r in table.itertuples()
        )
        finding = f"3. The smallest size ({small}) reaches more KL and degrades more than the largest ({large})"
        return self._row(finding, "small: far more KL, degrades at once", here, _verdict(ok, total), "3",
                         "scale.csv")  # fmt: skip

    # -- finding 4: objectives ----------------------------------------------------------------------------------
    def objectives(self) -> dict:
        have = set(self.results.objectives)
        if not {"DPO", "IPO"} <= have:
            return self._row(
                "4. IPO reaches less KL and over-optimises less", "", "needs DPO and IPO", UNTESTED, "4", ""
            )

        def mean_drop(r: Results, objective: str) -> float:
            return sum(st.hump(r, objective, m)["drop"] for m in r.models) / len(r.models)

        kl = self.ci(lambda r: st.log_kl_gap(r, "DPO", "IPO"))
        ipo = self.ci(lambda r: mean_drop(r, "DPO") - mean_drop(r, "IPO"))
        checks = [i.above for i in (kl, ipo) if math.isfinite(i.low)]
        rows = [kl.row("log_kl_dpo_minus_ipo") | ipo.row("drop_dpo_minus_ipo")]
        slic = None
        if "SLiC" in have:
            slic = self.ci(lambda r: mean_drop(r, "DPO") - mean_drop(r, "SLiC"))
            if math.isfinite(slic.low):
                checks.append(not slic.excludes(0.0))
            rows[0] |= slic.row("drop_dpo_minus_slic")
        self.details["objectives"] = pd.DataFrame(rows)
        ratio = f"x{math.exp(kl.estimate):.2f} [{math.exp(kl.low):.2f}, {math.exp(kl.high):.2f}]"
        here = f"KL(DPO)/KL(IPO) at equal beta {ratio}; drop DPO - IPO {ipo.text(2, 100)} pp"
        if slic:
            here += f"; DPO - SLiC {slic.text(2, 100)} pp"
        return self._row("4. IPO reaches less KL at equal beta and over-optimises less; DPO and SLiC alike",
                         "IPO less KL, less over-optimisation", here, _verdict(sum(checks), len(checks)), "4",
                         "objectives.csv")  # fmt: skip

    # -- finding 5: length --------------------------------------------------------------------------------------
    def length(self) -> dict:
        results, checks, parts = self.results, [], []
        rdpo = sorted(results.variants.loc[results.variants["objective"] == "RDPO", "variant"].unique())
        out = []
        for variant in rdpo:
            model = results.variants.loc[results.variants["variant"] == variant, "model"].iloc[0]
            drop = self.ci(lambda r, v=variant, m=model: st.hump(r, "RDPO", m, v)["drop"])
            point = st.hump(results, "RDPO", model, variant)
            dpo = st.hump(results, "DPO", model, "", st.betas_of(results, "RDPO", variant))
            checks.append(point["interior"] and drop.above)
            out.append(
                {"variant": variant, "model": model, "peak_win_rate": point["peak"],
                 "peak_sqrt_kl": point["peak_sqrt_kl"], "dpo_peak_win_rate": dpo["peak"],
                 "dpo_peak_sqrt_kl": dpo["peak_sqrt_kl"], **drop.row("drop")}
            )  # fmt: skip
            parts.append(f"R-DPO {variant}: peak {point['peak']:.3f} at d {point['peak_sqrt_kl']:.2f}, "
                         f"drop {drop.text(2, 100)} pp")  # fmt: skip
        if out:
            self.details["rdpo"] = pd.DataFrame(out)
        if results.has("length_r2") and len(results.models) >= 2:
            small, large = results.models[0], results.models[-1]
            gap = self.ci(lambda r: st.mean_column(r, "length_r2", small) - st.mean_column(r, "length_r2", large))
            checks += [gap.above] if math.isfinite(gap.low) else []
            parts.append(f"R^2 {small} - {large} {gap.text(2)}")
            rhos = {m: self.ci(lambda r, m=m: st.r2_beta_rho(r, m)) for m in results.models}
            checks += [rho.below for rho in rhos.values() if math.isfinite(rho.low)]
            parts.append("rho(beta, R^2) " + ", ".join(f"{m} {rho.text(2)}" for m, rho in rhos.items()))
            self.details["length"] = pd.DataFrame(
                [{"model": m, "mean_length_r2": st.mean_column(results, "length_r2", m), **rho.row("rho_beta_r2")}
                 for m, rho in rhos.items()]
            )  # fmt: skip
        return self._row("5. R-DPO keeps the hump; implicit reward leans on length more for small models and beta",
                         "hump kept; R^2 higher for small models, small beta", "; ".join(parts) or "not measured",
                         _verdict(sum(checks), len(checks)), "5", "rdpo.csv, length.csv")  # fmt: skip

    # -- finding 6: proxies -------------------------------------------------------------------------------------
    def proxies(self) -> dict:
        if not self.results.has("val_accuracy"):
            return self._row("6. Held-out accuracy and loss do not predict win rate", "", "no held-out metrics",
                             UNTESTED, "6", "")  # fmt: skip
        out, small, big = [], 0, 0
        for model in self.results.models:
            row = {"model": model}
            intervals = {
                column: self.ci(lambda r, m=model, c=column: st.proxy_r(r, m, c))
                for column in ("val_accuracy", "val_loss", "val_margin")
                if self.results.has(column)
            }
            for column, interval in intervals.items():
                row |= interval.row(f"r_{column}")
            accuracy = intervals["val_accuracy"]
            small += not accuracy.excludes(0.0) or (accuracy.low > -0.3 and accuracy.high < 0.3)
            big += accuracy.low > 0.3
            out.append(row)
        table = pd.DataFrame(out)
        self.details["proxies"] = table
        n = len(table)
        verdict = HOLDS if small == n else (FAILS if big == n else PARTIAL)
        here = "r(win rate, accuracy) " + ", ".join(
            f"{r['model']} {r['r_val_accuracy']:.2f} [{r['r_val_accuracy_low']:.2f}, {r['r_val_accuracy_high']:.2f}]"
            for _, r in table.iterrows()
        )
        return self._row("6. Within a size, held-out accuracy and loss do not predict win rate", "no relation",
                         here, verdict, "6", "proxies.csv")  # fmt: skip

    # -- finding 7: Eq. 7 ---------------------------------------------------------------------------------------
    def eq7(self) -> dict:
        if not self.results.has("chosen_logratio", "forward_kl"):
            return self._row("7. Eq. 7", "", "no forward KL", UNTESTED, "7", "")
        r = self.ci(lambda res: st.eq7(res)["r"])
        slope = self.ci(lambda res: st.eq7(res)["slope"])
        self.details["eq7"] = pd.DataFrame([r.row("r") | slope.row("slope")])
        verdict = HOLDS if r.low > 0.8 else (PARTIAL if r.above else FAILS)
        return self._row("7. Mean log-ratio of chosen answers is about -KL(pi_ref || pi) (Eq. 7)", "about equal",
                         f"r {r.text(3)}, slope {slope.text(2)}", verdict, "7", "eq7.csv")  # fmt: skip

    # -- finding 8: toy MDP -------------------------------------------------------------------------------------
    def toy_mdp(self) -> dict:
        toy = self.toy
        if toy is None or toy.empty:
            return self._row("8. Toy MDP: in-data mass falls", "falls", "not in this table (run lit-daa toy-mdp)",
                             UNTESTED, "8", "")  # fmt: skip
        change = toy["in_data_change"].to_numpy(dtype=float)
        fell = int((change < 0).sum())
        boot = _mean_interval(change)
        verdict = HOLDS if fell >= 0.75 * len(change) and boot.below else (PARTIAL if fell else FAILS)
        here = (f"in-data mass fell in {fell}/{len(change)} runs; mean change {boot.text(2)} "
                f"(from {toy['in_data_start'].mean():.2f})")  # fmt: skip
        return self._row("8. Toy MDP, tabular policy: DAAs move mass out of the data", "in-data mass falls", here,
                         verdict, "8", "toy_mdp/summary.csv")  # fmt: skip

    # -- controls -----------------------------------------------------------------------------------------------
    def controls(self) -> None:
        """Each non-R-DPO variant against the main grid's runs of its objective and size at the same betas."""
        results, out = self.results, []
        variants = results.variants.drop_duplicates("variant")
        for _, v in variants[variants["objective"] != "RDPO"].iterrows():
            objective, model, variant = v["objective"], v["model"], v["variant"]
            betas = st.betas_of(results, objective, variant)

            def diff(key: str, cell: tuple = (objective, model, variant, betas)) -> Callable[[Results], float]:
                o, m, v, b = cell
                return lambda r: st.hump(r, o, m, v)[key] - st.hump(r, o, m, "", b)[key]

            drop, peak_at, peak = self.ci(diff("drop")), self.ci(diff("peak_sqrt_kl")), self.ci(diff("peak"))
            mine, base = st.hump(results, objective, model, variant), st.hump(results, objective, model, "", betas)
            shape = "flattens" if drop.below else ("deepens" if drop.above else "stays")
            moves = "moves" if peak_at.excludes(0.0) else "does not move"
            row = {
                "variant": variant, "objective": objective, "model": model, "drop": mine["drop"],
                "base_drop": base["drop"], **drop.row("drop_change"), "peak_win_rate": mine["peak"],
                "base_peak_win_rate": base["peak"], **peak.row("peak_change"), "peak_sqrt_kl": mine["peak_sqrt_kl"],
                "base_peak_sqrt_kl": base["peak_sqrt_kl"], **peak_at.row("peak_sqrt_kl_change"),
                "hump": f"{shape}, {moves}", "beta_kl_rho": st.beta_orders_kl(results, objective, model, variant),
            }  # fmt: skip
            out.append(row | _smallest_beta_mechanism(results, objective, model, variant, betas[0]))
        if out:
            self.details["controls"] = pd.DataFrame(out)
        base_rows = []
        for objective, model in _cells(results):
            beta = st.betas_of(results, objective)[0]
            base_rows.append(
                {"objective": objective, "model": model, "beta": beta,
                 **_smallest_beta_mechanism(results, objective, model, "", beta)}
            )  # fmt: skip
        self.details["mechanism"] = pd.DataFrame(base_rows)

    def _row(self, finding: str, paper: str, here: str, verdict: str, rule: str, source: str) -> dict:
        return {
            "finding": finding,
            "paper": paper,
            "here": here,
            "verdict": verdict,
            "rule": rule,
            "source": f"{self.command} ({source})" if self.command and source else source,
        }


def _smallest_beta_mechanism(results: Results, objective: str, model: str, variant: str, beta: float) -> dict:
    """At one beta: the seed-mean best and end checkpoints' length, cut share and gold-reward terms."""
    frame = st.rows(results, variant)
    frame = frame[(frame["objective"] == objective) & (frame["model"] == model) & (frame["beta"] == beta)]
    curve = st.curves(frame).sort_values("epoch_fraction")
    if curve.empty:
        return {}
    best, end = curve.loc[curve["win_rate"].idxmax()], curve.iloc[-1]
    out = {"mech_beta": beta}
    for column in ("win_rate", "sqrt_kl", "mean_length", "cut_share", "gold_relevance", "gold_short_penalty",
                   "gold_long_penalty"):  # fmt: skip
        if column in curve.columns:
            out[f"best_{column}"], out[f"end_{column}"] = float(best[column]), float(end[column])
    return out


def _mean_interval(values, replicates: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a mean (for the toy MDP's runs)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(replicates, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(values.mean()), float(low), float(high))


__all__ = ["FAILS", "HOLDS", "PARTIAL", "RULES", "UNTESTED", "Findings", "FindingsBuilder"]
