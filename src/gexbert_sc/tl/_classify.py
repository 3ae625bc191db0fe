"""``tl.classify``: classify samples (e.g. cancer type) from a few input genes, with GexBERT or baselines."""

from __future__ import annotations

import copy as _copy
import logging
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from tqdm.auto import tqdm

from gexbert_sc._validate import check_anndata, check_obs_key, obs_labels
from gexbert_sc._validate import check_int as _check_int

from ._inputs import (
    check_expression,
    check_key_added,
    check_model,
    dense_rows,
    draw_input_genes,
    input_gene_pool,
    quiet_model,
    repeat_seed,
)

logger = logging.getLogger("gexbert_sc")

METHODS = ("probe", "finetune", "pca", "mlp")
_NEEDS_MODEL = ("probe", "finetune")
#: ``split_key`` values of the training samples and of the test samples (compared in lower case).
TRAIN_VALUES = ("train", "pretrain", "validation")
TEST_VALUES = ("test",)
#: Hidden units of the ``"mlp"`` baseline (the paper's "2-layer neural network (128 hidden units)").
MLP_HIDDEN = 128
#: Rows standardised at a time by ``model.standardize`` (it returns every vocabulary gene).
_STD_CHUNK = 2048


def _labels(adata: AnnData, groupby: str) -> tuple[np.ndarray, np.ndarray]:
    lab = obs_labels(adata, groupby).to_numpy(dtype=object)
    has = ~pd.isna(lab)
    if not has.any():
        raise ValueError(f"adata.obs[{groupby!r}] holds no label; nothing to classify")
    if (~has).any():
        warnings.warn(
            f"{int((~has).sum())} sample(s) without a label in adata.obs[{groupby!r}] are left out (not predicted)",
            UserWarning,
            stacklevel=3,
        )
    return lab, has


