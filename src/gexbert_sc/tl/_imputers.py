"""Baseline imputers on plain matrices (numpy / scikit-learn, no AnnData).

Used to compare GexBERT's imputation against standard methods on the same missing entries; their
intervals come from :mod:`gexbert_sc.tl._conformal`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger("gexbert_sc")

BASELINE_METHODS = ("zero", "mean", "knn", "softimpute", "mice")

_DEFAULT_MAX_ITER = {"mice": 5, "softimpute": 100}


def _as_matrix(X, where: str = "X") -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, raising clear errors for what cannot be imputed."""
    if sp.issparse(X):
        raise TypeError(
            f"{where} is a scipy sparse matrix; missing values must be NaN in a dense array, so pass X.toarray()"
        )
    A = np.asarray(X)
    if A.ndim != 2:
        raise ValueError(f"{where} must be 2-D (samples x genes), got shape {A.shape}")
    if not np.issubdtype(A.dtype, np.number) or np.issubdtype(A.dtype, np.complexfloating):
        raise TypeError(f"{where} must be numeric, got dtype {A.dtype}; convert it with .astype(np.float32)")
    A = A.astype(np.float64)
    n_inf = int(np.isinf(A).sum())
    if n_inf:
        raise ValueError(f"{where} has {n_inf} infinite value(s); replace them with np.nan to have them imputed")
    return A


def _check_no_empty_columns(missing: np.ndarray, feature_names: Sequence[str] | None) -> None:
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        if feature_names is not None:
            examples = [str(feature_names[i]) for i in empty[:5]]
        else:
            examples = empty[:5].tolist()
        raise ValueError(
            f"{empty.size} column(s) have no observed value, so nothing can be imputed for them "
            f"(first: {examples}); drop these genes before imputing"
        )


