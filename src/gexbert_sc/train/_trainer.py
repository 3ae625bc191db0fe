"""The two-phase pretraining loop (pure torch: no AnnData)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gexbert_sc.module import GexBERTModule

from ._batches import effective_input_size, host_batches, read_batch, to_device
from ._checkpoint import CHECKPOINT_FILE, CheckpointError, load_checkpoint, save_checkpoint, unusable
from ._compile import CompiledStep, compile_network
from ._distributed import all_reduce_sum, dist_info, wrap
from ._sampling import draw_input_size
from ._schedule import EarlyStopping, lr_factor, scaffold_factor
from ._seeding import derive_seed
from ._step import make_optimizer, micro_batch_size, run_step
from ._validation import RowFetcher, ValidationSet, evaluate

logger = logging.getLogger("gexbert_sc")


@dataclass
class TrainPlan:
    """What one :meth:`Trainer.fit` does.

    ``phase_epochs`` gives the maximum epochs of phase 1 (restore the input genes) and phase 2 (restore other
    genes); each phase stops early once its validation loss has not improved by ``min_delta`` for
    ``patience`` epochs, and keeps its best weights. An epoch is one pass over the training samples in random
    order, or, when that is fewer than ``min_steps_per_epoch`` batches, as many shuffled passes as make up
    that many batches (each visit of a sample draws other genes). Each sample's input genes are drawn among
    its observed genes (:func:`~gexbert_sc.train.sample_observed_genes`). With ``n_input_min``, each batch
    draws its number of input genes log-uniformly from ``[n_input_min, n_input]``. ``micro_batch`` splits
    each batch into passes whose gradients are summed (the same step); None picks it with
    :func:`~gexbert_sc.train.micro_batch_size`. ``compile`` runs the steps with ``torch.compile`` (eager
    mode, with a logged warning, where that is unavailable or fails). ``prefetch`` reads the next batch in a
    background thread during each step; None: on CUDA only.
    """

    n_input: int
    n_target: int
    batch_size: int
    lr: float
    weight_decay: float
    phase_epochs: tuple[int, int]
    patience: int
    min_delta: float = 1e-4
    warmup_steps: int = 50
    scaffold_epochs: int = 0
    grad_clip: float = 1.0
    min_steps_per_epoch: int = 25
    micro_batch: int | None = None
    n_input_min: int | None = None
    compile: bool = False
    prefetch: bool | None = None

    @classmethod
    def from_config(cls, config, phase_epochs: tuple[int, int]) -> TrainPlan:
        """The plan from a config's training settings (any object with the attributes of the same names)."""
        names = {f.name for f in fields(cls)} - {"phase_epochs"}
        return cls(phase_epochs=tuple(phase_epochs), **{n: getattr(config, n) for n in names if hasattr(config, n)})


