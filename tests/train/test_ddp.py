import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import gexbert_sc as gb
from tests.conftest import TINY

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    import gexbert_sc as gb
    torch.set_num_threads(1)
    import gexbert_sc.train._step as step
    if {one_sample_passes}:  # every batch runs in passes of 1 sample: DDP syncs only on the last
        step.CPU_PASS_VALUES = 1
    adata = gb.datasets.synthetic(n_obs=160, n_vars=60, n_types=3, n_modules=4, module_size=10, random_state=1)
    model = gb.GexBERT(adata, random_state=0, **{tiny})
    model.train(phase1_epochs=2, phase2_epochs=2, progress=False, device="cpu")
    if int(os.environ.get("RANK", "0")) == 0:
        model.save(sys.argv[1], overwrite=True)
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
@pytest.mark.parametrize("one_sample_passes", [False, True])
def test_two_process_ddp_matches_one_process(tmp_path, one_sample_passes):
    code = SCRIPT.replace("{tiny}", repr({**TINY, "batch_size": 32, "min_steps_per_epoch": 4}))
    code = code.replace("{one_sample_passes}", repr(one_sample_passes))
    script = tmp_path / "train.py"
    script.write_text(code)
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={_free_port()}", str(script), str(tmp_path / "two")],
        capture_output=True, text=True, timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = gb.GexBERT.load(tmp_path / "one"), gb.GexBERT.load(tmp_path / "two")
    assert len(a.history) == len(b.history) == 4
    la = np.array([h["train_loss"] for h in a.history])
    lb = np.array([h["train_loss"] for h in b.history])
    assert np.allclose(la, lb, rtol=1e-3), (la, lb)
    # training moved the network away from its initial weights (the linear path's loss hardly changes in
    # 2 + 2 epochs at this size, so the loss is not asserted to fall)
    adata = gb.datasets.synthetic(n_obs=160, n_vars=60, n_types=3, n_modules=4, module_size=10, random_state=1)
    init = gb.GexBERT(adata, random_state=0, **{**TINY, "batch_size": 32, "min_steps_per_epoch": 4}).module.state_dict()
    moved = [k for k, v in a.module.state_dict().items() if k.startswith("encoder") and not torch.allclose(v, init[k])]
    assert moved, "no encoder weight changed in training"
    for k, v in a.module.state_dict().items():
        assert torch.allclose(v, b.module.state_dict()[k], atol=1e-3), k
