"""Model and training configuration, with the ``"cpu"``, ``"gpu"`` and ``"paper"`` presets (and ``"auto"``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

Activation = Literal["gelu", "relu"]
ValueEncoding = Literal["interp_proj", "interp", "binned"]
LevelCut = Literal["quantile", "uniform"]
LinearPath = Literal["none", "fixed", "learned"]


@dataclass(frozen=True)
class GexBERTConfig:
    """Architecture and training settings of a :class:`~gexbert_sc.GexBERT`.

    The presets (``config="cpu"``, ``"gpu"`` or ``"paper"``; any setting can be overridden):

    ================  ============  ============  ============  ===========================================
    setting           ``"cpu"``     ``"gpu"``     ``"paper"``   why
    ================  ============  ============  ============  ===========================================
    d_model           64            256           200           paper: 200; gpu: a multiple of 64
    n_layers          2             4             8             paper: 8 (encoder and decoder each)
    n_heads           4             8             8             paper: 8; gpu: head dim 32 (fast kernels)
    d_ff              128           1024          800           open in the paper; 4 x d_model (gpu, paper)
    value_encoding    interp_proj   interp_proj   binned        binned = the paper's hard levels
    summary_readout   True          True          False         the paper's decoder has none
    linear_path       fixed         fixed         none          ridge/SoftImpute-level restoring; none = paper
    n_input/n_target  256/256       512/512       512/512       paper: 512
    batch_size        32            256           32            gpu: fills the GPU (paper: open)
    lr                5e-3          2e-3          5e-4          open in the paper
    scaffold_epochs   0             0             6             a readout that fades out (paper: none)
    gene_init_sd      0.02          0.02          1             gene embeddings' sd at the start (open)
    phase1/2 epochs   15/25         40/80         10,000/1,500  paper: 10,000 and 1,500
    patience          8             10            50            early stopping on the validation loss
    ================  ============  ============  ============  ===========================================

    On cohorts of a few hundred samples the paper's network, started as the other presets are, stays at
    predicting the mean for over 1,000 steps at any learning rate tried. The ``"paper"`` preset therefore
    trains it with a scaffold (``scaffold_epochs``, a readout that fades out: the trained network has none)
    and with gene embeddings that start at sd 1 (``gene_init_sd``), which its decoder needs to learn
    gene-specific outputs. Together they make a network of the paper's size (d 200, 8 + 8 layers; 64 genes in
    and out, on CPU) leave the mean and keep learning without the scaffold; neither does it alone
    (``docs/design.md``, item 7 of "Beyond the paper"). At 512 genes this recipe is not yet measured.

    ``"gpu"`` keeps the ``"cpu"`` preset's training choices (interpolated values with the per-gene
    projection, the summary readout, GELU, AdamW with warm-up and cosine decay, no dropout, no
    ``n_input_min``) at a width whose matrix shapes suit tensor cores (multiples of 64, head dimension
    32: the fused attention kernels). Its learning rate is scaled down from the ``"cpu"`` preset's for the
    4x width and up for the 8x batch. Measured on an H200 on cohorts of 150-450 samples it restored
    genes exactly as well as the ``"cpu"`` preset (both kept the linear path) and took longer; at TCGA
    scale its quality is not yet measured (``docs/design.md``, "GPU training"). ``config="auto"`` picks ``"gpu"`` where CUDA is available and
    the data are large enough for it (``n_obs`` of at least :data:`AUTO_GPU_MIN_OBS` samples, when
    known), else ``"cpu"``: choose ``"cpu"`` for CPU training and small cohorts, ``"gpu"`` for
    TCGA-scale data on a GPU, ``"paper"`` to reproduce the paper's network.

    Parameters
    ----------
    d_model
        Token and embedding dimension (paper: 200).
    n_layers
        Number of encoder layers; the decoder has as many (paper: 8).
    n_heads
        Attention heads (paper: 8).
    d_ff
        Width of the feed-forward blocks (paper: open; ``4 * d_model`` in the ``"paper"`` preset).
    activation
        Feed-forward activation, ``"gelu"`` or ``"relu"`` (paper: open).
    dropout
        Dropout rate (paper: open). 0 by default: on CPU dropout slows a step a lot and the
        random gene sampling already regularises.
    n_levels
        Number of value levels (paper: 64).
    value_encoding
        ``"interp_proj"`` (default): interpolated level embeddings plus a learned per-gene
        projection of the continuous value; ``"interp"``: a value's token interpolates between
        the embeddings of its two neighbouring levels; ``"binned"``: the paper's hard bins.
    summary_readout
        Add a per-gene linear readout of the summary to the decoder's output (beyond the paper;
        it lets training leave the predict-the-mean plateau within minutes on CPU).
    linear_path
        ``"fixed"`` (default of the ``"cpu"`` and ``"gpu"`` presets), ``"learned"`` or ``"none"`` (the
        paper's network alone; the ``"paper"`` preset): add a linear estimate of each restored gene from
        all observed genes (the conditional mean of a Gaussian whose covariance comes from the training
        samples' SVD, fitted by EM where they have missing values, penalty picked on the validation
        samples) to the network's output, so the network learns a correction of it (beyond the paper).
        ``"fixed"`` keeps the linear estimate as fitted; ``"learned"`` trains its factors and penalty
        with the network. At inference the linear estimate uses every observed gene, not ``n_input``.
        Measured (``benchmarks/results/imputation_linear.md``, ``quality.md``, ``survival.linear.md``):
        it restores and imputes at the level of ridge regression and SoftImpute or better, where the
        network alone is 10-25% behind, and its restored anchors predict survival better than the input
        genes; but the summary (cls) embedding and the attention carry less signal, since the network
        only learns a correction (``embed`` therefore returns the summary and the linear latent): for
        attention studies train with ``linear_path="none"``. Its set-up holds up to 4,096 training rows in memory (a backed AnnData is
        otherwise only streamed); inference solves a ``linear_rank``-sized system per sample.
    linear_rank
        Factors (rank) of the linear path; at most the number of training samples is used.
    n_input_min
        With a value, each training batch draws its number of input genes log-uniformly from
        ``[n_input_min, n_input]``, so the model also learns to restore from small panels; None:
        always ``n_input``.
    compile
        Train with ``torch.compile`` (beyond the paper; a speed option, the same step up to rounding).
        Where compilation is unavailable or fails (e.g. on CPU without a C compiler), training logs a
        warning and runs in eager mode. Inference always runs eagerly.
    level_cut
        How the levels are placed on the standardised scale: ``"quantile"`` (equal-frequency levels
        fitted on the training values) or ``"uniform"`` (equally spaced over ``[-clip, clip]``).
    clip
        Range of the uniform cut, in standard deviations.
    n_input
        Genes sampled per sample as the encoder's input (paper: 512).
    n_target
        Genes restored per sample in phase 2 (paper: 512).
    batch_size
        Samples per optimisation step.
    lr, weight_decay
        AdamW settings. The learning rate warms up linearly, then decays on a cosine to 10%.
    warmup_steps
        Steps of the linear warm-up at the start of each phase (at most a tenth of the phase's steps).
    scaffold_epochs
        With ``summary_readout=False`` (the ``"paper"`` preset), train with the summary readout as a temporary
        scaffold: at full weight for this many epochs (counted over both phases), then frozen and fading
        linearly to nothing at ``4 * scaffold_epochs`` epochs; early stopping only considers epochs without
        it, so the trained network is exactly the one without a readout. 0 (default): no scaffold; 6 in the
        ``"paper"`` preset. Measured (docs/design.md): a small network of the paper's design (d 64, 2 layers)
        leaves the mean at once instead of after 1,000-1,650 steps and ends as good or better; one of the
        paper's size (d 200, 8 layers) falls back to the mean when the scaffold is gone unless its gene
        embeddings start large (``gene_init_sd=1``).
    gene_init_sd
        Standard deviation of the gene embeddings at initialisation (the value-level embeddings start at 1).
        0.02 (default) keeps the choice of input genes from drowning the values in the summary at the start;
        1 in the ``"paper"`` preset, whose decoder (every gene to restore gets the same vector from the summary)
        otherwise sees almost the same token for every gene and learns gene-specific outputs only after about
        1,000 steps (docs/design.md).
    phase1_epochs, phase2_epochs
        Maximum epochs of phase 1 (restore the input genes) and phase 2 (restore other genes)
        (paper: 10,000 and 1,500).
    patience
        Epochs without improvement of the validation loss before a phase stops early.
    val_fraction
        Fraction of the samples held out to watch the validation loss (paper: 0.2).
    min_steps_per_epoch
        Small cohorts repeat their (shuffled) samples within an epoch until it has this many
        optimisation steps; every visit draws other genes.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    activation: Activation = "gelu"
    dropout: float = 0.0
    n_levels: int = 64
    value_encoding: ValueEncoding = "interp_proj"
    summary_readout: bool = True
    linear_path: LinearPath = "fixed"
    linear_rank: int = 256
    n_input_min: int | None = None
    compile: bool = False
    level_cut: LevelCut = "quantile"
    clip: float = 3.0
    n_input: int = 256
    n_target: int = 256
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    scaffold_epochs: int = 0
    gene_init_sd: float = 0.02
    phase1_epochs: int = 15
    phase2_epochs: int = 25
    patience: int = 8
    val_fraction: float = 0.2
    min_steps_per_epoch: int = 25

    def validate(self) -> GexBERTConfig:
        """Raise ``ValueError`` naming the first setting that is out of range."""
        positive = ["d_model", "n_layers", "n_heads", "d_ff", "n_input", "n_target", "batch_size", "patience",
                    "min_steps_per_epoch", "linear_rank", "warmup_steps"]
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"config.{name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"config.d_model ({self.d_model}) must be divisible by config.n_heads ({self.n_heads}); "
                f"try n_heads={_divisor_near(self.d_model, self.n_heads)}"
            )
        if not (isinstance(self.n_levels, int) and 2 <= self.n_levels <= 4096):
            raise ValueError(f"config.n_levels must be an integer in [2, 4096], got {self.n_levels!r}")
        if self.n_input_min is not None and (
            not isinstance(self.n_input_min, int) or isinstance(self.n_input_min, bool)
            or not 1 <= self.n_input_min <= self.n_input
        ):
            raise ValueError(
                f"config.n_input_min must be None or an integer in [1, n_input={self.n_input}], got {self.n_input_min!r}"
            )
        for name, choices in (("value_encoding", ValueEncoding), ("activation", Activation), ("level_cut", LevelCut),
                              ("linear_path", LinearPath)):
            if getattr(self, name) not in get_args(choices):
                raise ValueError(f"config.{name} must be one of {get_args(choices)}, got {getattr(self, name)!r}")
        for name in ("summary_readout", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"config.{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.scaffold_epochs, int) or isinstance(self.scaffold_epochs, bool) or self.scaffold_epochs < 0:
            raise ValueError(f"config.scaffold_epochs must be an integer >= 0, got {self.scaffold_epochs!r}")
        if self.scaffold_epochs and self.summary_readout:
            raise ValueError("config.scaffold_epochs is for summary_readout=False (a readout that stays needs no "
                             "scaffold); set one of them")
        if isinstance(self.gene_init_sd, bool) or not isinstance(self.gene_init_sd, (int, float)) \
                or not 0.0 < self.gene_init_sd < 100.0:
            raise ValueError(f"config.gene_init_sd must be a number in (0, 100), got {self.gene_init_sd!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"config.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ValueError(f"config.val_fraction must be in [0, 0.9), got {self.val_fraction!r}")
        if not self.lr > 0 or self.weight_decay < 0 or not self.clip > 0:
            raise ValueError("config.lr and config.clip must be > 0 and config.weight_decay >= 0")
        for name in ("phase1_epochs", "phase2_epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"config.{name} must be an integer >= 0, got {v!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON- and h5ad-writable)."""
        return asdict(self)


def _divisor_near(n: int, k: int) -> int:
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return min(divs, key=lambda d: abs(d - k))


PRESETS: dict[str, GexBERTConfig] = {
    "cpu": GexBERTConfig(),
    "paper": GexBERTConfig(
        d_model=200,
        n_layers=8,
        n_heads=8,
        d_ff=800,
        n_levels=64,
        value_encoding="binned",
        summary_readout=False,
        linear_path="none",
        n_input=512,
        n_target=512,
        batch_size=32,
        lr=5e-4,
        scaffold_epochs=6,
        gene_init_sd=1.0,
        phase1_epochs=10_000,
        phase2_epochs=1_500,
        patience=50,
    ),
    "gpu": GexBERTConfig(
        d_model=256,
        n_layers=4,
        n_heads=8,
        d_ff=1024,
        n_input=512,
        n_target=512,
        batch_size=256,
        lr=2e-3,
        phase1_epochs=40,
        phase2_epochs=80,
        patience=10,
    ),
}

#: ``config="auto"`` picks the ``"gpu"`` preset on CUDA only for at least this many samples (when the
#: caller passes ``n_obs``): smaller cohorts train the small ``"cpu"`` network, which they fill.
AUTO_GPU_MIN_OBS = 2_000


def auto_preset(n_obs: int | None = None, cuda: bool | None = None) -> str:
    """The preset ``config="auto"`` stands for.

    ``"gpu"`` where CUDA is available (``cuda``; None: ask torch) and ``n_obs`` (if given) is at least
    :data:`AUTO_GPU_MIN_OBS`, else ``"cpu"``.
    """
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return "gpu" if cuda and (n_obs is None or n_obs >= AUTO_GPU_MIN_OBS) else "cpu"


def resolve_config(
    config: str | dict | GexBERTConfig = "cpu", *, n_obs: int | None = None, **overrides: Any
) -> GexBERTConfig:
    """Build a validated config from a preset name, a dict or a config, plus keyword overrides.

    ``"auto"`` stands for the preset :func:`auto_preset` picks, informed by ``n_obs`` (the number of samples).
    """
    if isinstance(config, GexBERTConfig):
        base = config
    elif isinstance(config, str):
        if config == "auto":
            config = auto_preset(n_obs)
        if config not in PRESETS:
            raise ValueError(
                f"unknown config preset {config!r}; choose one of {sorted([*PRESETS, 'auto'])} or pass a dict"
            )
        base = PRESETS[config]
    elif isinstance(config, dict):
        base, overrides = PRESETS["cpu"], {**config, **overrides}
    else:
        raise TypeError(f"config must be a preset name, a dict or a GexBERTConfig, got {type(config).__name__}")
    known = {f.name for f in fields(GexBERTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        import difflib

        hints = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        msg = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
        raise TypeError(f"unknown config setting(s): {msg}; valid settings: {sorted(known)}")
    return replace(base, **overrides).validate()
