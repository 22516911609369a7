"""`lit-daa toy-mdp`: train the toy tree MDP and write its table, CSV and figures (docs/toy_mdp.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lit_daa.errors import InputError
from lit_daa.toy_mdp.pairs import PAIR_SOURCES
from lit_daa.toy_mdp.policies import POLICIES
from lit_daa.toy_mdp.report import (
    format_table,
    plot_masses,
    plot_seed_transients,
    seed_summary,
    write_csv,
    write_summary,
)
from lit_daa.toy_mdp.train import (
    DEFAULT_BETAS,
    DEFAULT_DEPTH,
    DEFAULT_LR,
    DEFAULT_OBJECTIVES,
    DEFAULT_PAIRS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    OBJECTIVES,
    OPTIMIZERS,
    run_seeds,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `main`."""
    parser = argparse.ArgumentParser(prog="python -m lit_daa.toy_mdp", description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="actions per trajectory (3^depth of them)")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="number of preference pairs")
    parser.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS))
    parser.add_argument("--objectives", nargs="+", choices=sorted(OBJECTIVES), default=list(DEFAULT_OBJECTIVES))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="run every seed (overrides --seed); writes summary.csv"
    )
    parser.add_argument("--bradley-terry", action="store_true", help="sample labels instead of the better one")
    parser.add_argument(
        "--reference-in-data-mass",
        type=float,
        default=None,
        help="SFT-like reference with this mass on the in-data trajectories (default: uniform reference)",
    )
    parser.add_argument(
        "--reference-rejected-mass",
        type=float,
        default=None,
        help="reference with this mass on the rejected trajectories (in-data mass then falls, docs/toy_mdp.md)",
    )
    parser.add_argument(
        "--policy", choices=sorted(POLICIES), default="tabular", help="policy parameterisation (see the docstring)"
    )
    parser.add_argument(
        "--reference-scale",
        type=float,
        default=0.0,
        help="peaked reference: random logits with this scale per (node, action); 0 = uniform reference",
    )
    parser.add_argument(
        "--pairs-from", choices=PAIR_SOURCES, default="uniform", help="draw the pairs uniformly or from pi_ref"
    )
    parser.add_argument("--out", type=Path, default=Path("toy_mdp_out"), help="folder for toy_mdp.png and .csv")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, print the table, write toy_mdp.png and toy_mdp.csv into --out (the first seed's), and with --seeds also
    summary.csv and transients.png over every seed; return the exit code."""
    args = build_parser().parse_args(argv)
    seeds = args.seeds or [args.seed]
    try:
        results = run_seeds(
            seeds,
            depth=args.depth,
            num_pairs=args.pairs,
            objectives=[OBJECTIVES[name] for name in args.objectives],
            betas=args.betas,
            steps=args.steps,
            lr=args.lr,
            optimizer=args.optimizer,
            bradley_terry=args.bradley_terry,
            reference_in_data_mass=args.reference_in_data_mass,
            reference_rejected_mass=args.reference_rejected_mass,
            policy=args.policy,
            reference_scale=args.reference_scale,
            pairs_from=args.pairs_from,
        )
    except InputError as error:
        print(error, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    print(format_table(results[0]))
    written = [write_csv(results[0], args.out / "toy_mdp.csv"), plot_masses(results[0], args.out / "toy_mdp.png")]
    if args.seeds:
        rows = seed_summary(results, seeds)
        written += [write_summary(rows, args.out / "summary.csv")]
        written += [plot_seed_transients(results, seeds, args.out / "transients.png")]
        fell = sum(float(r["in_data_change"]) < 0 for r in rows)
        print(f"over {len(seeds)} seeds: in-data mass fell in {fell} of {len(rows)} runs")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
