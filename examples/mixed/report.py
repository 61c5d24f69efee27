"""The mixed example's report: the model's accuracy and confusion matrix on
the features, in Markdown, and the accuracy as a metric of the step."""

import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tables import read_table  # noqa: E402


def main():
    features, model_path, report_out = sys.argv[1:4]
    header, rows = read_table(features)
    with open(model_path) as f:
        model = json.load(f)
    weights, bias = model["weights"], model["bias"]
    counts = {(1, 1): 0, (1, 0): 0, (0, 1): 0, (0, 0): 0}
    for row in rows:
        z = bias + sum(w * x for w, x in zip(weights, row[:-1]))
        predicted = 1 if 1 / (1 + math.exp(-z)) >= 0.5 else 0
        counts[(int(row[-1]), predicted)] += 1
    accuracy = (counts[(1, 1)] + counts[(0, 0)]) / len(rows)
    with open(report_out, "w") as f:
        f.write("# Machine failure model\n\n")
        f.write(f"{len(rows)} machines, features: {', '.join(header[:-1])}\n\n")
        f.write(f"Accuracy: {accuracy:.4f}\n\n")
        f.write("| actual \\ predicted | failed | ok |\n|---|---|---|\n")
        f.write(f"| failed | {counts[(1, 1)]} | {counts[(1, 0)]} |\n")
        f.write(f"| ok | {counts[(0, 1)]} | {counts[(0, 0)]} |\n\n")
        f.write("| feature | weight |\n|---|---|\n")
        for name, w in zip(header[:-1], weights):
            f.write(f"| {name} | {w:+.4f} |\n")
    print(f"accuracy {accuracy:.4f}")
    print(f"penstock:metric accuracy={accuracy:.6f}")


if __name__ == "__main__":
    main()
