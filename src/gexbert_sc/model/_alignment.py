"""Gene alignment: where each of a model's genes sits in an AnnData."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GeneAlignment:
    """How an AnnData's genes map onto a model's gene vocabulary (by name).

    Get one with :meth:`gexbert_sc.GexBERT.align`. Tools use it to move between the model's gene
    order and the AnnData's.

    Attributes
    ----------
    genes
        The model's vocabulary, in the model's order.
    var_names
        The AnnData's gene names, in the AnnData's order.
    columns
        For each vocabulary gene, its column in the AnnData, or -1 where the AnnData lacks it.
    """

    genes: np.ndarray
    var_names: np.ndarray
    columns: np.ndarray

    @classmethod
    def of(cls, genes, var_names) -> GeneAlignment:
        """Align ``var_names`` (an AnnData's genes) to the vocabulary ``genes``."""
        import pandas as pd

        genes = np.asarray(genes, dtype=str)
        index = pd.Index(np.asarray(var_names, dtype=str))
        return cls(genes=genes, var_names=np.asarray(index), columns=index.get_indexer(genes))

    @property
    def present(self) -> np.ndarray:
        """Boolean mask over the vocabulary: True where the AnnData has the gene."""
        return self.columns >= 0

    @property
    def n_known(self) -> int:
        """AnnData genes that are in the vocabulary."""
        return int(self.present.sum())

    @property
    def n_unknown(self) -> int:
        """AnnData genes that are not in the vocabulary (left out)."""
        return len(self.var_names) - self.n_known

    @property
    def n_absent(self) -> int:
        """Vocabulary genes that the AnnData lacks (treated as missing)."""
        return len(self.genes) - self.n_known

    @property
    def is_identity(self) -> bool:
        """True when the AnnData has exactly the vocabulary, in the same order."""
        return len(self.columns) == len(self.var_names) and bool(np.array_equal(self.columns, np.arange(len(self.columns))))

    def to_vocab(self, block: np.ndarray) -> np.ndarray:
        """Columns of an AnnData block ``(n, n_vars)`` in vocabulary order ``(n, n_genes)``, NaN where absent."""
        if self.is_identity:
            return block
        out = np.full((block.shape[0], len(self.genes)), np.nan, dtype=np.float32)
        have = self.present
        out[:, have] = block[:, self.columns[have]]
        return out

    def to_var(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write vocabulary-ordered ``values`` ``(n, n_genes)`` into ``out`` ``(n, n_vars)`` (AnnData order) at the genes both have; other columns of ``out`` are left as they are."""
        have = self.present
        out[:, self.columns[have]] = values[:, have]
        return out

    def describe(self) -> str:
        """One sentence on what is left out and what is missing."""
        return (
            f"{self.n_unknown} of the AnnData's {len(self.var_names)} genes are not in the model's vocabulary and are "
            f"left out; {self.n_absent} of the model's {len(self.genes)} genes are absent from the AnnData and are "
            "treated as missing"
        )


def vocabulary_indices(genes: np.ndarray, names) -> np.ndarray:
    """Indices of gene ``names`` in the vocabulary ``genes``; ``KeyError`` naming the unknown ones."""
    if isinstance(names, str):
        names = [names]
    names = np.asarray(list(names), dtype=str)
    lookup = {g: i for i, g in enumerate(genes)}
    unknown = [g for g in names if g not in lookup]
    if unknown:
        raise KeyError(
            f"{len(unknown)} requested gene(s) are not in the model's vocabulary, e.g. {unknown[:5]}; "
            "the model can only restore genes it was trained on (see model.genes)"
        )
    return np.array([lookup[g] for g in names], dtype=np.int64)
