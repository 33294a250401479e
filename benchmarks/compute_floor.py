"""How close training is to the dense-compute floor of its networks.

Usage::

    python benchmarks/compute_floor.py            # paper toy config and defaults, 5 repeats
    python benchmarks/compute_floor.py --quick

For a configuration (batch size, network width and depth, latent size, particles), times

* ``full step``: one MissSIWAE training step of ``MixtureVAEImputer`` (second-epoch rows/s,
  as in ``throughput.py``);
* ``bare networks``: only the encoder on the batch and the decoder on ``particles x batch``
  latents, forward and backward, plus the fused Adam step: the dense work no
  implementation of the same model can avoid.

The ratio says how much of a step is overhead (sampling, objectives, Python) and so how
much faster any implementation could be at that configuration on this machine. Writes
``benchmarks/results/compute_floor.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from skmissvae.core.networks import ResidualMLP

from _report import RESULTS, header, markdown_table
from throughput import make_table, rows_per_second

CONFIGS = {
    # name: (batch, width, blocks, latent, components=particles)
    "paper toy config": (64, 200, 3, 2, 5),
    "defaults, latent 2": (128, 128, 2, 2, 5),
}
N_FEATURES = 5


def bare_network_rows_per_second(batch, width, blocks, latent, particles, steps=300) -> float:
    generator = torch.Generator().manual_seed(0)
    n_out = particles * 2 * latent + particles  # mixture locs, scales and logits
    encoder = ResidualMLP(2 * N_FEATURES, n_out, width, blocks, 0.0, generator)
    decoder = ResidualMLP(latent, 2 * N_FEATURES, width, blocks, 0.0, generator)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4, amsgrad=True, fused=True)
    x = torch.randn(batch, 2 * N_FEATURES, generator=generator)
    z = torch.randn(particles * batch, latent, generator=generator)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = encoder(x).square().mean() + decoder(z).square().mean()
        loss.backward()
        optimizer.step()

    for _ in range(20):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    X = make_table(2_000 if args.quick else 20_000, N_FEATURES)
    rows_per_second("MVAE", make_table(500, N_FEATURES), {"latent_dim": 2})  # warm-up
    rows = []
    for repeat in range(repeats):
        for name, (batch, width, blocks, latent, k) in CONFIGS.items():
            settings = {"batch_size": batch, "hidden_width": width, "n_hidden_blocks": blocks,
                        "latent_dim": latent}
            assert k == 5  # MissSIWAE's defaults: 5 components, 5 particles
            full = rows_per_second("MissSIWAE", X, settings)
            bare = bare_network_rows_per_second(batch, width, blocks, latent, k)
            rows.append({"config": name, "repeat": repeat, "full_step_rows_per_s": full,
                         "bare_networks_rows_per_s": bare, "full_over_bare_time": bare / full})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("config", sort=False)[
        ["full_step_rows_per_s", "bare_networks_rows_per_s", "full_over_bare_time"]].median()
    RESULTS.mkdir(exist_ok=True)
    stem = "compute_floor" + ("_quick" if args.quick else "")
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    command = "python benchmarks/compute_floor.py" + (" --quick" if args.quick else "")
    with open(RESULTS / f"{stem}.md", "w") as f:
        f.write(header("Training step against the dense-compute floor", command))
        f.write(f"MissSIWAE, 5 columns, 50 % MCAR; medians over {repeats} repeats (ratios taken "
                "within a repeat).\n\n")
        f.write(markdown_table(summary))
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
