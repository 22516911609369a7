"""The lab report: one Markdown file built from one findings table (`analysis.findings`) and its detail tables.

It opens with the findings table and a plain statement of what this world reproduces, then the rules, then each
finding's detail table and figure. Every number comes from `Findings`; the text only names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from lit_daa.analysis.figures import BEST_OF_N_FIGURE, LAB_FIGURES
from lit_daa.analysis.findings import RULES, Findings
from lit_daa.analysis.intervals import FAILS, HOLDS, PARTIAL
from lit_daa.analysis.markdown import markdown_table
from lit_daa.analysis.results import Results

TITLES = dict([*((name, title) for name, (title, _) in LAB_FIGURES.items()), BEST_OF_N_FIGURE])
DETAILS = (
    ("humps", "Finding 1: rise and drop per cell (cross-fitted, win-rate fraction)"),
    ("fits", "Fitted scaling laws per cell (gain over SFT, every checkpoint of every seed)"),
    ("fit_form", "Sec. 4: RMSE ratio log / quadratic per cell (geometric mean over seeds)"),
    ("intra_epoch", "Finding 2: intra-epoch drop at each cell's smallest beta, and minus the same at its largest"),
    ("scale", "Finding 3: adjacent sizes per objective (smaller minus larger)"),
    ("objectives", "Finding 4: objective contrasts per size"),
    ("length", "Finding 5: length"),
    ("proxies", "Finding 6: within-size r of win rate with held-out metrics (Fisher-z mean over objectives)"),
    ("eq7", "Finding 7: Eq. 7 slope"),
    ("toy_mdp", "Finding 8: toy MDP, change of in-data mass per (objective, beta)"),
    ("best_of_n", "Classic RLHF: best-of-n on the proxy reward model, per size"),
)


def _figure(figures: Mapping[str, Path], name: str) -> list[str]:
    return [f"![{TITLES[name]}]({name})", ""] if name in figures else []


SHORT = {
    "1": "1 (hump)",
    "fit": "Sec. 4 (log form)",
    "2": "2 (intra-epoch)",
    "3": "3 (scale)",
    "4": "4 (objectives)",
    "5": "5 (length)",
    "6": "6 (proxies)",
    "7": "7 (Eq. 7)",
    "8": "8 (toy MDP)",
    "rlhf": "classic RLHF",
}


def _rule_label(rule: str) -> str:
    return {"fit": "Fit form (Sec. 4)", "rlhf": "Classic RLHF"}.get(rule, f"Finding {rule}")


def _plainly(table: pd.DataFrame) -> list[str]:
    """Which findings this world reproduces, in words."""
    groups = {
        HOLDS: "Reproduced (holds)",
        PARTIAL: "Reproduced in part (partial)",
        FAILS: "Not reproduced (fails)",
    }
    lines = []
    for verdict, label in groups.items():
        names = [SHORT.get(row["rule"], row["rule"]) for _, row in table.iterrows() if row["verdict"] == verdict]
        lines.append(f"- {label}: {', '.join(names) if names else 'none'}.")
    missing = [SHORT.get(row["rule"], row["rule"]) for _, row in table.iterrows() if row["verdict"] not in groups]
    if missing:
        lines.append(f"- Not measured in this table: {', '.join(missing)}.")
    return lines


def _seed_line(results: Results) -> str:
    seeds = results.policy.groupby(["objective", "model"])["seed"].nunique()
    sft = {m: len(s) for m, s in results.sft_by_seed.items()}
    sft_text = (
        "one SFT model per size and seed"
        if sft and min(sft.values()) > 1
        else "one SFT model per size, shared by its seeds (size contrasts rest on one SFT draw each)"
    )
    return (
        f"Seeds per main-grid cell: {seeds.min()} to {seeds.max()}; {sft_text}. {len(results.policy)} checkpoints of "
        f"{results.policy['run_id'].nunique()} main-grid runs, {len(results.variants)} checkpoints of controls and "
        "ablations."
    )


def _sft_lines(results: Results) -> list[str]:
    ref = results.reference
    if ref.empty:
        return []
    parts = [f"{row['model']} {row['win_rate']:.3f}" for _, row in ref.iterrows()]
    imitation = ref["imitation_win_rate"].mean() if "imitation_win_rate" in ref.columns else float("nan")
    return [
        f"SFT quality (win rate against the human answers it imitates, mean over its SFT rows): {', '.join(parts)}; "
        f"an exact imitator (a second human answer per prompt) scores {imitation:.3f}.",
        "",
    ]


def _controls_lines(findings: Findings) -> list[str]:
    controls = findings.details.get("controls")
    if controls is None or controls.empty:
        return []
    lines = [
        "Each control against the base world's runs of the same objective and size at the same betas, paired by "
        "seed: `drop_change` is the cross-fitted drop of the control minus the base world's (interval below 0: the "
        "hump flattens; above 0: it deepens).",
        "",
        markdown_table(controls),
        "",
    ]
    for _, row in controls.iterrows():
        rho = row["beta_kl_rho"]
        orders = (
            "a smaller beta always bought more KL"
            if rho <= -0.999
            else ("beta does not order KL strictly" if rho == rho else "not checked")
        )
        lines.append(
            f"- {row['variant']} ({row['objective']}/{row['model']}): Spearman rho(beta, end KL) {rho:.2f}: {orders}."
        )
    return [*lines, ""]


def _against_dpo_lines(findings: Findings, figures: Mapping[str, Path]) -> list[str]:
    table = findings.details.get("against_dpo")
    if table is None or table.empty:
        return []
    lines = [
        "## Objectives against over-optimisation, beside DPO",
        "",
        *_figure(figures, "lab_against_dpo.png"),
        "Each objective run only as a variant, against the main grid's DPO of the same size, paired by seed "
        "(`lit_daa.analysis.against_dpo`): `drop_change` below 0 flattens the hump, above 0 deepens it; "
        "`peak_sqrt_kl_change` away from 0 moves the peak; `rise_change` is the change of the best win rate over SFT. "
        "95% t intervals over seeds.",
        "",
        markdown_table(table),
        "",
    ]
    for _, row in table.iterrows():
        lines.append(
            f"- {row['objective']} ({row['model']}, {row['seeds']} seeds): {row['reading']}; drop change "
            f"{row['drop_change']:+.3f} [{row['drop_change_low']:+.3f}, {row['drop_change_high']:+.3f}], peak at "
            f"sqrt(KL) {row['peak_sqrt_kl']:.2f} against DPO's {row['dpo_peak_sqrt_kl']:.2f}."
        )
    return [*lines, ""]


def build_report(
    findings: Findings, results: Results, figures: Mapping[str, Path], command: str, notes: list[str] | None = None
) -> str:
    """The whole Markdown report."""
    table = findings.table
    lines = [
        "# Over-optimization lab report",
        "",
        "## The paper's findings, measured",
        "",
        f"Regenerate: `{command}`.",
        "",
        _seed_line(results),
        "Intervals: 95% Student t intervals of the mean of per-seed values (seeds are the unit of replication); "
        "contrasts between cells are computed per seed first (paired on the seed's data draw); peaks and best "
        "checkpoints are chosen on the other seeds (leave-one-seed-out cross-fitting); 'no difference' claims use "
        "90% intervals against a stated equivalence margin (two one-sided tests). Each finding is read on its units "
        "(agree / undecided / contradict) with the rule quoted below, fixed before the results.",
        "",
        markdown_table(table[["finding", "paper", "here", "verdict"]]),
        "",
        "Plainly, this world:",
        "",
        *_plainly(table),
        "",
        "Rules:",
        "",
        *(f"- {_rule_label(row['rule'])}: {RULES[row['rule']]}" for _, row in table.iterrows()),
        "",
        *_sft_lines(results),
        *_figure(figures, "lab_winrate_vs_sqrtkl.png"),
    ]
    details = findings.details
    for key, title in DETAILS:
        if key in details and not details[key].empty:
            lines += [f"### {title}", "", markdown_table(details[key]), ""]
    lines += ["## Classic RLHF beside the DAAs", "", *_figure(figures, BEST_OF_N_FIGURE[0])]
    if "best_of_n" not in details:
        lines += ["Not in this table: run `lit-daa best-of-n` per size and seed and pass `--best-of-n`.", ""]
    lines += ["## Proxy versus gold", "", *_figure(figures, "lab_proxy_vs_gold.png")]
    lines += ["## Mechanism: what the policy gains and loses along KL", "", *_figure(figures, "lab_gold_breakdown.png")]
    if "mechanism" in details:
        lines += [
            "At each cell's smallest beta: seed means at the best checkpoint, and the change from there to the end "
            "of the epoch with its 95% interval over seeds (`ood_mass`: probability the policy puts on tokens that "
            "occur in no training answer, per generated position).",
            "",
            markdown_table(details["mechanism"]),
            "",
        ]
    lines += ["## Mechanism controls", "", *_figure(figures, "lab_controls.png"), *_controls_lines(findings)]
    lines += ["## The R-DPO length ablation", "", *_figure(figures, "lab_rdpo.png")]
    lines += _against_dpo_lines(findings, figures)
    if notes:
        lines += ["## Notes on the table", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(lines) + "\n"


def write_tables(findings: Findings, out: Path) -> dict[str, Path]:
    """findings.csv and one CSV per detail table; file name -> path."""
    written = {}
    for name, frame in {"findings": findings.table, **findings.details}.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written[path.name] = path
    return written


__all__ = ["build_report", "write_tables"]
