"""Generates the mixed example's data set: machines with four sensor
readings and whether they failed within a month. Reproducible: the same
--rows and --seed give the same bytes."""

import argparse
import math
import random
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.rows < 10:
        sys.exit(f"generate.py: --rows must be at least 10, not {args.rows}")
    rng = random.Random(args.seed)
    failures = 0
    with open(args.out, "w") as f:
        f.write("temperature,vibration,pressure,hours,failed\n")
        for _ in range(args.rows):
            temperature = rng.gauss(70, 8)
            vibration = rng.gammavariate(2.0, 0.6)
            pressure = rng.gauss(30, 3)
            hours = rng.uniform(0, 20000)
            risk = 0.09 * (temperature - 70) + 1.1 * (vibration - 1.2) + 0.00012 * (hours - 10000) - 1.0
            failed = 1 if rng.random() < 1 / (1 + math.exp(-risk)) else 0
            failures += failed
            f.write(f"{temperature:.3f},{vibration:.4f},{pressure:.3f},{hours:.1f},{failed}\n")
    print(f"wrote {args.rows} machines, {failures} failed")
    print(f"penstock:metric failure_rate={failures / args.rows:.6f}")


if __name__ == "__main__":
    main()
