"""`lit-daa analyze RESULTS`: the paper's findings measured from a sweep's results table (docs/results_schema.md),
written as one findings table, its detail tables, the fitted scaling laws, PNG figures and one Markdown report.

Writes into --out (default: the results file's folder / "analysis"): findings.csv and one CSV per detail table
(humps, fits, fit_form, intra_epoch, scale, objectives, length, proxies, eq7, toy_mdp, best_of_n, controls,
mechanism, as the table supports), the lab figures, and report.md. The findings table is also printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from lit_daa.analysis.figures import DEFAULT_DPI, draw_lab_figures
from lit_daa.analysis.findings import Findings, FindingsBuilder
from lit_daa.analysis.fits import Gain, LogForm, QuadraticForm, fit_table
from lit_daa.analysis.report import build_report, write_tables
from lit_daa.analysis.results import Results, load_results, resolve_results_path
from lit_daa.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `main`."""
    parser = argparse.ArgumentParser(
        prog="lit-daa analyze",
        description="Measure the paper's findings (seed-level intervals, stated rules) from a sweep's results table.",
    )
    parser.add_argument("results", type=Path, help="results.csv or results.parquet (or the folder holding it)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS' folder/analysis)")
    parser.add_argument(
        "--toy-mdp", type=Path, default=None, help="the toy MDP's summary.csv (lit-daa toy-mdp --seeds), finding 8"
    )
    parser.add_argument(
        "--best-of-n",
        type=Path,
        nargs="+",
        default=None,
        help="best-of-n tables (lit-daa best-of-n), the classic-RLHF arm; several files are concatenated",
    )
    parser.add_argument("--dpi", type=int, default=DEFAULT_DPI, help=f"figure resolution (default: {DEFAULT_DPI})")
    parser.add_argument("--no-figures", action="store_true", help="write tables and the report only")
    return parser


def scaling_fits(results: Results) -> pd.DataFrame:
    """The log and quadratic forms fitted per (objective, size) to every main-grid checkpoint of every seed, as gains
    over the size's SFT win rate."""
    if not results.sft_win_rate:
        return pd.DataFrame()
    return fit_table(
        results.policy, forms=(LogForm(), QuadraticForm()), offsets=(Gain(),), sft_win_rate=results.sft_win_rate
    )


# What finding 8 reads from `lit-daa toy-mdp --seeds`'s summary.csv (lit_daa.toy_mdp.report.SUMMARY_FIELDS).
TOY_COLUMNS = ("objective", "beta", "in_data_start", "in_data_change")
BEST_OF_N_COLUMNS = ("model", "seed", "selector", "n", "sqrt_kl", "win_rate")


def read_csv_option(path: Path, option: str, columns: tuple[str, ...], expected: str) -> pd.DataFrame:
    """The CSV given to `option`, with at least `columns`; one sentence naming the file otherwise.

    Args:
        expected: what the option takes, for the hint (e.g. "the summary.csv of lit-daa toy-mdp --seeds").
    """
    if not path.is_file():
        raise InputError(f"{option} {path} does not exist; give {expected}")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:  # pandas' parser and empty-file errors are ValueErrors
        raise InputError(f"{option} {path} cannot be read as CSV ({' '.join(str(err).split())})") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(f"{option} {path} has no column(s) {missing}; give {expected}")
    return frame


def read_toy_summary(path: Path | None) -> pd.DataFrame | None:
    """The toy MDP's per-seed summary (None when none is given)."""
    if path is None:
        return None
    return read_csv_option(path, "--toy-mdp", TOY_COLUMNS, "the summary.csv that lit-daa toy-mdp --seeds writes")


def read_best_of_n(paths: list[Path] | None) -> pd.DataFrame | None:
    """The best-of-n tables, concatenated (None when none is given)."""
    if not paths:
        return None
    frames = [
        read_csv_option(path, "--best-of-n", BEST_OF_N_COLUMNS, "a table that lit-daa best-of-n writes")
        for path in paths
    ]
    return pd.concat(frames, ignore_index=True)


def measure(
    results: Results, toy: pd.DataFrame | None = None, best_of_n: pd.DataFrame | None = None, command: str = ""
) -> Findings:
    """The findings table and its details, with the fitted scaling laws among the details."""
    findings = FindingsBuilder(results, toy, best_of_n, command).build()
    fits = scaling_fits(results)
    if not fits.empty:
        findings.details["fits"] = fits
    return findings


def analyze_table(
    results: str | Path,
    out: Path,
    dpi: int = DEFAULT_DPI,
    figures: bool = True,
    toy: Path | None = None,
    best_of_n: list[Path] | None = None,
) -> dict[str, Path]:
    """Every finding of a results table written into `out`; prints the findings table; file name -> path written."""
    toy_table = read_toy_summary(toy)  # the small inputs first: a wrong file stops before the table is prepared
    bon = read_best_of_n(best_of_n)
    table = load_results(resolve_results_path(results))
    command = f"lit-daa analyze {results} --out {out}" + (f" --toy-mdp {toy}" if toy else "")
    if best_of_n:
        command += " --best-of-n " + " ".join(str(p) for p in best_of_n)
    findings = measure(table, toy_table, bon, command)
    out.mkdir(parents=True, exist_ok=True)
    written = write_tables(findings, out)
    drawn = draw_lab_figures(table, out, dpi, bon) if figures else {}
    report = out / "report.md"
    report.write_text(build_report(findings, table, drawn, command, table.notes))
    print(findings.table[["finding", "verdict", "units"]].to_string(index=False))
    print(f"\nwrote {len(written) + len(drawn) + 1} files to {out} (report: {report})")
    return {**written, **drawn, "report.md": report}


def main(argv: list[str] | None = None) -> int:
    """Measure the findings of RESULTS, write the outputs and print the table; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        results_path = resolve_results_path(args.results)
        out = args.out if args.out is not None else results_path.parent / "analysis"
        if args.dpi < 10:
            raise InputError(f"--dpi must be at least 10, got {args.dpi}")
        analyze_table(results_path, out, args.dpi, not args.no_figures, args.toy_mdp, args.best_of_n)
    except InputError as err:
        print(f"lit-daa analyze: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
