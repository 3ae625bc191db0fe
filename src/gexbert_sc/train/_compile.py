"""``torch.compile`` for the training step, falling back to eager mode where it is unavailable or fails."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

logger = logging.getLogger("gexbert_sc")


def compile_network(net: torch.nn.Module) -> torch.nn.Module | None:
    """``torch.compile(net)``, or None (with a logged warning) where this torch cannot compile.

    Compilation itself happens at the first call; :class:`CompiledStep` catches failures there.
    """
    try:
        return torch.compile(net)
    except Exception as err:  # noqa: BLE001 (any failure means: run eagerly)
        logger.warning("torch.compile is unavailable (%s: %s); training runs in eager mode", type(err).__name__, err)
        return None


class CompiledStep:
    """Runs a training step with a compiled network and, if that fails, once more with the eager one.

    ``step(net)`` runs one whole step (it zeroes the gradients first, so a failed attempt leaves no
    trace). The first failure of the compiled network (no C compiler on CPU, an unsupported operation,
    a backend error) logs a warning and switches to ``eager`` for the rest of training; an error of the
    eager network itself propagates.

    Parameters
    ----------
    eager
        The network as it runs without compilation (possibly DDP-wrapped).
    compiled
        ``torch.compile(eager)``, or None to run eagerly from the start.
    """

    def __init__(self, eager: torch.nn.Module, compiled: torch.nn.Module | None):
        self.eager, self.compiled = eager, compiled

    @property
    def is_compiled(self) -> bool:
        """Whether steps still run with the compiled network."""
        return self.compiled is not None

    @property
    def net(self) -> torch.nn.Module:
        """The network steps run with now."""
        return self.eager if self.compiled is None else self.compiled

    def __call__(self, step: Callable[[torch.nn.Module], torch.Tensor]) -> torch.Tensor:
        """``step(net)`` with the compiled network, or with the eager one after a failure."""
        if self.compiled is None:
            return step(self.eager)
        try:
            return step(self.compiled)
        except Exception as err:  # noqa: BLE001 (any failure of the compiled path means: run eagerly)
            logger.warning("torch.compile failed (%s: %s); training goes on in eager mode",
                           type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            self.compiled = None
            return step(self.eager)
