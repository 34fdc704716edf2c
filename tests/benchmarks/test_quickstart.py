"""The quickstart benchmark's code and page, from a made-up run (the block itself runs in
tests/test_readme.py)."""

from benchmarks import common, quickstart


def test_quick_mode_runs_the_readme_block_at_its_tiny_sizes():
    full, tiny = quickstart.quickstart_code(False), quickstart.quickstart_code(True)
    assert quickstart.TINY not in full and quickstart.TINY in tiny
    assert full.replace(quickstart.SIZES.search(full)[0], quickstart.TINY) == tiny


def test_page_shows_the_sizes_time_and_printed_lines():
    record = common.start_record(quickstart.NAME, True, {})
    record["seconds"], record["printed"] = 90.0, ["union model: 0.410 of the backbone's params, 0.440 of its MACs"]
    page = quickstart.markdown(record)
    assert f"`{quickstart.TINY}`; 1.5 min on this machine" in page
    assert "```\nunion model: 0.410 of the backbone's params, 0.440 of its MACs\n```" in page
