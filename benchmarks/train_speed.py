"""Time `ferjax.networks.train.train` for the `small` model on 64x64 grayscale, batch 64.

Runs the real training loop on random faces-sized images; a callback blocks on
each step's loss and records the time. Prints the median images/s over
several timed windows of steps after the first (compiling) steps, and the
machine.

    python benchmarks/train_speed.py [--repeats 5] [--window 10] [--model small] [--dtype float32]
"""

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.networks import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=10, help="steps per timed window")
    parser.add_argument("--model", default="small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1960, 64, 64, 1)).astype(np.uint8)
    labels = np.arange(len(images)) % 8
    warm = 3
    stamps = []

    def clock(step, metrics):
        jax.block_until_ready(metrics["loss"])
        stamps.append(time.perf_counter())

    train.train(images, labels, model=args.model, steps=warm + args.repeats * args.window,
                batch_size=args.batch_size, dtype=getattr(jnp, args.dtype), progress=False, callback=clock)
    rates = [args.batch_size * args.window / (stamps[warm - 1 + (i + 1) * args.window] -
                                              stamps[warm - 1 + i * args.window]) for i in range(args.repeats)]
    device = jax.devices()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
          f"on {device.platform} ({device.device_kind}, {jax.device_count()} device(s))")
    print(f"train {args.model} 64x64x1 batch {args.batch_size} {args.dtype}: median {statistics.median(rates):.0f} "
          f"images/s (runs: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
