"""Attention figures (the paper's evaluations 4 and 5) on TCGA melanoma and on synthetic data.

For each cohort: train the "cpu" preset with the paper's network (``linear_path="none"``: with the
preset's linear path the transformer learns only a correction to a ridge estimate, and its attention no
longer singles out the co-expressed genes; see ``gb.tl.attention``) with ``gb.tl.fit``, then
``gb.tl.attention`` (grouped), ``gb.tl.gene_umap``, and save

  docs/figures/attention_umap_{skcm,synthetic}.png           (the paper's Figure 5)
  docs/figures/attention_vs_expression_{skcm,synthetic}.png  (the paper's Figure 6)
  docs/figures/umap_samples_synthetic.png                    (evaluation 5: UMAP of the sample embeddings)

Cohorts: TCGA-SKCM (``gb.datasets.tcga_skcm()``, 454 samples x 1,712 genes) grouped by
``obs["sample_type_code"]`` (01A primary tumour, 06A metastasis); the synthetic default
(``gb.datasets.synthetic()``, 1,000 x 2,000, 5 types) grouped by ``cancer_type``. It prints the numbers
behind the figures (Spearman rho of attention with |mean z| and sd z per group, the rank correlation
between the groups' attention, and on synthetic data the attention of module genes against the rest).

Usage: python benchmarks/attention_figures.py [--phase1-epochs N] [--phase2-epochs M] [--cohorts skcm synthetic]
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import spearmanr

import gexbert_sc as gb

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"
KEY = "gexbert_attention"


def load(cohort: str):
    """AnnData, groupby column, the groups for the attention-vs-expression figure, and a label for titles."""
    if cohort == "skcm":
        adata = gb.datasets.tcga_skcm()
        return adata, "sample_type_code", ["01A", "06A"], "TCGA-SKCM (01A: primary tumour, 06A: metastasis)"
    adata = gb.datasets.synthetic(random_state=0)
    return adata, "cancer_type", ["TA", "TB"], "synthetic cohort (5 types, 20 modules of 50 genes)"


def report(adata, cohort: str, groupby: str) -> None:
    """Print the numbers behind the figures."""
    scores = adata.varm[KEY]
    print(f"\n== {cohort}: {adata.n_obs} samples x {adata.n_vars} genes, grouped by {groupby}")
    print("   samples per group:", dict(zip(adata.uns[KEY]["groups"], adata.uns[KEY]["n_samples"], strict=True)))
    s = adata.var[KEY].to_numpy()
    uniform = 1 / (adata.uns[KEY]["params"]["n_input"] + 1)
    print(f"   overall score: median {np.nanmedian(s):.5f}, range {np.nanmin(s):.5f}-{np.nanmax(s):.5f}, "
          f"uniform 1/(n_in+1) = {uniform:.5f}")
    for g in scores.columns:
        y = scores[g].to_numpy()
        m = np.abs(adata.varm[KEY + "_mean_z"][g].to_numpy())
        s = adata.varm[KEY + "_sd_z"][g].to_numpy()
        ok = np.isfinite(y) & np.isfinite(m) & np.isfinite(s)
        r1, r2 = spearmanr(m[ok], y[ok]), spearmanr(s[ok], y[ok])
        print(f"   {g}: attention vs |mean z| rho={r1.statistic:.3f} (p={r1.pvalue:.1e}); "
              f"vs sd z rho={r2.statistic:.3f} (p={r2.pvalue:.1e}); n={ok.sum()} genes; "
              f"top 5: {list(adata.uns[KEY]['names'][g][:5])}")
    for a, b in itertools.combinations(scores.columns, 2):
        ok = scores[[a, b]].notna().all(axis=1)
        rho = spearmanr(scores.loc[ok, a], scores.loc[ok, b]).statistic
        top_a, top_b = set(scores[a].nlargest(100).index), set(scores[b].nlargest(100).index)
        print(f"   {a} vs {b}: Spearman rho of attention {rho:.3f}; top-100 overlap {len(top_a & top_b)}")
    if "module" in adata.var:
        mod = adata.var["module"].to_numpy() >= 0
        s = adata.var[KEY].to_numpy()
        from sklearn.metrics import roc_auc_score

        print(f"   module genes / other genes, mean overall score: {s[mod].mean() / s[~mod].mean():.3f}; "
              f"AUC {roc_auc_score(mod, s):.3f}")
        spread = adata.uns["synthetic"]["type_means"].std(0)
        per_mod = [s[adata.var["module"].to_numpy() == k].mean() / s[~mod].mean() for k in range(len(spread))]
        print(f"   per module (score / other genes) vs spread of the module's type means: Spearman "
              f"{spearmanr(spread, per_mod).statistic:.3f}")
    if "X_gexbert" in adata.obsm and "cancer_type" in adata.obs and adata.obs["cancer_type"].nunique() > 1:
        from sklearn.metrics import silhouette_score
        from sklearn.model_selection import cross_val_score
        from sklearn.neighbors import KNeighborsClassifier

        emb, lab = adata.obsm["X_gexbert"], adata.obs["cancer_type"].astype(str).to_numpy()
        acc = cross_val_score(KNeighborsClassifier(15), emb, lab, cv=5).mean()
        print(f"   sample embeddings by cancer_type: silhouette {silhouette_score(emb, lab):.3f}, "
              f"15-NN accuracy (5-fold) {acc:.3f}")


def main(argv=None) -> None:
    """Train, compute and save the figures for the chosen cohorts."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase1-epochs", type=int, default=None, help="default: the cpu preset's (15)")
    ap.add_argument("--phase2-epochs", type=int, default=None, help="default: the cpu preset's (25)")
    ap.add_argument("--cohorts", nargs="+", default=["skcm", "synthetic"], choices=["skcm", "synthetic"])
    ap.add_argument("--top-n", type=int, default=None, help="highlighted genes per group (default: 5%% of genes)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--h5ad-dir", type=Path, default=None,
                    help="write each cohort's AnnData with the results there (<cohort>_attention.h5ad)")
    ap.add_argument("--from-h5ad", action="store_true",
                    help="no training: redraw from the AnnData files in --h5ad-dir (the plots need no model)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("command: python " + shlex.join(["benchmarks/attention_figures.py", *sys.argv[1:]]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for cohort in args.cohorts:
        adata, groupby, groups, label = load(cohort)
        cached = None if args.h5ad_dir is None else args.h5ad_dir / f"{cohort}_attention.h5ad"
        if args.from_h5ad:
            import anndata as ad

            adata = ad.read_h5ad(cached)
        else:
            t0 = time.perf_counter()
            model = gb.tl.fit(adata, config="cpu", linear_path="none", random_state=0,
                              phase1_epochs=args.phase1_epochs, phase2_epochs=args.phase2_epochs, progress=False)
            t_fit = time.perf_counter() - t0
            print(f"\n{cohort}: trained {len(model.history)} epochs in {t_fit:.0f} s; validation MSE {model.metrics}")
            t0 = time.perf_counter()
            gb.tl.attention(adata, model=model, groupby=groupby, progress=False)
            gb.tl.gene_umap(adata, model=model)
            print(f"   tl.attention + tl.gene_umap: {time.perf_counter() - t0:.0f} s")
            if cohort == "synthetic":
                gb.tl.umap(adata)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                adata.write_h5ad(cached)
        report(adata, cohort, groupby)
        top_n = args.top_n or max(50, round(0.05 * adata.n_vars))
        gb.pl.attention_umap(
            adata, top_n=top_n, show=False, save=str(args.out / f"attention_umap_{cohort}.png"),
            title=f"{label}: top {top_n} attended genes on the UMAP of the gene embeddings"
            + ("\npanels ordered by average-linkage clustering of the groups' attention (1 − Spearman ρ)"
               if adata.varm[KEY].shape[1] > 2 else ""),
        )
        # one row per group: each row is pl.attention_vs_expression drawn into a subfigure
        n_of = dict(zip(adata.uns[KEY]["groups"], adata.uns[KEY]["n_samples"], strict=True))
        parent = plt.figure(figsize=(9.5, 4.6 * len(groups)), layout="constrained")
        for sub, g in zip(np.atleast_1d(parent.subfigures(len(groups), 1)), groups, strict=True):
            gb.pl.attention_vs_expression(adata, g, fig=sub, show=False, log_y=True,
                                          title=f"within {g} (n={int(n_of[g])} samples)")
        parent.suptitle(f"{label}: attention against |mean z| and sd of z", fontsize="large")
        parent.savefig(args.out / f"attention_vs_expression_{cohort}.png", dpi=150, bbox_inches="tight")
        if cohort == "synthetic":
            ax = gb.pl.umap(adata, color="cancer_type", show=False,
                            title=f"GexBERT sample embeddings, synthetic cohort (n={adata.n_obs})")
            ax.set_axis_on()  # pl.umap draws frameless (scanpy's frameon=False): put the axis labels back
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("UMAP 1 of the summary embeddings")
            ax.set_ylabel("UMAP 2")
            ax.get_legend().set_title("cancer type")
            ax.figure.savefig(args.out / "umap_samples_synthetic.png", dpi=150, bbox_inches="tight")
        plt.close("all")
    print(f"\nfigures in {args.out}")


if __name__ == "__main__":
    main()
