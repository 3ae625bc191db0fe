"""gb.datasets.tcga_pancan end to end against files of the Xena formats served on 127.0.0.1."""

import gzip
import hashlib
import http.server
import logging
import os
import threading
from functools import partial

import numpy as np
import pandas as pd
import pytest

import gexbert_sc as gb
from gexbert_sc.datasets import PANCAN_FILES, SURVIVAL_TYPES, _pancan, _xena_parse

# patients per cancer type in the fixture; THCA is not one of the paper's 14 survival types
TYPES = {"BRCA": 120, "LUAD": 80, "LAML": 50, "THCA": 60}
N_GENES = 40  # plus a duplicated row, a constant gene and an all-NA gene


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _samples_and_survival(rng):
    """Barcodes (primary 01, LAML 03, some normals 11 and metastases 06) and the survival table."""
    rows, samples = [], []
    for t, n in TYPES.items():
        for p in range(n):
            patient = f"TCGA-{t[:2]}-{p:04d}"
            codes = ["03" if t == "LAML" else "01"] + (["11"] if p % 5 == 0 else []) + (["06"] if p % 7 == 3 else [])
            for c in codes:
                samples.append(f"{patient}-{c}")
                rows.append((f"{patient}-{c}", patient, t, int(rng.random() < 0.4), int(rng.integers(10, 4000))))
    samples += ["TCGA-ZZ-0001-01", "TCGA-ZZ-0002-01", "TCGA-ZZ-0002-11"]  # no survival record
    surv = pd.DataFrame(rows, columns=["sample", "_PATIENT", "cancer type abbreviation", "OS", "OS.time"])
    return samples, surv


def _matrix(rng, n_samples):
    """Genes x samples values written with 3 decimals, NaN (written NA) in 2% of entries."""
    vals = np.round(rng.normal(5, 1, (N_GENES, n_samples)) * rng.uniform(0.2, 3, (N_GENES, 1)), 3)
    vals[rng.random(vals.shape) < 0.02] = np.nan
    genes = [f"G{i}" for i in range(N_GENES)]
    dup = np.round(rng.normal(0, 1, (1, n_samples)), 3)  # a second "G3" row: must be ignored
    const = np.zeros((1, n_samples))
    all_na = np.full((1, n_samples), np.nan)
    return genes + ["G3", "CONST", "ALLNA"], np.vstack([vals, dup, const, all_na])