def device_generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded generator on ``device``, for the gene draws made where they are used."""
    return torch.Generator(device=device).manual_seed(seed)


class Trainer:
    """Pretrains a :class:`~gexbert_sc.module.GexBERTModule` in the paper's two phases with AdamW.

    Parameters
    ----------
    module
        The network, already on ``device``.
    fetch
        ``fetch(rows)`` returns the standardised values of those rows, float ``(len(rows), n_genes)``, NaN
        where missing.
    n_genes
        Vocabulary size.
    plan
        Sizes, optimiser settings and epoch budget.
    device
        Where to compute.
    random_state
        Seeds the shuffling and gene sampling (its ``"train"`` stream) and the validation subsets.
    progress
        Show a tqdm progress bar.
    history
        A list to append one record per epoch to (a new one if None). Epoch numbers continue from its length,
        so a model that trains again extends its history.
    checkpoint_dir
        Write ``checkpoint.pt`` there every ``checkpoint_every`` epochs and at the end of each phase
        (atomically: temporary file, then rename).
    checkpoint_every
        Epochs between checkpoints.
    fingerprint
        A string identifying the data and model set-up; resuming from a checkpoint with another fingerprint is
        refused.

    Notes
    -----
    Inside a torch.distributed group of several processes, each process draws the genes of the whole batch
    (same generator) and keeps its share of the rows; gradients are averaged by DDP, so together they compute
    the single-process step. Only rank 0 writes checkpoints.
    """

    def __init__(
        self,
        module: GexBERTModule,
        fetch: RowFetcher,
        n_genes: int,
        plan: TrainPlan,
        *,
        device: torch.device,
        random_state: int = 0,
        progress: bool = True,
        history: list[dict] | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        fingerprint: str = "",
    ):
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.module, self.fetch, self.n_genes, self.plan = module, fetch, n_genes, plan
        self.device = device
        self.random_state = int(random_state)
        self.rank, self.world = dist_info()
        self.progress = progress and self.rank == 0
        self.history = [] if history is None else history
        self.ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.fingerprint = fingerprint
        self.start_epoch = len(self.history)
        seed = derive_seed(random_state, "train", self.start_epoch)
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        # the genes are drawn where they are used: with the CPU generator on CPU, else with one on the device
        self.key_gen = self.gen if device.type == "cpu" else device_generator(
            device, derive_seed(random_state, "train_keys", self.start_epoch))
        self.pin = device.type == "cuda" and torch.cuda.is_available()
        self.prefetch = device.type == "cuda" if plan.prefetch is None else bool(plan.prefetch)
        self.opt = make_optimizer(module, plan.lr, plan.weight_decay)
        self.net = wrap(module, device)
        self.steps = CompiledStep(self.net, compile_network(self.net) if plan.compile else None)
        self.phase, self.epoch_in_phase = 1, 0
        self.stopper = EarlyStopping(plan.patience, plan.min_delta)

    # ------------------------------------------------------------------ checkpoints
    def _plan_key(self) -> str:
        return json.dumps({**asdict(self.plan), "n_genes": self.n_genes, "seed": self.random_state,
                           "fingerprint": self.fingerprint, "start_epoch": self.start_epoch}, sort_keys=True)

    def _write_checkpoint(self) -> None:
        if self.ckpt is None or self.rank != 0:
            return
        save_checkpoint(self.ckpt, {
            "plan": self._plan_key(),
            "module": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "best_state": self.stopper.best_state,
            "state": {"phase": self.phase, "ep": self.epoch_in_phase, **self.stopper.state()},
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": self.gen.get_state(),
            "key_rng": None if self.key_gen is self.gen else self.key_gen.get_state(),
            "history": self.history,
        })

    def _resume(self) -> None:
        """Restore the state of the checkpoint in ``checkpoint_dir``; :class:`CheckpointError` if it cannot be used."""
        c = load_checkpoint(self.ckpt)
        if c.get("plan") != self._plan_key():
            raise CheckpointError(
                f"the checkpoint in {self.ckpt.parent} was written for other data or settings; "
                "use another checkpoint_dir or delete it to start over"
            )
        try:
            self.module.load_state_dict(c["module"])
            self.opt.load_state_dict(c["optimizer"])
            st = c["state"]
            self.phase, self.epoch_in_phase = int(st["phase"]), int(st["ep"])
            self.stopper.best, self.stopper.bad, self.stopper.best_state = st["best"], st["bad"], c["best_state"]
            self.rng.bit_generator.state = json.loads(c["numpy_rng"])
            self.gen.set_state(c["torch_rng"])
            if self.key_gen is not self.gen and c.get("key_rng") is not None:
                self.key_gen.set_state(c["key_rng"])
            self.history[:] = list(c["history"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            # a file that matches the plan but lacks a part or holds one of the wrong shape: damaged
            raise unusable(self.ckpt, "is damaged", e) from e
        logger.info("resumed from %s at epoch %d (phase %d)", self.ckpt, len(self.history), self.phase)

    # ------------------------------------------------------------------ the loop
    def fit(self, train_rows: np.ndarray, val_rows: np.ndarray, *, resume: bool = False) -> list[dict]:
        """Run both phases on ``train_rows``, stopping each early on ``val_rows`` (may be empty: then each phase runs its full epochs).

        With ``resume``, continue from the checkpoint in ``checkpoint_dir`` if there is one: weights, optimiser,
        learning-rate schedule, early-stopping state, random generators and history are restored, so the
        result equals an uninterrupted run (on CPU); a checkpoint that is damaged or was written for other data or
        settings raises :class:`CheckpointError`. Returns the history: one dict per epoch with ``phase``,
        ``epoch``, ``train_loss``, ``val_same``, ``val_other``, ``val_mean``, ``lr`` and ``seconds``.
        """
        train_rows = np.asarray(train_rows)
        if len(train_rows) < 1:
            raise ValueError("no training samples: the model needs data to train on")
        if resume and self.ckpt is None:
            raise ValueError("resume=True needs checkpoint_dir, the folder the interrupted run wrote checkpoints to")
        p = self.plan
        vs = ValidationSet.make(val_rows, self.n_genes, p.n_input, p.n_target, self.random_state) if len(val_rows) else None
        if resume and self.ckpt.exists():
            self._resume()
        passes = max(1, math.ceil(p.min_steps_per_epoch * p.batch_size / len(train_rows)))
        self.steps_per_epoch = max(1, math.ceil(passes * len(train_rows) / p.batch_size))
        self.micro = p.micro_batch or micro_batch_size(
            self.module, p.n_input + 1 + p.n_target, -(-p.batch_size // self.world), self.device
        )
        total = sum(p.phase_epochs)
        bar = tqdm(total=total, desc="GexBERT", unit="epoch", disable=not self.progress, leave=False)
        bar.update(min(len(self.history) - self.start_epoch, total))
        try:
            while self.phase <= 2:
                self._run_phase(train_rows, passes, vs, bar)
        finally:
            bar.close()
        if self.module.is_scaffolded and float(self.module.readout_scale) > 0:
            warnings.warn(
                f"training ended before the scaffold readout faded out (weight {float(self.module.readout_scale):.2f}): "
                f"scaffold_epochs={p.scaffold_epochs} needs {4 * p.scaffold_epochs} epochs in all. The model works "
                "(the readout stays at that weight), but it is not the network without a readout; train on, or "
                "lower scaffold_epochs", UserWarning, stacklevel=2)
        return self.history

    def _run_phase(self, train_rows, passes, vs, bar) -> None:
        phase = self.phase
        max_epochs = self.plan.phase_epochs[phase - 1]
        key = "val_same" if phase == 1 else "val_other"
        bar.set_description(f"GexBERT phase {phase}")
        stop = self.epoch_in_phase >= max_epochs
        scaffold = lambda: scaffold_factor(len(self.history), self.plan.scaffold_epochs)
        self.module.set_readout_scale(scaffold())
        if (vs is not None and not stop and self.epoch_in_phase == 0 and getattr(self.module, "linear", None) is not None
                and not scaffold()):
            # with a linear path the weights a phase starts from (at first: the linear estimate alone) are a
            # candidate too, so training cannot end worse on the validation rows than where it began
            eval_batch = self.micro if self.micro < self.plan.batch_size else max(self.plan.batch_size, 64)
            self.stopper.update(evaluate(self.module, self.fetch, vs, eval_batch, self.device)[key], self.module)
            self.stopper.bad = 0
        while not stop:
            weight = scaffold()  # the scaffold readout's weight in this epoch
            self.module.set_readout_scale(weight)
            rec = self._run_epoch(train_rows, passes, phase, max_epochs)
            if vs is not None:
                eval_batch = self.micro if self.micro < self.plan.batch_size else max(self.plan.batch_size, 64)
                rec.update(evaluate(self.module, self.fetch, vs, eval_batch, self.device))
            else:
                rec.update({"val_same": math.nan, "val_other": math.nan, "val_mean": math.nan})
            rec["seconds"] = time.perf_counter() - rec.pop("_t0")
            if self.plan.scaffold_epochs:
                rec["scaffold"] = weight
            self.history.append(rec)
            self.epoch_in_phase += 1
            bar.update(1)
            bar.set_postfix(train=f"{rec['train_loss']:.3f}", val=f"{rec[key]:.3f}")
            # epochs that leaned on the scaffold neither count as best nor against patience
            if vs is not None and not weight and self.stopper.update(rec[key], self.module):
                logger.info("phase %d stopped early after %d epochs (best %s %.4f)",
                            phase, self.epoch_in_phase, key, self.stopper.best)
                bar.update(max_epochs - self.epoch_in_phase)
                stop = True
            stop = stop or self.epoch_in_phase >= max_epochs
            if not stop and len(self.history) % self.checkpoint_every == 0:
                self._write_checkpoint()
        # end of phase: keep its best weights, move on
        if self.stopper.best_state is not None:
            self.module.load_state_dict(self.stopper.best_state)
        self.phase, self.epoch_in_phase = phase + 1, 0
        self.stopper = EarlyStopping(self.plan.patience, self.plan.min_delta)
        self._write_checkpoint()

    def _run_epoch(self, train_rows, passes, phase, max_epochs) -> dict:
        t0 = time.perf_counter()
        p = self.plan
        self.module.train()
        perm = np.concatenate([self.rng.permutation(train_rows) for _ in range(passes)])
        specs = [(np.sort(perm[start : start + p.batch_size]),
                  effective_input_size(self.n_genes, draw_input_size(p.n_input_min, p.n_input, self.gen), p.n_target,
                                       phase))
                 for start in range(0, len(perm), p.batch_size)]
        loss_sum, loss_n, lr = torch.zeros((), device=self.device), 0, p.lr
        for i, hb in enumerate(host_batches(self._read, specs, self.prefetch)):
            b = to_device(hb, phase, p.n_target, self.key_gen, self.device)
            lr = p.lr * lr_factor(self.epoch_in_phase * self.steps_per_epoch + i, max_epochs * self.steps_per_epoch,
                                  p.warmup_steps)
            for group in self.opt.param_groups:
                group["lr"] = lr
            loss = self.steps(lambda net, b=b: run_step(net, self.opt, b.gi, b.vals, b.gt, b.tgt, micro_batch=self.micro,
                                                        grad_clip=p.grad_clip, rows=b.rows, n_dense=b.n_dense))
            loss_sum += loss * len(hb.rows)  # summed on the device: no synchronisation per step
            loss_n += len(hb.rows)
        loss_sum, loss_n = all_reduce_sum([float(loss_sum), float(loss_n)], self.device)
        return {"phase": phase, "epoch": len(self.history), "train_loss": loss_sum / max(loss_n, 1), "lr": lr,
                "_t0": t0}

    def _read(self, rows: np.ndarray, n_in: int):
        """The share of a batch this process trains on, read on the host (see :func:`~gexbert_sc.train._batches.read_batch`)."""
        return read_batch(self.fetch, rows, n_in, rank=self.rank, world=self.world, pin=self.pin,
                          keep_observed=self.device.type == "cpu")
