"""The MCU-budget benchmark's summary, page and plot, on made-up runs (no training)."""

from benchmarks import mcu_budget


def _rows(int8_kib, arena_kib, accuracy, estimate=True):
    rows = {}
    for domain in ("digits", "letters"):
        rows[domain] = {"int8_kib": int8_kib, "arena_kib": arena_kib, "accuracy_pruned": accuracy,
                        "accuracy_tflm": accuracy - 0.01,
                        "estimate_flash_kib": int8_kib + 1 if estimate else None,
                        "estimate_ram_kib": arena_kib + 1 if estimate else None}
        rows[domain]["fits"] = int8_kib <= mcu_budget.FLASH_KB and arena_kib <= mcu_budget.RAM_KB
    return rows


def test_summary_page_and_plot(tmp_path):
    measured = [{"seed": 0, "default": _rows(165.0, 42.0, 0.90, estimate=False), "board": _rows(90.0, 38.0, 0.85)},
                {"seed": 1, "default": _rows(166.0, 43.0, 0.92, estimate=False), "board": _rows(95.0, 39.0, 0.87)}]
    result = mcu_budget.summary(measured)
    assert result["fits_every_seed"]
    assert abs(result["accuracy_pruned_cost"] - 0.05) < 1e-9
    assert result["domains"]["digits"]["board_int8_kib"] == 92.5
    page = mcu_budget.markdown({"measured": measured, "summary": result, "plot_name": "mcu_budget.png"})
    assert "| `digits` | 165.5 | 92.5 | 93.5 |" in page and "**yes**" in page and "5.0 points" in page
    assert mcu_budget.plot(measured, tmp_path / "plot.png").stat().st_size > 0
    # A domain over the board at one seed: not every seed fits.
    measured[1]["board"]["letters"].update(arena_kib=41.0, fits=False)
    assert not mcu_budget.summary(measured)["fits_every_seed"]