def _write_expression(path, samples, genes, vals):
    with gzip.open(path, "wt") as fh:
        fh.write("sample\t" + "\t".join(samples) + "\n")
        for g, row in zip(genes, vals, strict=True):
            fh.write(g + "\t" + "\t".join("NA" if np.isnan(v) else f"{v:.3f}" for v in row) + "\n")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def xena(tmp_path):
    """Serve a few hundred samples in the Xena formats on 127.0.0.1 (no outside network is used)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "www"
    root.mkdir()
    samples, surv = _samples_and_survival(rng)
    genes, vals = _matrix(rng, len(samples))
    expr_file = root / PANCAN_FILES["expression"].replace("%2B", "+")  # the name the server sees after URL decoding
    _write_expression(expr_file, samples, genes, vals)
    surv_file = root / PANCAN_FILES["survival"]
    surv.to_csv(surv_file, sep="\t", index=False)
    handler = partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    expected = pd.DataFrame(vals[:N_GENES].T.astype(np.float32), index=samples, columns=genes[:N_GENES])
    expected["CONST"], expected["ALLNA"] = np.float32(0), np.float32(np.nan)
    yield {
        "url": f"http://127.0.0.1:{server.server_address[1]}/",
        "server": server,
        "cache": tmp_path / "cache",
        "expected": expected,
        "survival": surv.set_index("sample"),
        "hashes": {"expression": "sha256:" + _sha256(expr_file), "survival": "sha256:" + _sha256(surv_file)},
    }
    server.shutdown()
    server.server_close()


def _load(x, **kw):
    return gb.datasets.tcga_pancan(base_url=x["url"], cache_dir=x["cache"], progress=False, **kw)


def _patients(adata, split=None):
    obs = adata.obs if split is None else adata.obs[adata.obs["split"] == split]
    return set(obs["patient_barcode"])


def test_download_hash_check_parse_and_survival_join(xena):
    a = _load(xena, known_hashes=xena["hashes"], min_variance=None, n_top_genes=None)
    exp = xena["expected"]
    assert a.shape == (len(exp), N_GENES + 2) == (419, 42)
    assert list(a.var_names) == list(exp.columns) and list(a.obs_names) == list(exp.index)
    assert a.X.dtype == np.float32 and a.X.flags.c_contiguous
    np.testing.assert_array_equal(a.X, exp.to_numpy())  # NaN where NA, the first "G3" row kept
    assert 0.015 < np.isnan(a.X[:, :N_GENES]).mean() < 0.025
    surv = xena["survival"]
    s = surv.loc["TCGA-BR-0003-01"]
    row = a.obs.loc["TCGA-BR-0003-01"]
    assert (row["cancer_type"], row["os_time"], bool(row["os_event"])) == ("BRCA", s["OS.time"], bool(s["OS"]))
    assert int(a.obs["os_event"].sum()) == int(surv["OS"].sum())
    nosurv = a.obs.loc[["TCGA-ZZ-0001-01", "TCGA-ZZ-0002-11"]]
    assert nosurv["cancer_type"].isna().all() and nosurv["os_time"].isna().all() and nosurv["os_event"].isna().all()
    assert a.obs.loc["TCGA-ZZ-0002-11", "patient_barcode"] == "TCGA-ZZ-0002"
    assert a.obs.loc["TCGA-LA-0001-03", "sample_type_code"] == "03"


def test_wrong_hash_fails_clearly(xena):
    with pytest.raises(ValueError, match=r"does not match known_hashes\['expression'\].*new hash"):
        _load(xena, known_hashes={"expression": "sha256:" + "0" * 64})
    with pytest.raises(ValueError, match="unknown key"):
        _load(xena, known_hashes={"expr": None})


def test_primary_only_keeps_codes_01_and_03(xena):
    a = _load(xena, primary_only=True, min_variance=None, n_top_genes=None)
    exp = xena["expected"]
    codes = exp.index.str[13:15]
    assert a.n_obs == int(np.isin(codes, ["01", "03"]).sum()) == sum(TYPES.values()) + 2 == 312
    assert set(a.obs["sample_type_code"]) == {"01", "03"}
    assert (a.obs.loc[a.obs["cancer_type"] == "LAML", "sample_type_code"] == "03").sum() == TYPES["LAML"]
    np.testing.assert_array_equal(a.X, exp.loc[a.obs_names].to_numpy())


def test_variance_filter(xena):
    exp = xena["expected"]
    var = exp.var(ddof=0).to_numpy()  # pandas skips NaN
    default = _load(xena)  # min_variance=0: the constant and the all-NA gene go
    assert list(default.var_names) == list(exp.columns[:N_GENES])
    np.testing.assert_allclose(default.var["variance"], var[:N_GENES], rtol=1e-5)
    top = _load(xena, n_top_genes=10)
    want = exp.columns[np.sort(np.argsort(-np.nan_to_num(var, nan=-1))[:10])]
    assert list(top.var_names) == list(want)
    np.testing.assert_array_equal(top.X, exp[want].to_numpy())
    cut = float(np.median(var[:N_GENES]))
    thr = _load(xena, min_variance=cut, n_top_genes=None)
    assert thr.n_vars == int((var[:N_GENES] > cut).sum()) == N_GENES // 2
    both = _load(xena, primary_only=True, n_top_genes=5)  # variance over the kept samples
    prim = exp[np.isin(exp.index.str[13:15], ["01", "03"])]
    assert list(both.var_names) == list(prim.columns[np.sort(np.argsort(-prim.var(ddof=0).fillna(-1).to_numpy())[:5])])


def test_split_follows_the_paper(xena):
    a = _load(xena, random_state=0)
    obs = a.obs
    assert set(obs["split"]) == {"pretrain", "validation", "test"}
    # a patient never straddles splits
    assert (obs.groupby("patient_barcode", observed=True)["split"].nunique() == 1).all()
    for t, n in TYPES.items():
        by_split = {s: len(_patients(a[(obs["cancer_type"] == t).to_numpy()], s)) for s in ("pretrain", "validation", "test")}
        n_test = round(0.3 * n) if t in SURVIVAL_TYPES else 0
        assert by_split["test"] == n_test, t  # 36 BRCA, 24 LUAD, 15 LAML, no THCA
        assert by_split["validation"] == round(0.2 * (n - n_test)), t
        assert sum(by_split.values()) == n
    assert "THCA" not in SURVIVAL_TYPES and (obs.loc[obs["cancer_type"] == "THCA", "split"] != "test").all()
    assert (obs.loc[obs["cancer_type"].isna(), "split"] != "test").all()  # no survival record: development
    # reproducible with the seed, different with another, and the same patients whatever primary_only
    assert (_load(xena, random_state=0).obs["split"] == obs["split"]).all()
    other = _load(xena, random_state=1).obs
    assert _patients(a, "test") != set(other.loc[other["split"] == "test", "patient_barcode"])
    prim = _load(xena, random_state=0, primary_only=True).obs
    assert (prim["split"] == obs.loc[prim.index, "split"]).all()
    half = _load(xena, test_size=0.5, validation_size=0.25).obs
    assert len(set(half.loc[(half["cancer_type"] == "BRCA") & (half["split"] == "test"), "patient_barcode"])) == 60


def test_cache_serves_the_second_call_without_server_or_parser(xena, monkeypatch, caplog):
    a = _load(xena, known_hashes=xena["hashes"])
    cached = list(xena["cache"].glob("*.parsed-v1.h5ad"))
    assert len(cached) == 1 and cached[0].stat().st_size > a.X.nbytes
    assert not list(xena["cache"].glob(".*tmp")), "the temporary file of the atomic write is gone"
    xena["server"].shutdown()

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again instead of reading the cache")

    monkeypatch.setattr(_pancan, "read_xena_matrix", no_parse)
    with caplog.at_level(logging.INFO, logger="gexbert_sc"):
        b = _load(xena, known_hashes=xena["hashes"])
    assert "from the cache" in caplog.text
    np.testing.assert_array_equal(a.X, b.X)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    # other options reuse the same cache (filters and split run after reading)
    c = _load(xena, primary_only=True, n_top_genes=7)
    assert c.shape == (312, 7)


def test_cache_is_remade_when_the_download_changes(xena, monkeypatch):
    _load(xena)
    expr = next(p for p in xena["cache"].iterdir() if p.name.endswith(".xena.gz"))
    calls = []
    real = _pancan.read_xena_matrix
    monkeypatch.setattr(_pancan, "read_xena_matrix", lambda *a, **k: calls.append(1) or real(*a, **k))
    _load(xena)
    assert calls == []
    stat = expr.stat()
    os.utime(expr, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _load(xena)
    assert calls == [1]


def _gz(path, text):
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def test_bad_files_fail_with_the_file_and_the_fix(tmp_path, xena):
    good = "sample\tS1\tS2\nA\t1.0\tNA\nB\t2.5\t3.5\n"
    X, samples, genes = _xena_parse.read_xena_matrix(_gz(tmp_path / "ok.gz", good))
    np.testing.assert_array_equal(X, np.array([[1.0, 2.5], [np.nan, 3.5]], dtype=np.float32))
    assert (samples, genes) == (["S1", "S2"], ["A", "B"])
    raw = (tmp_path / "ok.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz is truncated or not a valid gzip file.*download it afresh"):
        _xena_parse.read_xena_matrix(tmp_path / "cut.gz")
    with pytest.raises(ValueError, match=r"short\.gz, line 3: 2 fields where the header has 3"):
        _xena_parse.read_xena_matrix(_gz(tmp_path / "short.gz", "sample\tS1\tS2\nA\t1\t2\nB\t1\n"))
    with pytest.raises(ValueError, match=r"word\.gz, line 2: a value is not a number or NA"):
        _xena_parse.read_xena_matrix(_gz(tmp_path / "word.gz", "sample\tS1\tS2\nA\t1\tabc\n"))
    with pytest.raises(ValueError, match="is empty"):
        _xena_parse.read_xena_matrix(_gz(tmp_path / "empty.gz", ""))
    # through tcga_pancan: a truncated download already in the cache folder
    xena["cache"].mkdir()
    (xena["cache"] / PANCAN_FILES["expression"]).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        _load(xena)


def test_duplicate_gene_rows_keep_the_first_and_are_logged(tmp_path, caplog):
    text = "sample\tS1\nA\t1\nB\t2\nA\t3\nA\t4\n"
    with caplog.at_level(logging.WARNING, logger="gexbert_sc"):
        X, _, genes = _xena_parse.read_xena_matrix(_gz(tmp_path / "dup.gz", text))
    assert genes == ["A", "B"] and X.ravel().tolist() == [1.0, 2.0]
    assert "2 duplicated gene row(s)" in caplog.text


def test_subset_inplace_matches_fancy_indexing():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 30)).astype(np.float32)
    rows, cols = np.sort(rng.choice(50, 20, replace=False)), np.sort(rng.choice(30, 11, replace=False))
    want = X[rows][:, cols]
    got = _pancan._subset_inplace(X.copy(), rows, None)
    got = _pancan._subset_inplace(got, None, cols)
    np.testing.assert_array_equal(got, want)
    assert got.flags.c_contiguous


@pytest.mark.parametrize(
    "kw, match",
    [({"primary_only": "yes"}, "primary_only"), ({"min_variance": -1}, "min_variance"), ({"n_top_genes": 0}, "n_top_genes"),
     ({"test_size": 1.0}, "test_size"), ({"validation_size": 0}, "validation_size"), ({"random_state": 1.5}, "random_state")],
)  # fmt: skip
def test_options_are_checked_before_downloading(kw, match, tmp_path):
    with pytest.raises((ValueError, TypeError), match=match):
        gb.datasets.tcga_pancan(base_url="http://127.0.0.1:9/", cache_dir=tmp_path, progress=False, **kw)


def test_default_url_and_survival_types():
    assert gb.datasets.XENA_PANCAN_URL.startswith("https://tcga-pancan-atlas-hub")
    assert len(SURVIVAL_TYPES) == 14 and {"LAML", "SKCM", "OV"} <= set(SURVIVAL_TYPES)
