"""The AnnData keys each command writes, from the ``key_added`` defaults of the Python functions."""

from __future__ import annotations

#: Per command: the keys written, as ``(slot, name, note)``; ``{key}`` in the name is the ``key_added``
#: prefix. The layouts follow the Returns sections of the tl functions (docs/keys.md).
TEMPLATES: dict[str, list[tuple[str, str, str]]] = {
    "embed": [("obsm", "X_{key}", "the sample embeddings"), ("uns", "{key}", "params, history, metrics"),
              ("obsm", "X_{key}_umap", "with --umap"), ("uns", "X_{key}_umap", "with --umap"),
              ("obsp", "{key}_neighbors_distances", "with --umap"),
              ("obsp", "{key}_neighbors_connectivities", "with --umap"), ("uns", "{key}_neighbors", "with --umap")],
    "impute": [("layers", "{key}", "the completed matrix"), ("layers", "{key}_sd", "with --interval"),
               ("layers", "{key}_lower", "with --interval"), ("layers", "{key}_upper", "with --interval"),
               ("uns", "{key}", "params, n_filled, calibration")],
    "restore": [("layers", "{key}", "targets the input has"), ("obsm", "{key}", "targets it lacks"),
                ("layers/obsm", "{key}_sd", "with --interval and --reference"),
                ("layers/obsm", "{key}_lower", "with --interval and --reference"),
                ("layers/obsm", "{key}_upper", "with --interval and --reference"),
                ("uns", "{key}", "params, targets, calibration")],
    "survival": [("obs", "{key}_risk", "out-of-fold risk"), ("uns", "{key}", "c_index, mean, sd, groups, params")],
    "classify": [("obs", "{key}_pred", "predicted class"), ("obsm", "{key}_proba", "class probabilities"),
                 ("uns", "{key}", "accuracy, macro_f1, confusion_matrix, params")],
    "attention": [("var", "{key}", "overall score"), ("var", "{key}_n", "occurrences"),
                  ("varm", "{key}", "score per group"), ("varm", "{key}_mean_z", "mean per group"),
                  ("varm", "{key}_sd_z", "sd per group"), ("uns", "{key}", "params, groups, names, scores")],
}

#: The Python function whose ``key_added`` default each command uses (``embed``: :func:`tl.fit`'s, the
#: suffix of ``X_<key>``).
FUNCTIONS = {"embed": "fit", "impute": "impute", "restore": "restore", "survival": "survival",
             "classify": "classify", "attention": "attention"}


def default_key(command: str, method: str | None = None) -> str:
    """The ``key_added`` a command uses when ``--key-added`` is not given.

    Taken from the signature of the tl function; where its default is None (``impute``, ``restore``), the
    function's documented rule: ``gexbert_imputed`` / ``<method>_imputed`` and ``<method>_restored``.

    Parameters
    ----------
    command
        A command of :data:`TEMPLATES`.
    method
        The ``--method`` of ``impute`` or ``restore`` (default: the function's default method).
    """
    import inspect

    from gexbert_sc import tl

    params = inspect.signature(getattr(tl, FUNCTIONS[command])).parameters
    default = params["key_added"].default
    if isinstance(default, str):
        return default
    method = method or params["method"].default
    if command == "impute":
        return "gexbert_imputed" if method == "gexbert" else f"{method}_imputed"
    return f"{method}_restored"


def written_keys(command: str, key: str | None = None, method: str | None = None) -> list[str]:
    """Lines ``.slot['name']`` naming the keys ``command`` writes with ``key_added=key`` (default: its default)."""
    key = key or default_key(command, method)
    return [f".{slot}[{name.format(key=key)!r}]  ({note})" for slot, name, note in TEMPLATES[command]]
