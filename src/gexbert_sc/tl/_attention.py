"""``tl.attention``: how much attention the summary (cls) token pays each gene, overall and per group."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from tqdm.auto import tqdm

from gexbert_sc._validate import check_anndata, check_obs_key, obs_labels
from gexbert_sc.train import observed_first_subsets

logger = logging.getLogger("gexbert_sc")

#: Label of the single group when ``groupby`` is None.
ALL_SAMPLES = "all"


def attention(
    adata: AnnData,
    *,
    model,
    groupby: str | None = None,
    n_input: int | None = None,
    n_repeats: int | None = None,
    n_top: int = 100,
    batch_size: int = 64,
    random_state: int = 0,
    progress: bool = True,
    key_added: str = "gexbert_attention",
    copy: bool = False,
) -> AnnData | None:
    """Attention score of each gene: the weight the summary (cls) query gives it in the encoder.

    Every sample is encoded as at inference (:meth:`GexBERT.embed <gexbert_sc.GexBERT.embed>`): its
    values are standardised with the model's statistics (:meth:`GexBERT.standardize
    <gexbert_sc.GexBERT.standardize>`), and ``n_repeats`` seeded random input sets of
    ``n_in = min(n_input, n_genes)`` of its observed genes are drawn with
    :func:`gexbert_sc.train.observed_first_subsets` (successive sets walk through one random order
    of the sample's observed genes). Each set goes through the encoder's attention-returning path
    (:meth:`GexBERTModule.cls_attention <gexbert_sc.module.GexBERTModule.cls_attention>`, whose summary
    equals the normal forward), in batches of ``batch_size`` samples; only the cls row of each
    layer's attention is formed and it is reduced at once, so no attention matrix is kept.

    Aggregation. Let ``A[i, r, l, h, g]`` be the attention probability from the cls query to input
    gene ``g`` in layer ``l``, head ``h``, for input set ``r`` of sample ``i`` (a softmax over the cls
    token and the ``n_in`` input genes; missing genes are masked out and get 0). Then

    - per occurrence: ``a[i, r, g] = mean over l, h of A[i, r, l, h, g]`` (all layers and heads
      weighted equally);
    - ``S[c, g] = sum of a[i, r, g]`` over the samples ``i`` of group ``c`` and their sets ``r``
      that contain ``g`` as an observed (non-NaN) value;
    - ``n[c, g]`` = the number of those occurrences;
    - score ``S[c, g] / n[c, g]``: the mean attention gene ``g`` received when it was in the input.
      Genes never in the input (``n = 0``), and genes the model does not know, get NaN.

    The overall score pools every sample (those with a missing ``groupby`` label included):
    ``sum_c S[c, g] / sum_c n[c, g]``. Uniform attention would give each gene ``1 / (n_in + 1)``
    (the cls token also attends to itself), so scores compare across genes and groups of one call,
    and across calls only at the same ``n_input``.

    With a linear path (``model.config.linear_path`` ``"fixed"`` or ``"learned"``, the ``"cpu"``
    preset's default) the transformer learns only a correction to a ridge-like estimate from every
    input gene, and its attention answers that narrower question. On the synthetic test cohort
    (tiny model, 2 + 8 epochs, 3 data seeds) the genes of the co-expression modules received 1.11-1.30
    times the attention of the other genes without a linear path and 0.98 times with the fixed one.
    For the paper's analysis train with ``linear_path="none"``.

    Parameters
    ----------
    adata
        Samples x genes (genes aligned to the model's vocabulary by name).
    model
        A trained :class:`~gexbert_sc.GexBERT`.
    groupby
        Column of ``adata.obs`` whose groups get their own scores; None: one group, ``"all"``.
    n_input
        Genes per input set (default: ``model.config.n_input``).
    n_repeats
        Input sets per sample (default: enough to cover the vocabulary, at most 4, as in ``embed``).
        More sets give each gene more occurrences; the cost is linear in it.
    n_top
        Genes listed per group in ``.uns[key_added]["names"]``.
    batch_size
        Samples per forward pass.
    random_state
        Seeds the input sets.
    progress
        Show a progress bar over the batches.
    key_added
        Where the results go (below).
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    The copy if ``copy``, else None. Adds:

    ``.var[key_added]``
        Overall score of each gene (float; NaN where never in the input or unknown to the model).
    ``.var[key_added + "_n"]``
        How many times each gene was in the input, observed (all samples and sets).
    ``.varm[key_added]``
        DataFrame, genes x groups: the score within each group.
    ``.varm[key_added + "_mean_z"]``, ``.varm[key_added + "_sd_z"]``
        DataFrames, genes x groups: mean and sd (ddof 1) over the group's samples of the
        model-standardised values (z; NaN-aware), the units the network sees.
    ``.uns[key_added]``
        ``params`` (``groupby`` (``""`` for none), ``n_input``, ``n_repeats``, ``n_top``,
        ``random_state``, ``batch_size``), ``groups`` (group names, in the column order),
        ``n_samples`` (samples per group), ``names`` and ``scores``: record arrays with one field per
        group, the group's ``n_top`` highest-scoring genes and their scores, best first (as
        :func:`scanpy.tl.rank_genes_groups`; genes with a NaN score come last).

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic()
    >>> model = gb.tl.fit(adata)
    >>> gb.tl.attention(adata, model=model, groupby="cancer_type")
    >>> adata.uns["gexbert_attention"]["names"]["TA"][:10]
    """
    from gexbert_sc.model import GexBERT

    check_anndata(adata)
    if not isinstance(model, GexBERT):
        raise TypeError(f"model must be a gexbert_sc.GexBERT, got {type(model).__name__}")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError("key_added must be a non-empty string")
    check_obs_key(adata, groupby, "groupby")
    n_input = model.config.n_input if n_input is None else _positive_int(n_input, "n_input")
    n_vocab = len(model.genes)
    n_in = min(n_input, n_vocab)
    n_repeats = min(4, max(1, math.ceil(n_vocab / n_in))) if n_repeats is None else _positive_int(n_repeats, "n_repeats")
    n_top = _positive_int(n_top, "n_top")
    batch_size = _positive_int(batch_size, "batch_size")
    if not isinstance(random_state, int | np.integer):
        raise TypeError(f"random_state must be an int, got {type(random_state).__name__}")
    if adata.n_obs == 0:
        raise ValueError("adata has no samples")
    if not model.is_trained:
        warnings.warn("this GexBERT has not been trained: its attention is random. Train it first "
                      "(gexbert_sc.tl.fit or model.train())", UserWarning, stacklevel=2)

    if getattr(model.config, "linear_path", "none") != "none":
        logger.warning("this model has a linear path (linear_path=%r): the attention describes the transformer's "
                       "correction to the linear estimate, not the whole model; for the paper's analysis train "
                       "with linear_path='none'", model.config.linear_path)
    groups, codes = _group_codes(adata, groupby)
    align = model.align(adata)
    z = model.standardize(adata)  # (n_obs, n_vocab) float32, vocabulary order, NaN where missing
    sums, counts = _accumulate(model.module, z, codes, len(groups), n_in, n_repeats, batch_size, random_state, progress)

    with np.errstate(invalid="ignore", divide="ignore"):
        per_group = sums[: len(groups)] / counts[: len(groups)]  # (n_groups, n_vocab), NaN where n = 0
        overall = sums.sum(0) / counts.sum(0)
    mean_z, sd_z = _group_moments(z, codes, len(groups))

    to_var = _vocab_to_var(align, adata.n_vars)
    if copy:
        adata = adata.copy()
    var_names = adata.var_names
    adata.var[key_added] = to_var(overall)
    adata.var[f"{key_added}_n"] = np.nan_to_num(to_var(counts.sum(0)), nan=0.0).astype(np.int64)
    for suffix, table in (("", per_group), ("_mean_z", mean_z), ("_sd_z", sd_z)):
        adata.varm[key_added + suffix] = pd.DataFrame(to_var(table.T), index=var_names.copy(), columns=list(groups))
    scores_df = adata.varm[key_added]
    n_rank = min(n_top, adata.n_vars)
    names, top_scores = [], []
    for g in groups:
        s = scores_df[g].to_numpy()
        order = np.argsort(np.where(np.isnan(s), np.inf, -s), kind="stable")[:n_rank]
        names.append(np.asarray(var_names[order], dtype=object))
        top_scores.append(s[order])
    adata.uns[key_added] = {
        "params": {
            "groupby": "" if groupby is None else groupby,
            "n_input": int(n_in),
            "n_repeats": int(n_repeats),
            "n_top": int(n_rank),
            "random_state": int(random_state),
            "batch_size": int(batch_size),
        },
        "groups": np.asarray(groups, dtype=object),
        "n_samples": np.bincount(codes[codes >= 0], minlength=len(groups)).astype(np.int64),
        "names": np.rec.fromarrays(names, names=list(groups)),
        "scores": np.rec.fromarrays(top_scores, names=list(groups)),
    }
    logger.info("added .var[%r] (overall attention) and .var[%r] (times in the input), .varm[%r] (%d groups), "
                ".varm[%r] and .varm[%r] (z within groups), .uns[%r] (params, top %d genes per group)",
                key_added, f"{key_added}_n", key_added, len(groups), f"{key_added}_mean_z", f"{key_added}_sd_z",
                key_added, n_rank)
    return adata if copy else None


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _group_codes(adata: AnnData, groupby: str | None) -> tuple[list[str], np.ndarray]:
    """Group names (categories in their order, else sorted) and each sample's group index (-1: no label)."""
    if groupby is None:
        return [ALL_SAMPLES], np.zeros(adata.n_obs, dtype=np.int64)
    labels = obs_labels(adata, groupby)
    present = set(labels.dropna())
    if not present:
        raise ValueError(f"adata.obs[{groupby!r}] has no labels (all missing)")
    col = adata.obs[groupby]
    if isinstance(col.dtype, pd.CategoricalDtype):
        groups = [str(c) for c in col.cat.categories if str(c) in present]
    else:
        groups = sorted(present)
    index = {g: i for i, g in enumerate(groups)}
    codes = np.array([-1 if v is None else index[v] for v in labels], dtype=np.int64)
    return groups, codes


@torch.no_grad()
def _accumulate(module, z: np.ndarray, codes: np.ndarray, n_groups: int, n_in: int, n_repeats: int,
                batch_size: int, random_state: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sums ``S`` and counts ``n`` (see :func:`attention`), ``(n_groups + 1, n_vocab)``; the last row holds the samples without a group."""
    n_obs, n_vocab = z.shape
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    slot = np.where(codes < 0, n_groups, codes)
    sums = torch.zeros((n_groups + 1) * n_vocab, dtype=torch.float64)
    counts = torch.zeros((n_groups + 1) * n_vocab, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(random_state))
    try:
        for start in tqdm(range(0, n_obs, batch_size), desc="attention", unit="batch", disable=not progress,
                          leave=False):
            rows = slice(start, min(start + batch_size, n_obs))
            zb = torch.from_numpy(np.ascontiguousarray(z[rows]))
            base = torch.from_numpy(slot[rows] * n_vocab)[:, None]
            for genes in observed_first_subsets(~torch.isnan(zb), n_in, n_repeats, gen):
                values = zb.gather(1, genes)
                _, att = module.cls_attention(genes.to(device), values.to(device))
                a = att.mean(dim=(1, 2)).double().cpu()  # (B, n_in): mean over layers and heads
                seen = ~torch.isnan(values)
                flat = (base + genes)[seen]
                sums.index_add_(0, flat, a[seen])
                counts.index_add_(0, flat, torch.ones_like(flat, dtype=torch.float64))
    finally:
        module.train(was_training)
    return sums.view(n_groups + 1, n_vocab).numpy(), counts.view(n_groups + 1, n_vocab).numpy()


def _group_moments(z: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean and sd (ddof 1) of ``z`` over each group's samples, ``(n_groups, n_vocab)`` each."""
    mean = np.full((n_groups, z.shape[1]), np.nan)
    sd = np.full((n_groups, z.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN genes and one-sample groups give NaN
        for c in range(n_groups):
            zc = z[codes == c].astype(np.float64)
            mean[c] = np.nanmean(zc, axis=0)
            sd[c] = np.nanstd(zc, axis=0, ddof=1)
    return mean, sd


def _vocab_to_var(align, n_vars: int):
    """A function mapping vocabulary-ordered ``(n_vocab, ...)`` arrays to AnnData order ``(n_vars, ...)`` (NaN for genes the model lacks)."""
    have = align.present
    cols = align.columns[have]

    def to_var(values: np.ndarray) -> np.ndarray:
        out = np.full((n_vars, *values.shape[1:]), np.nan)
        out[cols] = values[have]
        return out

    return to_var
