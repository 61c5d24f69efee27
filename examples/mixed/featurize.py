"""Features for the mixed example: each sensor standardized (mean 0,
standard deviation 1) and one interaction, temperature x vibration; the
label stays last. Also writes the means and deviations it used."""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tables import read_table, write_table  # noqa: E402

DIGITS = 6  # of each feature in features.csv


def main():
    raw, features_out, stats_out = sys.argv[1:4]
    header, rows = read_table(raw)
    columns = list(zip(*rows))
    label = columns[-1]
    stats = {}
    standardized = []
    for name, values in zip(header[:-1], columns[:-1]):
        mean = statistics.fmean(values)
        deviation = statistics.pstdev(values) or 1.0
        stats[name] = {"mean": mean, "deviation": deviation}
        standardized.append([(v - mean) / deviation for v in values])
    interaction = [t * v for t, v in zip(standardized[0], standardized[1])]
    out_rows = [list(r) for r in zip(*standardized, interaction, label)]
    write_table(features_out, header[:-1] + ["temperature_x_vibration", header[-1]], out_rows, DIGITS)
    with open(stats_out, "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    print(f"{len(out_rows)} rows, {len(header)} features")


if __name__ == "__main__":
    main()
