"""Peak memory and wall time of the TCGA PANCAN parser (gb.datasets.tcga_pancan) on synthetic Xena files.

Writes gzipped genes x samples TSVs of the real file's shape (20,531 genes; 11,069 samples, or a
fraction of them; 2% ``NA``; 4 decimals like the Xena values) and a survival table, then measures in
fresh subprocesses, one per run:

* ``stream``: the streaming parser alone (``_xena_parse.read_xena_matrix``);
* ``pipeline``: what a first ``tcga_pancan()`` call does after the download: parse, join survival,
  write the ``.h5ad`` cache, apply the default filters (``n_top_genes=20,311``) and the split;
* ``cached``: what a later call does: read the cache, filters, split;
* ``pandas``: the previous implementation (``pandas.read_csv`` + transpose), smaller sizes only.

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` minus the RSS after imports; the numpy
peak is :mod:`tracemalloc`'s (stream and pandas only, in a second run, as tracing slows Python). Run::

    OMP_NUM_THREADS=1 python benchmarks/tcga_parse_memory.py --fractions 0.25 0.5 1.0 --pandas-fractions 0.25 0.5
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_GENES, N_SAMPLES = 20_531, 11_069
RESULTS = Path(__file__).parent / "results"


def write_files(folder: Path, n_samples: int, seed: int = 0) -> tuple[Path, Path]:
    """A gzipped Xena-format matrix (values drawn from a pool of formatted numbers) and a survival table."""
    rng = np.random.default_rng(seed)
    types = ["BRCA", "LUAD", "THCA", "LAML", "SKCM"]
    samples = [f"TCGA-{types[i % 5][:2]}-{i:04d}-{'11' if i % 10 == 0 else '01'}" for i in range(n_samples)]
    pool = np.array([f"{v:.4f}" for v in rng.gamma(2.0, 2.0, 8192)] + ["0"] * 1024 + ["NA"] * 190, dtype=object)
    expr = folder / f"expr_{n_samples}.tsv.gz"
    with gzip.open(expr, "wt", compresslevel=1) as fh:
        fh.write("sample\t" + "\t".join(samples) + "\n")
        for g in range(N_GENES):
            fh.write(f"GENE{g}\t" + "\t".join(pool[rng.integers(0, len(pool), n_samples)]) + "\n")
    surv = folder / f"surv_{n_samples}.tsv"
    with open(surv, "w") as fh:
        fh.write("sample\t_PATIENT\tcancer type abbreviation\tOS\tOS.time\n")
        for i, s in enumerate(samples):
            fh.write(f"{s}\t{s[:12]}\t{types[i % 5]}\t{i % 3 == 0:d}\t{100 + i % 3000}\n")
    return expr, surv


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(mode: str, expr: str, surv: str, trace: bool) -> dict:
    """One measured run in this (fresh) process."""
    import tracemalloc

    import pandas as pd
    from anndata import AnnData

    from gexbert_sc.datasets import _pancan, _xena_parse

    cache = Path(expr + ".parsed.h5ad")
    stamp = _pancan._stamp(Path(expr), Path(surv))
    base = _rss_mb()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    if mode == "stream":
        X = _xena_parse.read_xena_matrix(expr)[0]
    elif mode == "pipeline":
        full = _pancan._full_parse(Path(expr), Path(surv), progress=False)
        _pancan._write_cache(full, cache, stamp)
        X = _pancan._finish(full, False, 0.0, _pancan.PAPER_N_GENES, 0.3, 0.2, 0, "local").X
    elif mode == "cached":
        X = _pancan._finish(_pancan._load_cache(cache, stamp), False, 0.0, _pancan.PAPER_N_GENES, 0.3, 0.2, 0, "local").X
    elif mode == "pandas":  # the implementation this one replaced
        df = pd.read_csv(expr, sep="\t", index_col=0)
        df = df[~df.index.duplicated()]
        X = AnnData(df.to_numpy(dtype=np.float32).T).X
    else:
        raise ValueError(f"unknown mode {mode!r}")
    wall = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    return {"mode": mode, "shape": list(X.shape), "matrix_mb": X.nbytes / 2**20, "wall_s": wall,
            "peak_rss_mb": _rss_mb() - base, "tracemalloc_peak_mb": traced}  # fmt: skip


def measure(mode: str, expr: Path, surv: Path, trace: bool) -> dict:
    """Run one mode in a fresh interpreter and return its measurements."""
    cmd = [sys.executable, __file__, "--child", mode, str(expr), str(surv)] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(fractions, pandas_fractions, folder: Path) -> list[dict]:
    """Write the files of each size and measure every mode on them (tracemalloc for stream and pandas)."""
    rows = []
    for frac in sorted(set(fractions) | set(pandas_fractions)):
        n = round(N_SAMPLES * frac)
        t0 = time.perf_counter()
        expr, surv = write_files(folder, n)
        print(f"{n} samples: wrote {expr.stat().st_size / 2**20:.0f} MB in {time.perf_counter() - t0:.0f} s", flush=True)
        modes = (["stream", "pipeline", "cached"] if frac in fractions else []) + (["pandas"] if frac in pandas_fractions else [])
        for mode in modes:
            r = measure(mode, expr, surv, trace=False)
            if mode in ("stream", "pandas"):
                r["tracemalloc_peak_mb"] = measure(mode, expr, surv, trace=True)["tracemalloc_peak_mb"]
            r.update(fraction=frac, n_samples=n, gz_mb=expr.stat().st_size / 2**20)
            print(json.dumps(r), flush=True)
            rows.append(r)
        for p in folder.iterdir():
            p.unlink()
    return rows


def extrapolate(rows: list[dict], mode: str, key: str) -> float | None:
    """``key`` at 11,069 samples: the measurement if there is one, else a linear fit against the sample count."""
    pts = [(r["n_samples"], r[key]) for r in rows if r["mode"] == mode and r[key] is not None]
    full = [v for n, v in pts if n == N_SAMPLES]
    if full or len(pts) < 2:
        return full[0] if full else None
    slope, icpt = np.polyfit(*zip(*pts, strict=True), 1)
    return float(slope * N_SAMPLES + icpt)


def write_report(rows: list[dict], command: str) -> None:
    """benchmarks/results/tcga_parse_memory.{json,md}."""
    RESULTS.mkdir(exist_ok=True)
    full_mb = N_SAMPLES * N_GENES * 4 / 2**20
    extra = {m: {k: extrapolate(rows, m, k) for k in ("peak_rss_mb", "tracemalloc_peak_mb", "wall_s")}
             for m in ("stream", "pipeline", "cached", "pandas")}  # fmt: skip
    meta = {"command": command, "python": platform.python_version(), "numpy": np.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "full_matrix_mb": full_mb}  # fmt: skip
    (RESULTS / "tcga_parse_memory.json").write_text(json.dumps({"meta": meta, "runs": rows, "at_11069_samples_linear": extra}, indent=1))
    lines = [
        "# TCGA PANCAN parser: peak memory and time", "", f"`{command}`", "",
        f"Synthetic gzipped Xena matrices, {N_GENES:,} genes, 2% NA; {meta['machine']}, Python {meta['python']}, "
        f"numpy {meta['numpy']}. One float32 copy of the full {N_SAMPLES:,} x {N_GENES:,} matrix is {full_mb:,.0f} MB. "
        "Peak RSS = ru_maxrss minus the RSS after imports; tracemalloc = peak of traced (numpy and Python) allocations. "
        "Wall times are noisy: the 2 cores were shared with other jobs (load average 5-8 during the run).",
        "", "| mode | samples | gz MB | matrix MB | peak RSS MB | tracemalloc peak MB | peak / matrix | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        tm = f"{r['tracemalloc_peak_mb']:.0f}" if r["tracemalloc_peak_mb"] is not None else "-"
        lines.append(f"| {r['mode']} | {r['n_samples']:,} | {r['gz_mb']:.0f} | {r['matrix_mb']:.0f} | {r['peak_rss_mb']:.0f} "
                     f"| {tm} | {r['peak_rss_mb'] / r['matrix_mb']:.2f} | {r['wall_s']:.1f} |")  # fmt: skip
    lines += ["", "At 11,069 samples: measured where that size was run, else extrapolated linearly from the smaller sizes "
              "(pandas: from 2,767 and 5,534 samples; not run at full size to spare the shared machine):", "",
              "| mode | peak RSS MB | tracemalloc peak MB | wall s |", "|---|---|---|---|"]  # fmt: skip
    for m, e in extra.items():
        if e["peak_rss_mb"] is not None:
            tm = f"{e['tracemalloc_peak_mb']:.0f}" if e["tracemalloc_peak_mb"] is not None else "-"
            lines.append(f"| {m} | {e['peak_rss_mb']:.0f} | {tm} | {e['wall_s']:.0f} |")
    (RESULTS / "tcga_parse_memory.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--pandas-fractions", type=float, nargs="+", default=[0.25, 0.5])
    p.add_argument("--child", nargs=3, metavar=("MODE", "EXPR", "SURV"), help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, trace=args.trace)))
        return
    if args.report_only:
        saved = json.loads((RESULTS / "tcga_parse_memory.json").read_text())
        write_report(saved["runs"], saved["meta"]["command"])
        return
    with tempfile.TemporaryDirectory(prefix="tcga_parse_memory_") as tmp:
        rows = run(args.fractions, args.pandas_fractions, Path(tmp))
    command = "OMP_NUM_THREADS=1 python benchmarks/tcga_parse_memory.py " + " ".join(
        ["--fractions", *map(str, args.fractions), "--pandas-fractions", *map(str, args.pandas_fractions)])  # fmt: skip
    write_report(rows, command)


if __name__ == "__main__":
    main()
