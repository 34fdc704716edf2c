"""Microcontroller budget check: does each domain's int8 model fit the target's flash and RAM?

What is counted (1 KiB = 1024 bytes):
- flash: the model file's bytes, the ``.tflite`` flatbuffer compiled into the firmware as a
  const array (weights, graph, quantization parameters).
- RAM: the TFLM tensor arena, the smallest arena the model ran in (``micro.find_arena_bytes``):
  activations, TFLM's runtime structs and kernel scratch buffers.
Not counted: the TFLM runtime and kernel code (flash), the stack, the application's own buffers
and any input staging copy (RAM). Pass as ``flash_kb`` / ``ram_kb`` what the board leaves for
the model and the arena once those are accounted for.
"""

KIB = 1024


class McuBudgetError(RuntimeError):
    """At least one domain does not fit; ``report`` holds the full result of the check."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def check_mcu_budget(flash_kb, ram_kb, footprints, *, enforce=False):
    """Compares each domain's (model bytes, arena bytes) with the flash and RAM budget.

    Args:
        flash_kb: flash available for one model, KiB.
        ram_kb: RAM available for the tensor arena, KiB.
        footprints: ``{domain: (model_bytes, arena_bytes)}`` (or a dict with those keys, as
            ``footprints_from_checks`` builds).
        enforce: raise ``McuBudgetError`` when a domain does not fit, instead of returning.

    Returns:
        ``{"flash_kb", "ram_kb", "fits", "domains": {domain: {"model_kb", "arena_kb",
        "flash_margin_kb", "ram_margin_kb", "fits_flash", "fits_ram", "fits"}}}``; a margin is
        budget minus use, so negative means over budget by that many KiB.
    """
    for name, value in (("flash_kb", flash_kb), ("ram_kb", ram_kb)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive number of KiB. Received: {name}={value!r}")
    if not footprints:
        raise ValueError("Expected at least one domain's footprint. Received: footprints={}")
    domains = {}
    for domain, footprint in footprints.items():
        model_bytes, arena_bytes = _footprint(domain, footprint)
        flash_margin = flash_kb - model_bytes / KIB
        ram_margin = ram_kb - arena_bytes / KIB
        domains[domain] = {
            "model_kb": model_bytes / KIB,
            "arena_kb": arena_bytes / KIB,
            "flash_margin_kb": flash_margin,
            "ram_margin_kb": ram_margin,
            "fits_flash": flash_margin >= 0,
            "fits_ram": ram_margin >= 0,
            "fits": flash_margin >= 0 and ram_margin >= 0,
        }
    report = {
        "flash_kb": float(flash_kb),
        "ram_kb": float(ram_kb),
        "fits": all(entry["fits"] for entry in domains.values()),
        "domains": domains,
    }
    if enforce and not report["fits"]:
        raise McuBudgetError(describe_failures(report), report)
    return report


def describe_failures(report):
    """One line per domain over budget, e.g. ``birds: flash over by 3.2 KiB``."""
    lines = []
    for domain, entry in report["domains"].items():
        overs = [
            f"{what} over by {-entry[key]:.1f} KiB"
            for what, key in (("flash", "flash_margin_kb"), ("RAM", "ram_margin_kb"))
            if entry[key] < 0
        ]
        if overs:
            lines.append(f"{domain}: {', '.join(overs)}")
    header = (
        f"Microcontroller budget exceeded (flash {report['flash_kb']:g} KiB for the model, "
        f"RAM {report['ram_kb']:g} KiB for the arena)."
    )
    return "\n".join([header, *lines]) if lines else header.replace("exceeded", "met")


def footprints_from_checks(check_results):
    """``{domain: (model_bytes, arena_bytes)}`` from ``checks.run_checks`` output."""
    return {
        domain: (entry["micro_model_bytes"], entry["arena_bytes"])
        for domain, entry in check_results["domains"].items()
        if entry["micro_model_bytes"] is not None
    }


def _footprint(domain, footprint):
    if isinstance(footprint, dict):
        footprint = (footprint.get("model_bytes"), footprint.get("arena_bytes"))
    try:
        model_bytes, arena_bytes = (int(value) for value in footprint)
    except (TypeError, ValueError):
        raise ValueError(
            "Each footprint must be (model_bytes, arena_bytes) as integers. "
            f"Received: {domain!r}: {footprint!r}"
        ) from None
    if model_bytes < 0 or arena_bytes < 0:
        raise ValueError(
            f"Footprint sizes cannot be negative. Received: {domain!r}: {footprint!r}"
        )
    return model_bytes, arena_bytes
