import gzip
import http.server
import threading
from functools import partial

import numpy as np
import pytest

import gexbert_sc as gb
from gexbert_sc.datasets import PANCAN_FILES


@pytest.fixture
def xena_server(tmp_path):
    """Serve small files in the Xena format on 127.0.0.1 (no outside network is used)."""
    root = tmp_path / "www"
    root.mkdir()
    genes = ["TP53", "BRCA1", "EGFR"]
    samples = ["TCGA-AA-0001-01", "TCGA-AA-0002-01", "TCGA-BB-0003-01", "TCGA-BB-0004-11"]
    rows = ["sample\t" + "\t".join(samples)]
    for i, g in enumerate(genes):
        vals = [f"{i + j * 0.5:.3f}" for j in range(len(samples))]
        if g == "EGFR":
            vals[1] = "NA"
        rows.append(g + "\t" + "\t".join(vals))
    name = PANCAN_FILES["expression"].replace("%2B", "+")  # the name the server sees after URL decoding
    with gzip.open(root / name, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    surv = ["sample\t_PATIENT\tcancer type abbreviation\tOS\tOS.time",
            "TCGA-AA-0001-01\tTCGA-AA-0001\tBRCA\t1\t300", "TCGA-AA-0002-01\tTCGA-AA-0002\tBRCA\t0\t1200",
            "TCGA-BB-0003-01\tTCGA-BB-0003\tLUAD\t1\t90"]
    (root / PANCAN_FILES["survival"]).write_text("\n".join(surv) + "\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", server
    server.shutdown()
    server.server_close()


def test_tcga_pancan_downloads_parses_and_caches(xena_server, tmp_path):
    url, server = xena_server
    cache = tmp_path / "cache"
    a = gb.datasets.tcga_pancan(base_url=url, cache_dir=cache, progress=False)
    assert a.shape == (4, 3) and list(a.var_names) == ["TP53", "BRCA1", "EGFR"]
    assert np.isnan(a.X[1, 2]) and a.X[2, 0] == pytest.approx(1.0)
    assert list(a.obs["cancer_type"].astype(str)[:3]) == ["BRCA", "BRCA", "LUAD"]
    assert a.obs["os_event"].iloc[0] and not a.obs["os_event"].iloc[1]
    assert a.obs["os_event"].isna().iloc[3] and np.isnan(a.obs["os_time"].iloc[3])
    assert a.obs["patient_barcode"].iloc[0] == "TCGA-AA-0001"
    # second call: served from the cache, the server is gone
    server.shutdown()
    b = gb.datasets.tcga_pancan(base_url=url, cache_dir=cache, progress=False)
    assert np.array_equal(a.X, b.X, equal_nan=True)


def test_default_url_is_the_xena_hub():
    assert gb.datasets.XENA_PANCAN_URL.startswith("https://tcga-pancan-atlas-hub")
