"""The report's opening: the paper's findings with holds / partial / fails, intervals and rules, then the lab's
controls, ablations and mechanism tables. Every number comes from `analysis.findings`; the text only names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from lit_daa.analysis.findings import RULES, Findings
from lit_daa.analysis.lab_figures import LAB_FIGURES
from lit_daa.analysis.markdown import markdown_table
from lit_daa.analysis.results import Results


def _figure(figures: Mapping[str, Path], name: str) -> list[str]:
    return [f"![{LAB_FIGURES[name][0]}]({name})", ""] if name in figures else []


def _sft_lines(results: Results) -> list[str]:
    ref = results.reference
    if ref.empty:
        return []
    lines = ["SFT quality: win rate of each size's SFT model against the human answers it imitates"]
    parts = [
        f"{row['model']} {row['win_rate']:.3f} (s.e. {row.get('win_rate_stderr', float('nan')):.3f})"
        for _, row in ref.iterrows()
    ]
    imitation = ref["imitation_win_rate"].mean() if "imitation_win_rate" in ref.columns else float("nan")
    lines[0] += (
        f": {', '.join(parts)}; an exact imitator (a second human answer per prompt) scores {imitation:.3f}, "
        "the bound an SFT model can reach."
    )
    return [*lines, ""]


def _optimizer_lines(findings: Findings) -> list[str]:
    controls = findings.details.get("controls")
    if controls is None or controls.empty:
        return []
    out = []
    for _, row in controls.iterrows():
        rho = row["beta_kl_rho"]
        orders = "orders KL (a smaller beta always bought more KL)" if rho <= -0.999 else (
            "does not order KL strictly" if rho == rho else "could not be checked")  # fmt: skip
        out.append(f"- {row['variant']} ({row['objective']}/{row['model']}): Spearman rho(beta, end KL) "
                   f"{rho:.2f}: beta {orders}.")  # fmt: skip
    return ["Does beta order KL in each control and ablation?", "", *out, ""]


def _rule_label(rule: str) -> str:
    return "Fit form (Sec. 4)" if rule == "fit" else f"Finding {rule}"


def findings_section(
    findings: Findings, results: Results, figures: Mapping[str, Path], replicates: int, command: str
) -> str:
    """The Markdown that opens the report."""
    table = findings.table
    lines = [
        "## The paper's findings, measured",
        "",
        f"Regenerate: `{command}`. Intervals are 95% bootstrap intervals over {replicates} replicates: seeds drawn "
        "with replacement within each (objective, size, variant), each checkpoint's win rate moved by its "
        "binomial standard error (`lit_daa/analysis/bootstrap.py`). The verdict follows the rule quoted with it.",
        "",
        markdown_table(table[["finding", "paper", "here", "verdict"]]),
        "",
        "Rules:",
        "",
        *(f"- {_rule_label(row['rule'])}: {RULES[row['rule']]}" for _, row in table.iterrows()),
        "",
        *_sft_lines(results),
        *_figure(figures, "lab_winrate_vs_sqrtkl.png"),
    ]
    details = findings.details
    for key, title in (
        ("humps", "Hump per (objective, size): peak, drop to the 3 highest-KL points (win-rate fraction)"),
        ("fit_form", "RMSE ratio log / quadratic per cell (gain offset)"),
        ("intra_epoch", "Intra-epoch drop at each cell's smallest beta, and minus the same at its largest"),
        ("scale", "Smallest vs largest size per objective"),
        ("objectives", "Objective contrasts (drops averaged over sizes)"),
        ("length", "Length R^2 per size"),
        ("proxies", "Within-size Pearson r of win rate with held-out metrics"),
        ("eq7", "Eq. 7"),
    ):
        if key in details and not details[key].empty:
            lines += [f"### {title}", "", markdown_table(details[key]), ""]
    lines += ["## Proxy versus gold", "", *_figure(figures, "lab_proxy_vs_gold.png")]
    proxy = table[table["rule"] == "6"]
    if not proxy.empty:
        verdict = proxy["verdict"].iloc[0]
        plain = {
            "holds": "In this world held-out accuracy does not predict gold win rate within a size, as in the paper.",
            "fails": "This world cannot show accuracy failing to predict win rate: within every size, held-out "
            "accuracy and gold win rate move together (intervals above r = 0.3).",
            "partial": "Within some sizes held-out accuracy tracks gold win rate and within others it does not; "
            "the world shows the paper's point only in part.",
        }.get(verdict, "The table has no held-out metrics.")
        lines += [f"{plain} ({proxy['here'].iloc[0]}.)", ""]
    lines += ["## Mechanism: what the policy gains and loses along KL", "", *_figure(figures, "lab_gold_breakdown.png")]
    if "mechanism" in details and not details["mechanism"].empty:
        lines += [
            "At each cell's smallest beta, the seed-mean best and end-of-epoch checkpoints (length in tokens, EOS "
            "included; gold terms per answer):",
            "",
            markdown_table(details["mechanism"]),
            "",
        ]
    lines += ["## Mechanism controls", "", *_figure(figures, "lab_controls.png")]
    if "controls" in details and not details["controls"].empty:
        controls = details["controls"]
        lines += [
            "Each control against the base world's runs of the same objective and size at the same betas: "
            "`drop_change` < 0 with its interval below 0 means the hump flattens, `peak_sqrt_kl_change` excluding 0 "
            "means it moves.",
            "",
            markdown_table(controls),
            "",
            *_optimizer_lines(findings),
        ]
    lines += ["## The R-DPO length ablation", "", *_figure(figures, "lab_rdpo.png")]
    if "rdpo" in details:
        lines += [markdown_table(details["rdpo"]), ""]
    return "\n".join(lines) + "\n"


def write_detail_tables(findings: Findings, out: Path) -> dict[str, Path]:
    """findings.csv and one CSV per detail table; file name -> path."""
    written = {}
    frames: dict[str, pd.DataFrame] = {"findings": findings.table, **findings.details}
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written[path.name] = path
    return written


__all__ = ["findings_section", "write_detail_tables"]
