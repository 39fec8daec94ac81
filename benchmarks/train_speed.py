"""Time `ferjax.networks.train.train` on 64x64 grayscale faces, on 1 and on 2 CPU devices.

Runs the real training loop on random face-sized images; a callback blocks on
each step's loss and records the time. For each device count (a fresh
process each: JAX fixes the count when it starts) prints the median images/s
over several timed windows of steps after the first (compiling) steps, and
writes them to benchmarks/train_speed.json.

    python benchmarks/train_speed.py [--model fine] [--batch-size 32] [--devices 1,2] [--repeats 5] [--window 10]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import record


def one(args):
    """Measure in this process, on ``args.devices`` CPU devices; print the rates as JSON."""
    import jax

    jax.config.update("jax_num_cpu_devices", int(args.devices))
    import jax.numpy as jnp
    import numpy as np

    from ferjax.networks import train

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1960, 64, 64, 1)).astype(np.uint8)
    labels = np.arange(len(images)) % 8
    warm, stamps = 3, []

    def clock(step, metrics):
        jax.block_until_ready(metrics["loss"])
        stamps.append(time.perf_counter())

    train.train(images, labels, model=args.model, steps=warm + args.repeats * args.window,
                batch_size=args.batch_size, dtype=getattr(jnp, args.dtype), progress=False, callback=clock)
    rates = [args.batch_size * args.window / (stamps[warm - 1 + (i + 1) * args.window] -
                                              stamps[warm - 1 + i * args.window]) for i in range(args.repeats)]
    print(json.dumps({"devices": jax.device_count(), "median_images_per_s": statistics.median(rates),
                      "runs_images_per_s": rates}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=10, help="steps per timed window")
    parser.add_argument("--model", default="fine")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--devices", default="1,2", help="CPU device counts, each measured in its own process")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args)
    results = {"model": args.model, "batch_size": args.batch_size, "dtype": args.dtype, "image": [64, 64, 1],
               "by_devices": {}}
    for n in args.devices.split(","):
        argv = [sys.executable, __file__, "--one", "--devices", n, "--model", args.model, "--batch-size",
                str(args.batch_size), "--dtype", args.dtype, "--repeats", str(args.repeats), "--window",
                str(args.window)]
        out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(f"train {args.model} 64x64x1 batch {args.batch_size} {args.dtype} on {n} device(s): median "
              f"{out['median_images_per_s']:.0f} images/s (runs: "
              f"{', '.join(f'{r:.0f}' for r in out['runs_images_per_s'])})")
        results["by_devices"][n] = out
    record.write("train_speed", results)


if __name__ == "__main__":
    main()
