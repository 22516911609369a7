"""`lit-daa analyze RESULTS`: scaling-law fits, intra-epoch peaks, length, correlations and Eq. 7 from a sweep's
results table (docs/results_schema.md), written as CSV tables, PNG figures and a Markdown report.

Writes into --out (default: the results file's folder / "analysis"):

- fits.csv (one row per objective, size, form, offset), fits_wide.csv (forms side by side), fit_comparison.csv
- peaks_by_objective.csv, peaks_by_cell.csv (the headline peak/drop checks), run_peaks.csv, smallest_beta.csv
- length_summary.csv, length_r2.csv, correlations_by_size.csv, correlations_by_cell.csv, eq7.csv
- fig1_winrate_vs_sqrtkl.png, fig2_intra_epoch.png, fig3_length_r2.png, fig4_winrate_vs_accuracy_loss.png,
  fig_eq7.png (each only when the table has the columns it needs)
- report.md, embedding the figures, and headline.md; the headline is also printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from lit_daa.analysis.bootstrap import Bootstrap
from lit_daa.analysis.figures import DEFAULT_DPI, draw_figures
from lit_daa.analysis.findings import Findings, FindingsBuilder
from lit_daa.analysis.fits import OFFSETS
from lit_daa.analysis.headline import DEFAULT_TOP_K
from lit_daa.analysis.lab_figures import draw_lab_figures
from lit_daa.analysis.lab_report import findings_section, write_detail_tables
from lit_daa.analysis.report import build_report, headline_lines
from lit_daa.analysis.results import load_results, resolve_results_path
from lit_daa.analysis.study import Analysis, AnalysisOptions, run_analysis
from lit_daa.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `main`."""
    parser = argparse.ArgumentParser(
        prog="lit-daa analyze",
        description="Fit scaling laws and regenerate the paper's findings from a sweep's results table.",
    )
    parser.add_argument("results", type=Path, help="results.csv or results.parquet (or the folder holding it)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS' folder/analysis)")
    parser.add_argument(
        "--offsets",
        nargs="+",
        choices=sorted(OFFSETS),
        default=sorted(OFFSETS),
        help="offset strategies to fit (default: all)",
    )
    parser.add_argument(
        "--curve-offset",
        choices=sorted(OFFSETS),
        default="gain",
        help="offset of the log-form curves in Fig. 1 and of the headline's per-cell RMSE (default: gain)",
    )
    parser.add_argument(
        "--fallback-offset",
        choices=sorted(name for name, offset in OFFSETS.items() if not offset.needs_r0),
        default="intercept",
        help="offset used instead of --curve-offset for sizes without an SFT row (default: intercept)",
    )
    parser.add_argument(
        "--fit-sft-point",
        action="store_true",
        help="add each size's SFT win rate as a d = 0 point to its fits (default: off)",
    )
    parser.add_argument(
        "--peaks-without-sft",
        action="store_true",
        help="leave the SFT point at d = 0 out of the peak/interior check (default: counted)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"highest-KL checkpoints averaged for the over-optimisation drop (default: {DEFAULT_TOP_K})",
    )
    parser.add_argument(
        "--replicates",
        type=int,
        default=400,
        help="bootstrap replicates of the findings table (0: no findings table, lab figures or intervals)",
    )
    parser.add_argument(
        "--toy-mdp", type=Path, default=None, help="the toy MDP's summary.csv (lit-daa toy-mdp --seeds), finding 8"
    )
    parser.add_argument("--dpi", type=int, default=DEFAULT_DPI, help=f"figure resolution (default: {DEFAULT_DPI})")
    parser.add_argument("--no-figures", action="store_true", help="write tables and the report only")
    return parser


def options_from_args(args: argparse.Namespace) -> AnalysisOptions:
    """The analysis options of parsed command-line arguments."""
    if args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}")
    return AnalysisOptions(
        offsets=tuple(OFFSETS[name] for name in args.offsets),
        curve_offset=OFFSETS[args.curve_offset],
        fallback_offset=OFFSETS[args.fallback_offset],
        include_sft_point_in_fits=args.fit_sft_point,
        include_sft_in_peaks=not args.peaks_without_sft,
        top_k=args.top_k,
        replicates=args.replicates,
    )


