import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import gexbert_sc as gb
from gexbert_sc.train import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import TINY

SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    import gexbert_sc as gb
    torch.set_num_threads(1)
    adata = gb.datasets.synthetic(n_obs=120, n_vars=60, n_types=3, n_modules=4, module_size=10, random_state=1)
    model = gb.GexBERT(adata, random_state=0, **{tiny})
    model.train(phase1_epochs=4, phase2_epochs=4, progress=False, checkpoint_dir=sys.argv[1],
                resume=sys.argv[2] == "1")
    model.save(sys.argv[3], overwrite=True)
    """
)


def _run(args, **kw):
    code = SCRIPT.replace("{tiny}", repr({**TINY, "patience": 100}))
    return subprocess.Popen([sys.executable, "-c", code, *args], **kw)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    ck = tmp_path / "ck"
    # uninterrupted reference
    assert _run([str(tmp_path / "ref_ck"), "0", str(tmp_path / "ref")]).wait(timeout=300) == 0
    ref = gb.GexBERT.load(tmp_path / "ref")
    assert len(ref.history) == 8

    # kill as soon as a mid-training checkpoint exists (after epoch 3 or later, before the end)
    proc = _run([str(ck), "0", str(tmp_path / "out")])
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if (ck / "checkpoint.pt").exists():
            try:
                n = len(load_checkpoint(ck / "checkpoint.pt")["history"])
            except ValueError:
                n = 0
            if n >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = n
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    if killed_at is None:
        pytest.fail("training finished before a checkpoint could be interrupted")
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out").exists()
    assert killed_at < 8

    # resume: same number of epochs, history without a gap, same result as the uninterrupted run
    assert _run([str(ck), "1", str(tmp_path / "out")]).wait(timeout=300) == 0
    res = gb.GexBERT.load(tmp_path / "out")
    assert [h["epoch"] for h in res.history] == list(range(8))
    assert [h["phase"] for h in res.history] == [1] * 4 + [2] * 4
    for a, b in zip(res.history, ref.history, strict=False):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    for k, v in ref.module.state_dict().items():
        assert torch.allclose(v, res.module.state_dict()[k], atol=1e-5), k


def test_resume_refuses_other_settings_and_damaged_checkpoints(small_adata, tmp_path):
    m = gb.GexBERT(small_adata, random_state=0, **TINY)
    m.train(phase1_epochs=1, phase2_epochs=0, progress=False, checkpoint_dir=tmp_path)
    other = gb.GexBERT(small_adata, random_state=1, **TINY)
    with pytest.raises(ValueError, match="other data or settings"):
        other.train(phase1_epochs=1, phase2_epochs=0, progress=False, checkpoint_dir=tmp_path, resume=True)
    data = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot be read"):
        m.train(phase1_epochs=1, phase2_epochs=0, progress=False, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="needs checkpoint_dir"):
        m.train(progress=False, resume=True)


def test_resume_of_a_finished_run_changes_nothing(small_adata, tmp_path):
    m = gb.GexBERT(small_adata, random_state=0, **TINY).train(
        phase1_epochs=1, phase2_epochs=1, progress=False, checkpoint_dir=tmp_path
    )
    m2 = gb.GexBERT(small_adata, random_state=0, **TINY).train(
        phase1_epochs=1, phase2_epochs=1, progress=False, checkpoint_dir=tmp_path, resume=True
    )
    assert len(m2.history) == 2
    assert np.array_equal(m.embed(), m2.embed())


def test_checkpoint_file_follows_the_umask(tmp_path):
    # defect: checkpoints (mkstemp) were written 0600
    import os
    import stat

    from gexbert_sc.train import save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c" / "checkpoint.pt", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c" / "checkpoint.pt").stat().st_mode) == 0o644
    assert load_checkpoint(tmp_path / "c" / "checkpoint.pt") == {"x": 1}


def test_resume_refuses_a_checkpoint_of_other_settings(small_adata, tmp_path):
    # found by the CLI work: --resume after --set activation=relu resumed silently
    import gexbert_sc as gb
    from tests.conftest import TINY

    gb.GexBERT(small_adata, **TINY).train(phase1_epochs=1, phase2_epochs=1, progress=False, checkpoint_dir=tmp_path)
    other = gb.GexBERT(small_adata, **{**TINY, "activation": "relu"})
    with pytest.raises(ValueError, match="written for other data or settings"):
        other.train(phase1_epochs=1, phase2_epochs=1, progress=False, checkpoint_dir=tmp_path, resume=True)


def test_damaged_checkpoint_raises_checkpoint_error(small_adata, tmp_path):
    """A damaged checkpoint passed to resume raises the public CheckpointError (a ValueError) naming it and the fix."""
    assert issubclass(CheckpointError, ValueError)
    ck = tmp_path / "checkpoint.pt"
    m = gb.GexBERT(small_adata, random_state=0, **TINY)
    m.train(phase1_epochs=1, phase2_epochs=0, progress=False, checkpoint_dir=tmp_path)
    good = ck.read_bytes()

    def resume():
        gb.GexBERT(small_adata, random_state=0, **TINY).train(
            phase1_epochs=1, phase2_epochs=0, progress=False, checkpoint_dir=tmp_path, resume=True
        )

    ck.write_bytes(good[: len(good) // 2])  # truncated: cannot be unpickled
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint\.pt cannot be read .*delete it to start over"):
        resume()

    ck.write_bytes(good)
    payload = load_checkpoint(ck)
    del payload["optimizer"]  # readable, written for these settings, but a part is missing
    save_checkpoint(ck, payload)
    with pytest.raises(CheckpointError, match=r"is damaged \(KeyError: .*optimizer.*delete it to start over"):
        resume()

    torch.save(torch.zeros(3), ck)  # a readable file that is not a checkpoint
    with pytest.raises(CheckpointError, match="it holds a Tensor, not a checkpoint"):
        load_checkpoint(ck)
