"""Input genes of the prediction tools (``tl.survival``, ``tl.classify``): drawing, reading, checks."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from gexbert_sc._validate import check_layer, check_matrix_values

# warnings the model raises for every sub-AnnData of input genes: expected here, said once in the docs
_MODEL_NOISE = (
    r".*genes are absent from the AnnData and are treated as missing",
    r"this GexBERT has not been trained",
)


@contextmanager
def quiet_model():
    """Silence the warnings a model raises for every sub-AnnData of input genes (expected, documented once)."""
    with warnings.catch_warnings():
        for msg in _MODEL_NOISE:
            warnings.filterwarnings("ignore", message=msg, category=UserWarning)
        yield



def check_key_added(key_added) -> str:
    """Raise ``ValueError`` unless ``key_added`` can name ``.uns``/``.obs`` entries of an ``.h5ad`` file."""
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        raise ValueError(f"key_added must be a non-empty string without '/', got {key_added!r}")
    return key_added


def check_model(model, features: str):
    """Raise unless ``model`` is a GexBERT (or None where ``features`` needs none)."""
    from gexbert_sc.model import GexBERT

    if model is None:
        return None
    if not isinstance(model, GexBERT):
        raise TypeError(f"model must be a trained GexBERT or None, got {type(model).__name__}")
    return model


def check_expression(adata: AnnData, model, layer: str | None) -> str | None:
    """Check the expression values a prediction tool reads; returns the layer (the model's, with a model)."""
    if model is not None:
        if layer is not None and layer != model.layer:
            raise ValueError(
                f"layer={layer!r} but the model reads {'adata.X' if model.layer is None else repr(model.layer)}; "
                "leave layer=None to use the model's"
            )
        layer = model.layer
    check_layer(adata, layer)
    if not adata.var_names.is_unique:
        raise ValueError("adata.var_names has duplicated gene names; call adata.var_names_make_unique() first")
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise ValueError("adata.X is empty; pass layer= naming the layer with the expression values")
    check_matrix_values(X, "adata.X" if layer is None else f"adata.layers[{layer!r}]")
    return layer


def input_gene_pool(adata: AnnData, model) -> np.ndarray:
    """Genes the input genes are drawn from: ``adata``'s genes, those of the model's vocabulary with a model."""
    names = np.asarray(adata.var_names.astype(str))
    if model is None:
        return names
    known = np.isin(names, np.asarray(model.genes, dtype=str))
    if not known.any():
        raise ValueError(
            f"none of the {adata.n_vars} genes of adata is in the model's vocabulary of {len(model.genes)} genes; "
            "check that var_names hold the same kind of gene identifiers as the model's (model.genes)"
        )
    return names[known]


def draw_input_genes(input_genes, pool: np.ndarray, rng: np.random.Generator, with_model: bool = False) -> np.ndarray:
    """``input_genes`` random genes of ``pool`` (an int), or the given names, checked."""
    where = "adata's genes that the model knows" if with_model else "adata.var_names"
    if isinstance(input_genes, numbers.Integral) and not isinstance(input_genes, bool | np.bool_):
        k = int(input_genes)
        if not 1 <= k <= len(pool):
            raise ValueError(
                f"input_genes={k} but {len(pool)} gene(s) can be drawn ({where}); pass between 1 and that many"
            )
        return np.sort(rng.choice(pool, k, replace=False))
    if isinstance(input_genes, str) or not isinstance(input_genes, Sequence | np.ndarray | pd.Index):
        raise TypeError(f"input_genes must be an int (random genes) or a list of gene names, got {input_genes!r}")
    names = np.asarray(list(input_genes), dtype=str)
    if len(names) == 0:
        raise ValueError("input_genes is an empty list; pass gene names or a number of random genes")
    dup = pd.Index(names)[pd.Index(names).duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"input_genes repeats gene name(s) {dup[:5]}; list each gene once")
    unknown = [g for g in names if g not in set(pool)]
    if unknown:
        raise KeyError(
            f"{len(unknown)} of input_genes cannot be used, e.g. {unknown[:5]}: they are not among {where}"
        )
    return names


def dense_rows(X, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """Rows (and columns) of a dense, sparse or backed matrix as a float64 array (a copy)."""
    sub = X[rows] if cols is None else (X[rows][:, cols])
    if sp.issparse(sub):
        sub = sub.toarray()
    return np.array(sub, dtype=np.float64)


def repeat_seed(random_state: int, repeat: int) -> int:
    """The seed of repeat ``repeat`` of a run seeded with ``random_state`` (input genes, folds, model subsets)."""
    return int(np.random.SeedSequence([int(random_state), int(repeat)]).generate_state(1)[0])