def _split(adata: AnnData, split_key: str, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    check_obs_key(adata, split_key, "split_key")
    raw = adata.obs[split_key].astype(object)
    val = raw.map(lambda v: str(v).strip().lower() if pd.notna(v) else None).to_numpy(dtype=object)
    bad = sorted({str(v) for v in val if v is not None and v not in TRAIN_VALUES + TEST_VALUES})
    if bad:
        raise ValueError(
            f"adata.obs[{split_key!r}] must hold 'train' or 'test' (also accepted as training: 'pretrain', "
            f"'validation'), but holds {bad[:5]}; recode it, e.g. adata.obs[{split_key!r}] = "
            f"adata.obs[{split_key!r}].map({{...: 'train', ...: 'test'}})"
        )
    none = np.array([v is None for v in val]) & usable
    if none.any():
        warnings.warn(
            f"{int(none.sum())} sample(s) without a value in adata.obs[{split_key!r}] are left out",
            UserWarning,
            stacklevel=3,
        )
    train = usable & np.isin(val.astype(str), TRAIN_VALUES)
    test = usable & np.isin(val.astype(str), TEST_VALUES)
    if not test.any():
        raise ValueError(f"adata.obs[{split_key!r}] marks no labelled sample 'test'; there is nothing to predict")
    if train.sum() < 2:
        raise ValueError(f"adata.obs[{split_key!r}] marks fewer than 2 labelled samples for training")
    return np.flatnonzero(train), np.flatnonzero(test)


def _standardized_inputs(model, sub: AnnData, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input genes' values in the network's units (``model.standardize``), NaN where missing, and their vocabulary indices."""
    vocab = {g: i for i, g in enumerate(np.asarray(model.genes, dtype=str))}
    cols = np.array([vocab[g] for g in genes], dtype=np.int64)
    out = np.empty((sub.n_obs, len(genes)), dtype=np.float32)
    for start in range(0, sub.n_obs, _STD_CHUNK):
        stop = min(start + _STD_CHUNK, sub.n_obs)
        out[start:stop] = model.standardize(sub[start:stop])[:, cols]
    return out, cols


def _sk_pipeline(method: str, n_pcs: int, seed: int):
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if method == "probe":
        return Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=2000))])
    # genes standardised on the training samples (NaN ignored), then NaN -> 0 (the training mean)
    steps = [("scale", StandardScaler()), ("fill", SimpleImputer(strategy="constant", fill_value=0.0,
                                                                 keep_empty_features=True))]
    if method == "pca":
        steps += [("pca", PCA(n_components=n_pcs, random_state=seed)), ("logreg", LogisticRegression(max_iter=2000))]
    else:
        steps.append(("mlp", MLPClassifier(hidden_layer_sizes=(MLP_HIDDEN,), max_iter=500, random_state=seed)))
    return Pipeline(steps)


def _finetune(module, gene_idx, Z, y, train, test, n_classes, *, epochs, lr, batch_size, seed):
    """Train a deep copy of ``module``'s encoder with a linear head (cross-entropy); class probabilities of ``test``.

    The head reads the whole encoded state (:meth:`~gexbert_sc.module.GexBERTModule.encode`: the summary, then
    the linear path's latent, which stays fixed where the path is), as the probe does: with a linear path the
    summary alone carries little of the signal.
    """
    import torch
    from torch import nn

    device = next(module.parameters()).device
    net = _copy.deepcopy(module).to(device)
    d = net.state_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, n_classes)).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(
        [{"params": net.parameters(), "lr": lr}, {"params": head.parameters(), "lr": 10 * lr}], weight_decay=0.01
    )
    genes = torch.as_tensor(gene_idx, dtype=torch.long, device=device)
    Zt = torch.as_tensor(Z, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    tr = torch.as_tensor(train, dtype=torch.long)
    net.train()
    head.train()
    for _ in range(epochs):
        perm = tr[torch.randperm(len(tr), generator=gen)].to(device)
        for b in range(0, len(perm), batch_size):
            idx = perm[b : b + batch_size]
            logits = head(net.encode(genes.expand(len(idx), -1), Zt[idx]))
            loss = nn.functional.cross_entropy(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(net.parameters()) + list(head.parameters()), 1.0)
            opt.step()
    net.eval()
    head.eval()
    te = torch.as_tensor(test, dtype=torch.long, device=device)
    out = []
    with torch.no_grad():
        for b in range(0, len(te), 256):
            idx = te[b : b + 256]
            out.append(torch.softmax(head(net.encode(genes.expand(len(idx), -1), Zt[idx])).float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes))


def classify(
    adata: AnnData,
    *,
    model=None,
    groupby: str = "cancer_type",
    method: str = "probe",
    input_genes: int | Sequence[str] = 64,
    split_key: str | None = None,
    n_folds: int = 5,
    random_state: int = 0,
    n_pcs: int = 200,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    layer: str | None = None,
    progress: bool = True,
    key_added: str = "gexbert_classify",
    copy: bool = False,
) -> AnnData | None:
    """Classify samples (e.g. by cancer type) from a few input genes: GexBERT's embedding or fine-tuned network, or a baseline.

    The paper's pan-cancer classification (its evaluation 1), as one run; repeat it with other
    ``random_state`` values for other random input genes.

    Methods, all on the same ``input_genes``:

    ``"probe"``
        Logistic regression (:class:`sklearn.linear_model.LogisticRegression` on standardised features) on
        the embedding of the input genes (:meth:`GexBERT.embed` of an AnnData that holds only their columns,
        all of them in one encoder input: the summary, then the linear latent with the default linear path).
    ``"finetune"``
        The network's encoder and a linear head (LayerNorm + linear) on its whole state (the summary, then the
        linear latent, as the probe reads) trained together with cross-entropy
        (AdamW, ``epochs`` passes, learning rate ``lr`` for the encoder and ``10 * lr`` for the head,
        gradients clipped to norm 1), on a deep copy of ``model.module`` per training set: the user's model
        never changes. The encoder reads the input genes standardised with :meth:`GexBERT.standardize`.
    ``"pca"``
        Baseline: the genes standardised on the training samples (NaN then set to 0), the first ``n_pcs``
        principal components (capped by the training samples and genes; the paper's PCA-200), logistic
        regression.
    ``"mlp"``
        Baseline: the same standardised genes into :class:`sklearn.neural_network.MLPClassifier` with one
        hidden layer of 128 ReLU units and a softmax output, i.e. the paper's "2-layer neural network (128
        hidden units)" read as two weight layers.

    Parameters
    ----------
    adata
        Samples x genes (log scale), NaN where missing.
    model
        A trained :class:`~gexbert_sc.GexBERT`, needed for ``"probe"`` and ``"finetune"``. With a model,
        input genes are drawn from adata's genes that it knows (whatever the method), so that every
        method with the same ``random_state`` uses the same genes and folds.
    groupby
        ``adata.obs`` column with the classes. Samples without a label are left out with a warning.
    method
        ``"probe"``, ``"finetune"``, ``"pca"`` or ``"mlp"``, see above.
    input_genes
        Number of random input genes (seeded by ``random_state``) or a list of gene names.
    split_key
        None: stratified ``n_folds``-fold cross-validation, every labelled sample predicted out of fold.
        Else an ``adata.obs`` column with ``"train"`` / ``"test"`` (``"pretrain"`` and ``"validation"`` count
        as training): train on the training samples, predict the test samples only.
    n_folds
        Folds of the cross-validation; every class needs at least this many samples.
    random_state
        Seeds the input genes, the folds, the model's subsets and the classifiers.
    n_pcs
        Principal components of ``"pca"``.
    epochs, lr, batch_size
        Training of ``"finetune"``.
    layer
        Read the values from this layer (a model reads its own: leave None or pass the model's).
    progress
        Show a progress bar over the training sets.
    key_added
        Prefix of the keys written.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds

    ``.obs[key_added + "_pred"]``
        Categorical predicted class (categories: the classes); NaN for samples not predicted.
    ``.obsm[key_added + "_proba"]``
        DataFrame, one column per class (index ``obs_names``): predicted probabilities; NaN rows for samples
        not predicted.
    ``.uns[key_added]``
        ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"`` (floats, over the predicted samples),
        ``"n_predicted"``, ``"confusion_matrix"`` (DataFrame of counts, true classes x predicted classes),
        ``"classes"``, ``"input_genes"`` and ``"params"`` (None stored as ``""``).

    Raises
    ------
    ValueError
        The method needs a model and none is given; a class with fewer than ``n_folds`` samples; bad
        ``split_key`` values; bad parameters.
    KeyError
        ``groupby`` or ``split_key`` is not an ``adata.obs`` column; unknown input genes.

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic()
    >>> model = gb.GexBERT(adata).train()
    >>> gb.tl.classify(adata, model=model, groupby="cancer_type", method="probe", input_genes=64)
    >>> adata.uns["gexbert_classify"]["accuracy"]
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
    from sklearn.model_selection import StratifiedKFold

    check_anndata(adata)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    model = check_model(model, method)
    if model is None and method in _NEEDS_MODEL:
        raise ValueError(
            f"method={method!r} needs a trained GexBERT: pass model=GexBERT(adata).train() (or GexBERT.load(...)); "
            "the baselines 'pca' and 'mlp' need no model"
        )
    n_folds = _check_int(n_folds, "n_folds", 2)
    random_state = _check_int(random_state, "random_state", 0)
    n_pcs = _check_int(n_pcs, "n_pcs", 1)
    epochs = _check_int(epochs, "epochs", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    check_key_added(key_added)
    layer = check_expression(adata, model, layer)
    check_obs_key(adata, groupby, "groupby")
    labels, has = _labels(adata, groupby)

    if split_key is None:
        rows = np.flatnonzero(has)
        counts = pd.Series(labels[rows]).value_counts()
        small = counts[counts < n_folds]
        if len(small):
            raise ValueError(
                f"{len(small)} class(es) have fewer than n_folds={n_folds} samples: "
                + ", ".join(f"{c!r} ({n})" for c, n in small.items())
                + f"; drop them (e.g. adata = adata[~adata.obs[{groupby!r}].isin([...])].copy()), lower n_folds, "
                "or pass split_key="
            )
        if len(counts) < 2:
            raise ValueError(f"adata.obs[{groupby!r}] has a single class; nothing to classify")
        seed_f = repeat_seed(random_state, 0) % (2**32 - 1)
        splits = [
            (rows[tr], rows[te])
            for tr, te in StratifiedKFold(n_folds, shuffle=True, random_state=seed_f).split(rows, labels[rows])
        ]
    else:
        train, test = _split(adata, split_key, has)
        if len(set(labels[train])) < 2:
            raise ValueError("the training samples hold a single class; nothing to learn")
        rows = np.sort(np.concatenate([train, test]))
        splits = [(train, test)]
    if isinstance(adata.obs[groupby].dtype, pd.CategoricalDtype):
        present = set(labels[rows])
        classes = [str(c) for c in adata.obs[groupby].cat.categories if str(c) in present]
    else:
        classes = sorted(set(labels[rows]))
    code = {c: i for i, c in enumerate(classes)}
    y = np.full(adata.n_obs, -1, dtype=np.int64)
    y[rows] = [code[c] for c in labels[rows]]

    pool = input_gene_pool(adata, model)
    seed = repeat_seed(random_state, 0)
    genes = draw_input_genes(input_genes, pool, np.random.default_rng(seed), model is not None)
    k = len(genes)
    cols = pd.Index(adata.var_names.astype(str)).get_indexer(genes)
    if model is not None and not model.is_trained:
        warnings.warn(
            "this GexBERT has not been trained: its embeddings are random. Call model.train() first",
            UserWarning,
            stacklevel=2,
        )

    # features of every sample (no label is used to make them)
    sub = adata[:, cols] if model is not None else None
    with quiet_model():
        if method == "probe":
            F = model.embed(sub, n_input=k, n_repeats=1, random_state=seed).astype(np.float64)
        elif method == "finetune":
            F, gene_idx = _standardized_inputs(model, sub, genes)
        else:
            X = adata.layers[layer] if layer is not None else adata.X
            F = dense_rows(X, np.arange(adata.n_obs), cols)

    proba = np.full((adata.n_obs, len(classes)), np.nan)
    for f, (tr, te) in enumerate(tqdm(splits, desc=f"classify ({method})", unit="fold", disable=not progress)):
        fold_seed = (seed + f) % (2**32 - 1)
        if method == "finetune":
            # the head has a unit per class; a class absent from training is never predicted
            proba[te] = _finetune(model.module, gene_idx, F, y, tr, te, len(classes), epochs=epochs, lr=float(lr),
                                  batch_size=batch_size, seed=fold_seed)
            continue
        pcs = max(1, min(n_pcs, len(tr) - 1, k))
        pipe = _sk_pipeline(method, pcs, fold_seed)
        with warnings.catch_warnings():
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(F[tr], y[tr])
        p = np.zeros((len(te), len(classes)))
        p[:, pipe.classes_] = pipe.predict_proba(F[te])
        proba[te] = p

    done = ~np.isnan(proba).any(axis=1)
    pred_code = np.where(done, np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1), -1)
    pred = pd.Categorical.from_codes(pred_code, categories=classes)
    yt, yp = y[done], pred_code[done]
    cm = confusion_matrix(yt, yp, labels=np.arange(len(classes)))
    if copy:
        adata = adata.copy()
    adata.obs[key_added + "_pred"] = pd.Categorical(pred, categories=classes)
    adata.obsm[key_added + "_proba"] = pd.DataFrame(proba, index=adata.obs_names.copy(), columns=pd.Index(classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class absent from the test samples
        bal = float(balanced_accuracy_score(yt, yp))
    adata.uns[key_added] = {
        "accuracy": float(accuracy_score(yt, yp)),
        "balanced_accuracy": bal,
        "macro_f1": float(f1_score(yt, yp, average="macro", labels=np.unique(yt), zero_division=0)),
        "n_predicted": int(done.sum()),
        "confusion_matrix": pd.DataFrame(cm, index=pd.Index(classes), columns=pd.Index(classes)),
        "classes": np.asarray(classes, dtype=str),
        "input_genes": np.asarray(genes, dtype=str),
        "params": {
            "method": method,
            "groupby": groupby,
            "n_input_genes": k,
            "input_genes_given": not isinstance(input_genes, numbers.Integral),
            "split_key": "" if split_key is None else split_key,
            "n_folds": n_folds if split_key is None else 0,
            "random_state": random_state,
            "n_pcs": n_pcs if method == "pca" else 0,
            "mlp_hidden": MLP_HIDDEN if method == "mlp" else 0,
            "epochs": epochs if method == "finetune" else 0,
            "lr": float(lr) if method == "finetune" else 0.0,
            "batch_size": batch_size if method == "finetune" else 0,
            "layer": "" if layer is None else layer,
            "model": "" if model is None else repr(model),
        },
    }
    logger.info(
        "classify (%s, %d input genes): accuracy %.3f on %d sample(s); added .obs[%r], .obsm[%r] and .uns[%r]",
        method,
        k,
        adata.uns[key_added]["accuracy"],
        int(done.sum()),
        key_added + "_pred",
        key_added + "_proba",
        key_added,
    )
    return adata if copy else None
