"""Command line: ``python -m skmissvae demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="skmissvae", description="VAE imputation of incomplete tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit an imputer on the embedded mixture-of-Gaussians data set")
    demo.add_argument("--n-samples", type=int, default=5_000, help="training rows (default 5000)")
    demo.add_argument("--max-iter", type=int, default=60, help="training epochs (default 60)")
    demo.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(n_samples=args.n_samples, max_iter=args.max_iter, random_state=args.random_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
