"""benchmarks.collect: the benchmarks README's section from the result pages."""

from benchmarks import collect, common


def test_a_page_moves_one_heading_level_down_and_its_images_keep_pointing_at_them(tmp_path, monkeypatch):
    (tmp_path / "frontier.md").write_text(
        "<!-- written by `python -m benchmarks.frontier`; do not edit -->\n## Frontier\n\n"
        "![frontier](frontier.png) ![elsewhere](https://example.org/x.png)\n")
    monkeypatch.setattr(common, "results_path",
                        lambda name, quick, suffix: tmp_path / f"{name}{'-quick' * quick}.{suffix}")
    text, path = collect.page("frontier")
    assert path == tmp_path / "frontier.md"
    assert text == f"### Frontier\n\n![frontier]({tmp_path.name}/frontier.png) ![elsewhere](https://example.org/x.png)"
    assert collect.page("latency") == (None, None)


def test_the_frontier_targets_come_from_its_latest_results(monkeypatch):
    record = {"mode": "full",
              "comparison": {"union": {"min_gap": -0.018, "above": False},
                             "jaccard": {"min_gap": -0.003, "above": False}, "intersection": None},
              "sharing": {"union": {"macs_ratio": 0.397, "accuracy_gap": -0.041, "met": False},
                          "jaccard": {"macs_ratio": 0.369, "accuracy_gap": -0.008, "met": True}}}
    monkeypatch.setattr(collect, "latest", lambda name: record if name == "frontier" else None)
    table = collect.targets()
    frontier_row, sharing_row = table.splitlines()[2:]
    assert "`jaccard`: smallest gap -0.3 points" in frontier_row and common.verdict(False) in frontier_row
    assert "`union` MACs 0.397, Δacc -4.1; `jaccard` MACs 0.369, Δacc -0.8" in sharing_row
    assert f"{common.verdict(True)} (by jaccard)" in sharing_row
