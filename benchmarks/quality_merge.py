"""Merge the CSVs of several benchmarks/quality.py runs into benchmarks/results/quality.csv and a Markdown table."""

import sys

import pandas as pd

COLS = ["mean", "knn", "softimpute", "ridge", "cpu (no linear path)", "linear_only", "linear_fixed (trained)",
        "linear_fixed (trained, keeps start)"]


def main(specs):
    """``specs``: ``path[:method_filter[:rename]]``."""
    dfs = []
    for spec in specs:
        path, *rest = spec.split(":")
        d = pd.read_csv(path)
        if rest and rest[0]:
            d = d[d.method.isin(rest[0].split(","))]
        if len(rest) > 1:
            d = d.assign(method=rest[1])
        dfs.append(d)
    df = pd.concat(dfs).drop_duplicates(["cohort", "seed", "task", "method"], keep="last")
    df.to_csv("benchmarks/results/quality.csv", index=False)
    d2 = df.assign(task=df.task.str[0])
    g = d2.groupby(["cohort", "task", "method"])
    piv = g.rel_rmse.agg(["mean", "std", "count"]).join(g.seconds.mean())
    out = ["| cohort | task | " + " | ".join(COLS) + " |", "|---|---|" + "---|" * len(COLS)]
    for (c, t), sub in piv.groupby(level=[0, 1]):
        cells = []
        for m in COLS:
            if (c, t, m) not in sub.index:
                cells.append("-")
                continue
            r = sub.loc[(c, t, m)]
            sd = "" if r["count"] < 2 else f" ± {r['std']:.3f}"
            sec = f", {r['seconds']:.0f} s" if r["seconds"] >= 1 and m not in ("mean",) else ""
            cells.append(f"{r['mean']:.3f}{sd} (n={int(r['count'])}{sec})")
        out.append(f"| {c} | {t} | " + " | ".join(cells) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
