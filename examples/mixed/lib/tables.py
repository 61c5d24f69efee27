"""CSV helpers shared by the mixed example's scripts (a declared source of
their steps: editing this file reruns them)."""

import csv


def read_table(path):
    """Returns (header, rows) with every cell of the rows as a float."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [[float(cell) for cell in row] for row in reader]
    return header, rows


def write_table(path, header, rows, digits):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([f"{value:.{digits}f}" for value in row])