def _as_seed(random_state) -> int | None:
    """An int seed for scikit-learn from an int, None or numpy Generator."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return random_state


def impute_matrix(
    X,
    method: str,
    *,
    random_state: int | np.random.Generator | None = 0,
    n_neighbors: int = 10,
    n_nearest_features: int = 64,
    max_iter: int | None = None,
    feature_names: Sequence[str] | None = None,
    **kw,
) -> np.ndarray:
    """Fill the NaN entries of a samples x genes matrix with a baseline method.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_genes)
        Dense samples x genes matrix (array-like) with NaN marking missing entries. Scipy sparse
        input is refused (pass ``X.toarray()``).
    method : {"zero", "mean", "knn", "softimpute", "mice"}
        One of :data:`BASELINE_METHODS`:

        ``"zero"``
            Zero, in the input's units.
        ``"mean"``
            The column (gene) mean of the observed values.
        ``"knn"``
            :class:`sklearn.impute.KNNImputer` with ``n_neighbors`` (mean of the gene over the
            nearest samples by NaN-aware Euclidean distance).
        ``"softimpute"``
            Nuclear-norm regularised low-rank completion (Mazumder, Hastie & Tibshirani 2010),
            implemented here; see Notes.
        ``"mice"``
            :class:`sklearn.impute.IterativeImputer` (chained Bayesian ridge regressions), each
            gene regressed on its ``n_nearest_features`` most correlated genes, so that it finishes
            on thousands of genes.
    random_state : int, numpy.random.Generator or None, default 0
        Seed (int, None or :class:`numpy.random.Generator`) for ``"softimpute"`` and ``"mice"``.
    n_neighbors : int, default 10
        Neighbours of ``"knn"``.
    n_nearest_features : int, default 64
        Genes used to predict each gene in ``"mice"`` (capped at the number of genes minus one).
    max_iter : int, optional
        Iterations. ``"mice"``: rounds over all genes (default 5; each round fits one regression
        per gene with missing values, about 3-4 s per round for 500 samples x 2,000 genes on one
        core; on low-rank test data the error stops changing after 2-3 rounds, so 5 rounds
        usually end before scikit-learn's convergence criterion, which is then logged, not
        warned). ``"softimpute"``: the most SVD iterations per value of the penalty (default 100).
        Ignored by the other methods.
    feature_names : sequence of str, optional
        Gene names, used only to name columns in error messages.
    **kw : dict
        Further keywords of the underlying method: of :class:`~sklearn.impute.KNNImputer` for
        ``"knn"``, of :class:`~sklearn.impute.IterativeImputer` for ``"mice"``; for
        ``"softimpute"``: ``tol`` (1e-4; stop when the squared relative change of the fit is
        below it), ``holdout`` (0.1; fraction of observed entries held out to choose the
        penalty), ``n_lambdas`` (12), ``lambda_fractions`` (explicit penalties as fractions of the
        largest singular value; overrides ``n_lambdas``), ``patience`` (2) and ``max_rank`` (None:
        no cap). ``"zero"`` and ``"mean"`` take none.

    Returns
    -------
    numpy.ndarray
        Float32 copy of ``X`` where only the NaN entries are filled; every observed entry equals
        ``X`` cast to float32 exactly.

    Raises
    ------
    ValueError
        Unknown ``method`` (the message lists the valid ones), columns with no observed value
        (count and first examples), infinite values, non-2-D input, or keywords a method does not
        take.
    TypeError
        Sparse or non-numeric input.

    Notes
    -----
    SoftImpute: each gene is standardised by the mean and standard deviation of its observed
    values. With ``Z`` the current low-rank fit, each iteration fills the missing entries with
    ``Z``, takes the SVD ``U diag(s) V'`` of the filled matrix and sets
    ``Z = U diag(max(s - lambda, 0)) V'`` (soft-thresholded singular values), until
    ``||Z_new - Z||_F^2 / ||Z||_F^2 < tol`` or ``max_iter``. The penalty ``lambda`` is chosen on
    a random ``holdout`` fraction of the observed entries: a decreasing grid of
    ``lambda = f * s_max`` (``s_max`` the largest singular value of the zero-filled standardised
    training matrix; by default ``f`` runs geometrically from 0.9 to 0.005 over ``n_lambdas``
    values) is fitted with warm starts from large to small ``lambda``, stopping once the held-out
    RMSE has failed to improve ``patience`` times in a row; the ``lambda`` with the lowest held-out
    RMSE is refitted on all observed entries (warm-started) and the result returned in input
    units. Matrices whose smaller side exceeds 300 use a randomized truncated SVD whose rank grows
    when every kept singular value survives the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 2.0], [np.nan, 4.0], [5.0, np.nan]])
    >>> impute_matrix(X, "mean")
    array([[1., 2.],
           [3., 4.],
           [5., 3.]], dtype=float32)
    """
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(BASELINE_METHODS)}")
    A = _as_matrix(X)
    missing = np.isnan(A)
    out = A.astype(np.float32)
    if not missing.any():
        return out
    _check_no_empty_columns(missing, feature_names)
    if method in ("zero", "mean") and kw:
        raise ValueError(f"method {method!r} takes no further keywords, got {sorted(kw)}")
    if max_iter is None:
        max_iter = _DEFAULT_MAX_ITER.get(method, 0)
    elif method in _DEFAULT_MAX_ITER and (isinstance(max_iter, bool) or int(max_iter) < 1):
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")

    if method == "zero":
        filled = np.zeros_like(A)
    elif method == "mean":
        filled = np.broadcast_to(np.nanmean(A, axis=0), A.shape)
    elif method == "knn":
        from sklearn.impute import KNNImputer

        filled = KNNImputer(n_neighbors=n_neighbors, **kw).fit_transform(A)
    elif method == "mice":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer
        from threadpoolctl import threadpool_limits

        params = {
            "max_iter": int(max_iter),
            "n_nearest_features": max(1, min(int(n_nearest_features), A.shape[1] - 1)),
            "random_state": _as_seed(random_state),
            "skip_complete": True,
            **kw,
        }
        # thousands of small regressions: multi-threaded BLAS only adds contention here
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("always", ConvergenceWarning)
            filled = IterativeImputer(**params).fit_transform(A)
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                logger.info("mice: %s", w.message)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    else:
        filled = _softimpute(A, missing, max_iter=int(max_iter), random_state=random_state, **kw)

    out[missing] = np.asarray(filled, dtype=np.float64)[missing].astype(np.float32)
    return out


def _svd_soft(A: np.ndarray, lam: float, k: int, seed: int, max_rank: int | None) -> tuple[np.ndarray, int]:
    """Soft-thresholded SVD of ``A`` at ``lam``; a randomized rank-``k`` SVD on large matrices."""
    m = min(A.shape)
    if m <= 300 or k >= m:
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
    else:
        from sklearn.utils.extmath import randomized_svd

        U, s, Vt = randomized_svd(A, n_components=k, n_oversamples=10, n_iter=2, random_state=seed)
    s = s - lam
    r = int((s > 0).sum())
    if max_rank is not None:
        r = min(r, max_rank)
    return (U[:, :r] * s[:r]) @ Vt[:r], r


def _soft_fit(Zobs, known, lam, Z, k, *, tol, max_iter, max_rank, seed):
    """Iterate SoftImpute at one penalty from the warm start ``Z``; returns (fit, next rank)."""
    m = min(Zobs.shape) if max_rank is None else min(min(Zobs.shape), max_rank)
    for _ in range(max_iter):
        Z_new, r = _svd_soft(np.where(known, Zobs, Z), lam, k, seed, max_rank)
        if r >= k:  # every computed component survived: ask for more next time
            k = min(2 * k, m)
        denom = float((Z * Z).sum())
        change = float(((Z_new - Z) ** 2).sum())
        delta = change / denom if denom > 0 else (0.0 if change == 0 else np.inf)
        Z = Z_new
        if delta < tol:
            break
    return Z, k


def _softimpute(
    A: np.ndarray,
    missing: np.ndarray,
    *,
    max_iter: int,
    random_state=0,
    tol: float = 1e-4,
    holdout: float = 0.1,
    n_lambdas: int = 12,
    lambda_fractions: Sequence[float] | None = None,
    patience: int = 2,
    max_rank: int | None = None,
) -> np.ndarray:
    """SoftImpute with the penalty chosen on held-out observed entries (see :func:`impute_matrix`)."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout!r}")
    rng = np.random.default_rng(random_state)
    seed = int(rng.integers(2**31 - 1))
    known = ~missing
    mu = np.nanmean(A, axis=0)
    sd = np.nanstd(A, axis=0)
    sd[~(sd > 0)] = 1.0
    Zobs = np.where(known, (A - mu) / sd, 0.0)

    obs_idx = np.flatnonzero(known)
    n_hold = max(1, int(round(holdout * obs_idx.size)))
    hold = np.zeros(A.size, dtype=bool)
    hold[rng.choice(obs_idx, size=n_hold, replace=False)] = True
    hold = hold.reshape(A.shape)
    train = known & ~hold

    s_max = float(np.linalg.norm(np.where(train, Zobs, 0.0), ord=2)) if min(A.shape) <= 300 else None
    if s_max is None:
        from sklearn.utils.extmath import randomized_svd

        s_max = float(randomized_svd(np.where(train, Zobs, 0.0), 1, n_iter=4, random_state=seed)[1][0])
    if s_max == 0:  # every observed value equals its gene mean: nothing low-rank to fit
        return np.broadcast_to(mu, A.shape)
    fracs = np.geomspace(0.9, 0.005, n_lambdas) if lambda_fractions is None else np.sort(lambda_fractions)[::-1]
    lambdas = s_max * np.asarray(fracs, dtype=float)

    opts = {"tol": tol, "max_iter": max_iter, "max_rank": max_rank, "seed": seed}
    Z, k = np.zeros_like(Zobs), 8
    best = (np.inf, lambdas[0], Z, k)
    worse = 0
    for lam in lambdas:
        Z, k = _soft_fit(Zobs, train, lam, Z, k, **opts)
        err = math.sqrt(float(((Z[hold] - Zobs[hold]) ** 2).mean()))
        if err < best[0]:
            best, worse = (err, lam, Z, k), 0
        else:
            worse += 1
            if worse >= patience:
                break
    err, lam, Z, k = best
    Z, _ = _soft_fit(Zobs, known, lam, Z, k, **opts)
    logger.info(
        "softimpute: lambda = %.3g (%.3g x largest singular value), held-out RMSE %.3g (standardised)",
        lam,
        lam / s_max,
        err,
    )
    return Z * sd + mu
