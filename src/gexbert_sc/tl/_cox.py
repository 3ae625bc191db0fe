"""Univariate Cox models and Harrell's concordance index, vectorised over genes (numpy only).

Used by :func:`gexbert_sc.tl.anchor_genes` to score every gene as a one-covariate Cox
proportional-hazards model, as in the GexBERT paper's choice of anchor genes.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 1024  # genes fitted together: an (n_samples x _BLOCK) float64 array per intermediate
_MAX_STEP = 5.0  # cap on a Newton step, in units of 1 / (standard deviation of the gene)
_MAX_HALVINGS = 30


def _survival_inputs(time, event, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``time`` (finite floats) and ``event`` (0/1 or bool) to 1-D arrays."""
    time = np.asarray(time)
    event = np.asarray(event)
    if time.ndim != 1 or event.ndim != 1:
        raise ValueError(f"time and event must be 1-D, got shapes {time.shape} and {event.shape}")
    if not np.issubdtype(time.dtype, np.number) or np.issubdtype(time.dtype, np.complexfloating):
        raise TypeError(f"time must be numeric, got dtype {time.dtype}")
    time = time.astype(np.float64)
    if not np.isfinite(time).all():
        raise ValueError("time holds NaN or infinite values; drop those samples first")
    if event.dtype != np.bool_:
        if not np.issubdtype(event.dtype, np.number) or not np.isin(event, (0, 1)).all():
            raise ValueError("event must be bool or 0/1 (1 = event observed, 0 = censored)")
        event = event.astype(bool)
    if len(time) != len(event) or (n is not None and len(time) != n):
        raise ValueError(
            f"time ({len(time)}), event ({len(event)})"
            + ("" if n is None else f" and the samples ({n})")
            + " must have the same length"
        )
    return time, event


def _as_2d(a, name: str) -> tuple[np.ndarray, bool]:
    a = np.asarray(a)
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D (samples x genes), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    was_1d = a.ndim == 1
    return (a[:, None] if was_1d else a), was_1d


# ----------------------------------------------------------------------------------------------
# Cox proportional hazards, one covariate per gene


class _RiskSets:
    """Samples sorted by decreasing time, with the Breslow risk set of every distinct event time.

    ``rows[k]`` is the last sorted row whose time is >= the k-th distinct event time, so the
    cumulative sum over rows ``0..rows[k]`` runs over that time's whole risk set (all samples tied
    at it included); ``d[k]`` is the number of events at that time.
    """

    def __init__(self, time: np.ndarray, event: np.ndarray):
        self.order = np.argsort(-time, kind="stable")
        t = time[self.order]
        ev = event[self.order]
        ev_times, self.d = np.unique(t[ev], return_counts=True)
        # t is decreasing: the number of samples with time >= tau is the count of -t <= -tau
        self.rows = np.searchsorted(-t, -ev_times, side="right") - 1
        self.d = self.d.astype(np.float64)
        self.event_sorted = ev


def _cox_pass(xs: np.ndarray, b: np.ndarray, lam: np.ndarray, sum_ev: np.ndarray, rs: _RiskSets):
    """Penalised log-likelihood, score and information at ``b`` for every column of ``xs``."""
    eta = xs * b
    m = eta.max(axis=0)
    n, g = xs.shape
    a = np.empty((n, 3, g))
    np.exp(eta - m, out=a[:, 0])
    np.multiply(a[:, 0], xs, out=a[:, 1])
    np.multiply(a[:, 1], xs, out=a[:, 2])
    # cumulative sums over the samples (sorted by decreasing time): a loop over rows is several
    # times faster than np.cumsum(axis=0), whose inner loop strides across rows
    for i in range(1, n):
        a[i] += a[i - 1]
    s = a[rs.rows]
    s0 = s[:, 0]
    z1 = s[:, 1] / s0
    z2 = s[:, 2] / s0
    d = rs.d
    loglik = b * sum_ev - d @ np.log(s0) - d.sum() * m - 0.5 * lam * b * b
    score = sum_ev - d @ z1 - lam * b
    info = d @ (z2 - z1 * z1) + lam
    return loglik, score, info


