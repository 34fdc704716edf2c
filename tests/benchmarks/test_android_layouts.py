"""The Android layouts benchmark's page and plot, from a made-up record (no conversion here)."""

from benchmarks import android_layouts, common


def _result(params, size, latencies, macs=0.5):
    backbone_ms = 1.0
    signatures = {d: {"latency_ms": ms, "latency_ratio": ms / backbone_ms, "macs_ratio": macs,
                      "latency_per_macs": ms / backbone_ms / macs} for d, ms in latencies.items()}
    return {"params": params, "backbone_params": 1000, "params_ratio": params / 1000, "bytes": size,
            "backbone_bytes": 4000, "bytes_ratio": size / 4000, "backbone_latency_ms": backbone_ms,
            "signatures": signatures, "kept": params <= 1000 and size <= 4000 and max(latencies.values()) < 1}


def test_page_states_each_layout_against_the_backbone(tmp_path):
    record = common.start_record(android_layouts.NAME, True, {})
    record["shapes"] = {"pocket": {
        "per_domain": _result(1900, 7600, {"a": 0.6, "b": 0.7}),
        "shared": _result(430, 2000, {"a": 0.9, "b": 0.95}),
        "shared_filters": _result(540, 2300, {"a": 0.75, "b": 0.8}),
        "shared_filters_runs": _result(450, 2000, {"a": 0.65, "b": 0.7}),
    }}
    assert set(record["shapes"]["pocket"]) == set(android_layouts.LAYOUTS)  # the plot marks every layout
    record["plot"] = android_layouts.plot(record, tmp_path / "layouts.png").name
    page = android_layouts.markdown(record)
    assert (tmp_path / "layouts.png").stat().st_size > 0
    assert "| per_domain | 1,900 | x1.90 | 7.4 | x1.90 | x0.50-x0.50 | x0.60-x0.70 | 1.40 | no |" in page
    assert "| shared_filters | 540 | x0.54 | 2.2 | x0.57 | x0.50-x0.50 | x0.75-x0.80 | 1.60 | yes |" in page
    assert "Backbone (one, every domain's head): 1,000 parameters, 3.9 KiB, 1.00 ms." in page