def analysis_tables(analysis: Analysis) -> dict[str, pd.DataFrame]:
    """File name -> table, for every non-empty table of the analysis."""
    tables = {
        "fits.csv": analysis.fits,
        "fits_wide.csv": analysis.fits_wide,
        "fit_comparison.csv": analysis.form_comparison,
        "peaks_by_objective.csv": analysis.peaks_by_objective,
        "peaks_by_cell.csv": analysis.peaks_by_cell,
        "run_peaks.csv": analysis.run_peaks,
        "smallest_beta.csv": analysis.smallest_beta,
        "length_summary.csv": analysis.length_summary,
        "length_r2.csv": analysis.length_table,
        "correlations_by_size.csv": analysis.correlations_by_size,
        "correlations_by_cell.csv": analysis.correlations_by_cell,
        "eq7.csv": pd.DataFrame([analysis.eq7]) if analysis.eq7 else pd.DataFrame(),
    }
    return {name: table for name, table in tables.items() if not table.empty}


def write_outputs(
    analysis: Analysis,
    out: Path,
    dpi: int = DEFAULT_DPI,
    figures: bool = True,
    findings: Findings | None = None,
    command: str = "",
) -> dict[str, Path]:
    """Write tables, figures, headline.md and report.md into `out`; file name -> path of everything written.

    With `findings`, the report opens with the findings table (`lab_report.findings_section`), its detail tables
    are written as CSV and the lab figures are drawn too.
    """
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Path] = {}
    for name, table in analysis_tables(analysis).items():
        table.to_csv(out / name, index=False)
        tables[name] = out / name
    drawn: Mapping[str, Path] = draw_figures(analysis, out, dpi) if figures else {}
    headline = out / "headline.md"
    headline.write_text("\n".join(headline_lines(analysis)) + "\n")
    text = build_report(analysis, drawn, tables)
    if findings is not None:
        tables = {**tables, **write_detail_tables(findings, out)}
        lab = draw_lab_figures(analysis.results, out, dpi) if figures else {}
        drawn = {**drawn, **lab}
        title, _, rest = text.partition("\n")
        replicates = analysis.options.replicates
        text = "\n".join([title, "", findings_section(findings, analysis.results, lab, replicates, command), rest])
    report = out / "report.md"
    report.write_text(text)
    return {**tables, **drawn, "headline.md": headline, "report.md": report}


def measure_findings(analysis: Analysis, toy: Path | None = None, command: str = "") -> Findings | None:
    """The findings table of an analysis (None when its options ask for no bootstrap replicates)."""
    if analysis.options.replicates < 1:
        return None
    toy_table = pd.read_csv(toy) if toy is not None else None
    bootstrap = Bootstrap(analysis.results, replicates=analysis.options.replicates)
    return FindingsBuilder(analysis.results, bootstrap, toy_table, command).build()


def analyze_table(
    results: str | Path,
    out: Path,
    options: AnalysisOptions | None = None,
    dpi: int = DEFAULT_DPI,
    figures: bool = True,
    toy: Path | None = None,
) -> dict[str, Path]:
    """Every analysis of a results table written into `out`; prints the headline (and the findings table);
    file name -> path written."""
    analysis = run_analysis(load_results(resolve_results_path(results)), options)
    command = f"lit-daa analyze {results} --out {out}" + (f" --toy-mdp {toy}" if toy else "")
    findings = measure_findings(analysis, toy, command)
    written = write_outputs(analysis, out, dpi, figures=figures, findings=findings, command=command)
    print("\n".join(headline_lines(analysis)))
    if findings is not None:
        print("\n" + findings.table[["finding", "here", "verdict"]].to_string(index=False))
    print(f"\nwrote {len(written)} files to {out} (report: {written['report.md']})")
    return written


def main(argv: list[str] | None = None) -> int:
    """Run every analysis of RESULTS, write the outputs and print the headline; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        options = options_from_args(args)
        results_path = resolve_results_path(args.results)
        out = args.out if args.out is not None else results_path.parent / "analysis"
        if args.toy_mdp is not None and not args.toy_mdp.is_file():
            raise InputError(f"--toy-mdp {args.toy_mdp} does not exist (write it with lit-daa toy-mdp --seeds ...)")
        analyze_table(results_path, out, options, args.dpi, figures=not args.no_figures, toy=args.toy_mdp)
    except InputError as err:
        print(f"lit-daa analyze: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