def _newton_block(xs, lam, rs: _RiskSets, max_iter: int, tol: float):
    """Newton-Raphson with step halving for the columns of one block (standardised values)."""
    g = xs.shape[1]
    sum_ev = xs[rs.event_sorted].sum(axis=0)
    b = np.zeros(g)
    converged = np.zeros(g, dtype=bool)
    active = np.arange(g)
    x_act, lam_act, sev_act = xs, lam, sum_ev
    ll, sc, inf = _cox_pass(x_act, b, lam_act, sev_act, rs)
    for _ in range(max_iter):
        if active.size == 0:
            break
        b_act = b[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = np.where(inf > 0, sc / inf, 0.0)
        step = np.clip(newton, -_MAX_STEP, _MAX_STEP)
        b_new = b_act + step
        ll_new, sc_new, inf_new = _cox_pass(x_act, b_new, lam_act, sev_act, rs)
        # halve the step where the objective went down (beyond rounding) or the numbers broke down
        # (the information of a moved coefficient must stay positive and everything finite)
        for h in range(_MAX_HALVINGS + 1):
            bad = ~(ll_new >= ll - 1e-12 * np.abs(ll)) | ~np.isfinite(sc_new) | ((inf_new <= 0) & (step != 0))
            if not bad.any() or h == _MAX_HALVINGS:
                break
            step[bad] *= 0.5
            b_new[bad] = b_act[bad] + step[bad]
            ll_b, sc_b, inf_b = _cox_pass(x_act[:, bad], b_new[bad], lam_act[bad], sev_act[bad], rs)
            ll_new[bad], sc_new[bad], inf_new[bad] = ll_b, sc_b, inf_b
        # genes that found no better point stop where they were, reported as not converged: the
        # typical case is a gene that separates the samples without l2 (its beta grows until
        # exp() loses precision)
        b_new[bad] = b_act[bad]
        b[active] = b_new
        ok = (np.abs(newton) <= tol * np.maximum(1.0, np.abs(b_act))) & ~bad
        converged[active[ok]] = True
        done = ok | bad
        ll, sc, inf = ll_new[~done], sc_new[~done], inf_new[~done]
        if done.any():
            active = active[~done]
            x_act, lam_act, sev_act = x_act[:, ~done], lam_act[~done], sev_act[~done]
    return b, converged


def univariate_cox(
    X,
    time,
    event,
    *,
    l2: float = 0.0,
    max_iter: int = 50,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit one Cox proportional-hazards model per column of ``X``, all columns at once.

    For every column ``x`` (gene) this finds the coefficient ``beta`` maximising Breslow's partial
    log-likelihood minus ``0.5 * l2 * beta**2``::

        sum over events i of [ beta * x_i - log( sum over j with time_j >= time_i of exp(beta * x_j) ) ]

    Events tied at one time all share the same risk set (Breslow's handling of ties); censored
    samples tied with an event time are in its risk set. This is the objective of
    ``sksurv.linear_model.CoxPHSurvivalAnalysis(alpha=l2, ties="breslow")`` fitted on that column
    alone.

    Parameters
    ----------
    X
        Samples x genes (or a 1-D array: one gene), real numbers without NaN or infinities.
        Missing values must be handled by the caller, e.g. by filling each gene's NaNs with that
        gene's mean (:func:`gexbert_sc.tl.anchor_genes` does so).
    time
        Survival or censoring time of each sample, shape ``(n_samples,)``.
    event
        Whether the event was observed (True / 1) or the sample censored (False / 0).
    l2
        Ridge penalty on ``beta`` in the units of ``X`` (sksurv's ``alpha``). Keeps ``beta``
        finite when a gene separates the samples perfectly (monotone likelihood).
    max_iter
        Maximum number of Newton-Raphson iterations.
    tol
        A gene has converged when its Newton step is at most ``tol * max(1, |beta|)`` (on the
        standardised scale).

    Returns
    -------
    beta
        Coefficient of each gene, shape ``(n_genes,)`` (a float for 1-D ``X``); 0 for constant genes.
    converged
        Whether each gene's fit converged within ``max_iter`` iterations (constant genes: True).
        Without ``l2`` a gene that separates the samples has no finite maximiser: its ``beta`` keeps
        growing and it is reported as not converged.

    Notes
    -----
    The samples are sorted by time once; for each Newton iteration the risk-set sums
    ``sum exp(b x)``, ``sum x exp(b x)`` and ``sum x^2 exp(b x)`` of all genes are reverse cumulative
    sums over the sorted samples, read off at the last sample of each distinct event time. Each gene
    is centred and scaled to unit standard deviation for the fit (the penalty rescaled accordingly)
    and its coefficient un-scaled at the end. Steps are capped and halved until the penalised
    log-likelihood does not decrease.

    """
    X, was_1d = _as_2d(X, "X")
    time, event = _survival_inputs(time, event, X.shape[0])
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    n, g = X.shape
    beta = np.zeros(g)
    converged = np.ones(g, dtype=bool)
    if n == 0 or not event.any():
        # no event: the partial likelihood is constant; beta = 0 is its (penalised) maximiser
        return (float(beta[0]), bool(converged[0])) if was_1d else (beta, converged)
    rs = _RiskSets(time, event)
    for start in range(0, g, _BLOCK):
        sl = slice(start, min(start + _BLOCK, g))
        xb = np.asarray(X[rs.order, sl], dtype=np.float64)
        if not np.isfinite(xb).all():
            raise ValueError(
                "X holds NaN or infinite values; fill them first (e.g. each gene's NaNs with that "
                "gene's mean: X = np.where(np.isnan(X), np.nanmean(X, axis=0), X))"
            )
        mu = xb.mean(axis=0)
        xb -= mu
        sd = np.sqrt((xb * xb).mean(axis=0))
        scale = np.maximum(np.abs(mu), sd)
        varies = sd > 1e-12 * np.where(scale > 0, scale, 1.0)
        if not varies.any():
            continue
        idx = np.arange(sl.start, sl.stop)[varies]
        xs = xb[:, varies] / sd[varies]
        lam = l2 / sd[varies] ** 2
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            b, conv = _newton_block(np.ascontiguousarray(xs), lam, rs, max_iter, tol)
        beta[idx] = b / sd[varies]
        converged[idx] = conv
    if was_1d:
        return float(beta[0]), bool(converged[0])
    return beta, converged


# ----------------------------------------------------------------------------------------------
# Harrell's concordance index


def _tolerance_bounds(s: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the tied risks, for rows sorted in increasing order (genes x samples).

    ``lo[g, k]`` is the number of entries ``p`` of row ``g`` with ``s[g, k] - s[g, p] > tol`` and
    ``hi[g, k]`` the number with ``s[g, p] - s[g, k] <= tol``, so entries ``lo:hi`` are the ones
    tied with entry ``k``. Runs of equal values are found first; runs within ``tol`` of the next
    one are then joined a run at a time, only for the entries concerned. Differences are compared
    with ``tol`` as sksurv does.
    """
    g, n = s.shape
    idx = np.arange(n)
    new_run = np.ones((g, n), dtype=bool)
    new_run[:, 1:] = s[:, 1:] != s[:, :-1]
    start = np.maximum.accumulate(np.where(new_run, idx, 0), axis=1)
    last = np.ones((g, n), dtype=bool)
    last[:, :-1] = new_run[:, 1:]
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[:, ::-1], axis=1)[:, ::-1] + 1
    lo, hi = start.copy(), end.copy()
    if n < 2:
        return lo, hi
    # runs whose gap to the previous run is within tol: only their members can extend
    close = np.zeros((g, n), dtype=bool)
    close[:, 1:] = new_run[:, 1:] & (s[:, 1:] - s[:, :-1] <= tol)
    if not close.any():
        return lo, hi
    r, k = np.nonzero(np.take_along_axis(close, start, axis=1))
    while r.size:  # extend lo downwards
        b = lo[r, k]
        near = s[r, k] - s[r, b - 1] <= tol
        r, k, b = r[near], k[near], b[near]
        lo[r, k] = start[r, b - 1]
        more = lo[r, k] > 0
        r, k = r[more], k[more]
    close_next = np.zeros((g, n), dtype=bool)  # the run after this one starts within tol
    close_next[:, :-1] = close[:, 1:]
    r, k = np.nonzero(np.take_along_axis(close_next, end - 1, axis=1))
    while r.size:  # extend hi upwards
        b = hi[r, k]
        near = s[r, b] - s[r, k] <= tol
        r, k, b = r[near], k[near], b[near]
        hi[r, k] = end[r, b]
        more = hi[r, k] < n
        r, k = r[more], k[more]
    return lo, hi


def concordance_index(risk, time, event, *, tied_tol: float = 1e-8) -> np.ndarray:
    """Harrell's concordance index of every column of ``risk``, computed together.

    Defined exactly as :func:`sksurv.metrics.concordance_index_censored`: a pair ``(i, j)`` is
    comparable when sample ``i`` had an event and either ``time_i < time_j``, or the two times are
    equal and ``j`` was censored. Pairs whose times are equal and that both had an event are *not*
    comparable. A comparable pair counts 1 when ``risk_i > risk_j``, 0.5 when
    ``|risk_i - risk_j| <= tied_tol`` and 0 otherwise; C is the total over the number of
    comparable pairs.

    Parameters
    ----------
    risk
        Samples x columns (or 1-D) of finite risk scores, higher meaning earlier events.
    time
        Survival or censoring time of each sample.
    event
        Whether each sample had the event (True / 1) or was censored (False / 0).
    tied_tol
        Absolute tolerance under which two risks count as tied (sksurv's ``tied_tol``).

    Returns
    -------
    C-index of each column, shape ``(n_columns,)`` (0-d for 1-D ``risk``); NaN where there is no
    comparable pair (sksurv raises an error instead).

    Notes
    -----
    Each column's risks are sorted once (O(n log n)). The samples are then visited by decreasing
    time, all columns together, and per column a bit set over the ranks of the risks (64 ranks to
    a machine word) records the samples already visited, i.e. those with later times. At each
    distinct event time, the visited samples whose risk lies below ``risk_i - tied_tol``, or within
    the tolerance, are counted by popcounts: O(n / 64) word operations per column and event time.
    The Python loop has one step per sample whatever the number of columns.

    """
    risk, was_1d = _as_2d(risk, "risk")
    time, event = _survival_inputs(time, event, risk.shape[0])
    if not tied_tol >= 0:
        raise ValueError(f"tied_tol must be >= 0, got {tied_tol}")
    risk_t = np.ascontiguousarray(risk.T, dtype=np.float64)
    if not np.isfinite(risk_t).all():
        raise ValueError("risk holds NaN or infinite values")
    g, n = risk_t.shape
    out = np.full(g, np.nan)
    if n >= 2 and event.any() and g > 0:
        out = _concordance(risk_t, time, event, tied_tol)
    return out[0] if was_1d else out


def _concordance(risk_t: np.ndarray, time: np.ndarray, event: np.ndarray, tol: float) -> np.ndarray:
    """Harrell's C of each row of ``risk_t`` (genes x samples), see :func:`concordance_index`."""
    g, n = risk_t.shape
    order = np.argsort(risk_t, axis=1, kind="stable")
    s = np.take_along_axis(risk_t, order, axis=1)
    lo_s, hi_s = _tolerance_bounds(s, tol)
    # per sample (columns in sample order): the rank of its risk and its tie bounds
    rank = np.empty((g, n), dtype=np.int64)
    np.put_along_axis(rank, order, np.arange(n), axis=1)
    lo = np.empty_like(rank)
    hi = np.empty_like(rank)
    np.put_along_axis(lo, order, lo_s, axis=1)
    np.put_along_axis(hi, order, hi_s, axis=1)
    rank, lo, hi = (np.ascontiguousarray(a.T) for a in (rank, lo, hi))  # samples x genes
    # the samples visited so far, as one bit set over the ranks per gene (64 ranks a word)
    n_words = (n >> 6) + 1
    bits = np.zeros(g * n_words, dtype=np.uint64)
    base = np.arange(g) * n_words
    one = np.uint64(1)

    def insert(j: int) -> None:
        r = rank[j]
        bits[base + (r >> 6)] |= one << (r & 63).astype(np.uint64)

    def below(q: np.ndarray) -> np.ndarray:
        # per gene: how many visited samples have a rank < q (queries stacked in rows)
        words = bits.reshape(g, n_words)
        full = np.zeros((g, n_words), dtype=np.int64)
        np.cumsum(np.bitwise_count(words[:, :-1]), axis=1, out=full[:, 1:])
        w = q >> 6
        partial = bits[base + w] & ((one << (q & 63).astype(np.uint64)) - one)
        return np.take_along_axis(full, w.T, axis=1).T + np.bitwise_count(partial)

    utimes, inv = np.unique(time, return_inverse=True)
    by_time = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[by_time], np.arange(len(utimes) + 1))
    num = np.zeros(g)
    denom = 0
    visited = 0
    for t in range(len(utimes) - 1, -1, -1):  # decreasing time
        members = by_time[bounds[t] : bounds[t + 1]]
        ev = members[event[members]]
        for j in members[~event[members]]:  # censored at this time: comparable with its events
            insert(j)
            visited += 1
        if ev.size:
            counts = below(np.concatenate([lo[ev], hi[ev]]))
            num += 0.5 * counts.sum(axis=0)  # concordant + half the ties = (lo + hi) / 2
            denom += visited * ev.size
            for i in ev:
                insert(i)
            visited += ev.size
    return num / denom if denom > 0 else np.full(g, np.nan)


# ----------------------------------------------------------------------------------------------
# cross-validation


def cv_concordance(
    X,
    time,
    event,
    *,
    n_folds: int = 5,
    random_state: int = 0,
    l2: float = 1e-3,
    max_iter: int = 50,
) -> np.ndarray:
    """Cross-validated C-index of a univariate Cox model for every column of ``X``.

    The samples are split into ``n_folds`` folds stratified by ``event``
    (:class:`sklearn.model_selection.StratifiedKFold`, shuffled, seeded by ``random_state``). For
    each fold, every gene's Cox model is fitted on the other folds (:func:`univariate_cox`) and the
    held-out samples' risks ``x_test * beta`` are scored with :func:`concordance_index`.

    Parameters
    ----------
    X
        Samples x genes without NaN (fill missing values first, e.g. with each gene's mean).
    time
        Survival or censoring time of each sample.
    event
        Whether each sample had the event (True / 1) or was censored (False / 0).
    n_folds
        Number of folds (at least 2).
    random_state
        Seeds the shuffling of the folds.
    l2
        Ridge penalty of the Cox fits (see :func:`univariate_cox`). It keeps coefficients finite
        for genes that separate a small training set; it never changes the sign of a univariate
        coefficient, and so leaves the held-out C-index unchanged except through ``tied_tol``.
    max_iter
        Maximum Newton-Raphson iterations per fit.

    Returns
    -------
    Mean over folds of the held-out C-index, shape ``(n_genes,)``. Folds without a comparable pair
    (e.g. no event in the held-out fold) are left out of the mean; NaN if no fold had one. A value
    below 0.5 means the direction learnt on the training folds was reversed on the held-out ones; it
    is kept as it is (not folded to ``1 - C``). A constant gene gets beta 0, all its risks tie, and
    it scores 0.5.

    """
    from sklearn.model_selection import StratifiedKFold

    X, _ = _as_2d(X, "X")
    time, event = _survival_inputs(time, event, X.shape[0])
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds}")
    if X.shape[0] < n_folds:
        raise ValueError(f"{X.shape[0]} samples cannot be split into {n_folds} folds; lower n_folds")
    folds = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=random_state)
    total = np.zeros(X.shape[1])
    count = np.zeros(X.shape[1])
    for train, test in folds.split(np.zeros(len(event)), event):
        beta, _ = univariate_cox(X[train], time[train], event[train], l2=l2, max_iter=max_iter)
        c = concordance_index(X[test] * beta, time[test], event[test])
        ok = ~np.isnan(c)
        total[ok] += c[ok]
        count[ok] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
