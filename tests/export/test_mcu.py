"""Microcontroller budget: fit, margins, enforcement."""

import pytest

from bap_tf.export.mcu import McuBudgetError, check_mcu_budget, describe_failures

FOOTPRINTS = {"birds": (100 * 1024, 40 * 1024), "cars": (300 * 1024, 20 * 1024)}


def test_every_domain_fits_with_positive_margins():
    report = check_mcu_budget(512, 64, FOOTPRINTS)
    assert report["fits"]
    birds = report["domains"]["birds"]
    assert birds["fits"] and birds["model_kb"] == 100 and birds["arena_kb"] == 40
    assert birds["flash_margin_kb"] == 412 and birds["ram_margin_kb"] == 24
    assert report["domains"]["cars"]["flash_margin_kb"] == 212


def test_a_domain_over_budget_gets_negative_margins():
    report = check_mcu_budget(256, 32, FOOTPRINTS)
    assert not report["fits"]
    birds, cars = report["domains"]["birds"], report["domains"]["cars"]
    assert birds["fits_flash"] and not birds["fits_ram"] and birds["ram_margin_kb"] == -8
    assert not cars["fits_flash"] and cars["fits_ram"] and cars["flash_margin_kb"] == -44
    assert not birds["fits"] and not cars["fits"]


def test_margins_count_bytes_in_kib():
    report = check_mcu_budget(1, 1, {"d": (1024 + 512, 256)})
    assert report["domains"]["d"]["flash_margin_kb"] == -0.5
    assert report["domains"]["d"]["ram_margin_kb"] == 0.75


def test_enforcement_raises_with_the_report_and_each_failure():
    with pytest.raises(McuBudgetError) as raised:
        check_mcu_budget(256, 32, FOOTPRINTS, enforce=True)
    message = str(raised.value)
    assert "birds: RAM over by 8.0 KiB" in message
    assert "cars: flash over by 44.0 KiB" in message
    assert raised.value.report["fits"] is False


def test_enforcement_passes_when_everything_fits():
    report = check_mcu_budget(512, 64, FOOTPRINTS, enforce=True)
    assert report["fits"]
    assert describe_failures(report).startswith("Microcontroller budget met")


def test_footprints_may_be_dicts():
    report = check_mcu_budget(1, 1, {"d": {"model_bytes": 512, "arena_bytes": 1024}})
    assert report["domains"]["d"]["fits"] and report["domains"]["d"]["ram_margin_kb"] == 0


@pytest.mark.parametrize(
    "flash_kb, ram_kb, footprints, message",
    [
        (0, 64, FOOTPRINTS, "flash_kb must be a positive number of KiB. Received: flash_kb=0"),
        (64, -1, FOOTPRINTS, "ram_kb must be a positive number of KiB. Received: ram_kb=-1"),
        (64, 64, {}, "at least one domain"),
        (64, 64, {"d": (1, 2, 3)}, r"\(model_bytes, arena_bytes\).*Received: 'd'"),
        (64, 64, {"d": (-1, 2)}, "cannot be negative"),
    ],
)
def test_bad_budgets_and_footprints_are_rejected(flash_kb, ram_kb, footprints, message):
    with pytest.raises(ValueError, match=message):
        check_mcu_budget(flash_kb, ram_kb, footprints)
