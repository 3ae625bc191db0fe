"""Atomic writes with the user's umask (gexbert_sc._files), shared by checkpoints, models, the CLI and the caches."""

import os
import stat

import pytest

from gexbert_sc._files import atomic_file, umask_mode


def test_atomic_file_replaces_the_destination_with_umask_permissions(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    old = os.umask(0o027)
    try:
        assert umask_mode(0o666) == 0o640
        with atomic_file(dest) as tmp:
            assert tmp.parent == tmp_path and tmp.exists() and not dest.read_bytes() == b"new"
            tmp.write_bytes(b"new")
    finally:
        os.umask(old)
    assert dest.read_bytes() == b"new"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_file_leaves_the_destination_on_error(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_file(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
