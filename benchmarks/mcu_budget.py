"""A microcontroller budget on the pocket benchmark: the main job trained to fit a board with
96 KiB of flash and 40 KiB of RAM for each domain's int8 model, against the main job itself.

Each seed runs two real chains (``benchmarks.pocket_runs``: resumable, every stage): the main
job (``flags/pocket.cfg``), whose int8 files take about 165 KiB and arenas 41-43 KiB, and the
same command with ``--budget_metric=mcu --mcu_flash_kb=96 --mcu_ram_kb=40``, which trains each
domain to the estimated file and arena (``bap_tf.budgets.mcu``). The record holds, per domain,
the estimate the training met, the int8 file's bytes and the smallest TFLM arena it runs in
(measured by the eval stage), whether both fit the board, and the accuracy of the pruned model
and of the int8 file in TFLM next to the main job's.

    python -m benchmarks.mcu_budget             # 1 seed: two main jobs, about 40 minutes on 2 cores
    python -m benchmarks.mcu_budget --seeds=3
    python -m benchmarks.mcu_budget --quick     # 2 epochs x 30 steps
"""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bap_tf.atomic import atomic_path  # noqa: E402
from benchmarks import common, pocket_runs  # noqa: E402

NAME = "mcu_budget"
LOSS, BUDGET = "jaccard", 0.5
FLASH_KB, RAM_KB = 96.0, 40.0
BOARD = {"budget_metric": "mcu", "mcu_flash_kb": FLASH_KB, "mcu_ram_kb": RAM_KB}
KIB = 1024


def domain_rows(run, estimates=None):
    """Per domain: int8 file and arena (KiB, measured), the estimate trained to, accuracies."""
    rows = {}
    for name, entry in run["report"]["domains"].items():
        estimate = (estimates or {}).get(name)
        rows[name] = {
            "int8_kib": entry["tflite_int8_bytes"] / KIB, "arena_kib": entry["tflm_arena_bytes"] / KIB,
            "estimate_flash_kib": None if estimate is None else estimate["flash_bytes"] / KIB,
            "estimate_ram_kib": None if estimate is None else estimate["ram_bytes"] / KIB,
            "accuracy_pruned": entry["accuracy_pruned"], "accuracy_tflm": entry["accuracy_tflm"],
        }
        rows[name]["fits"] = rows[name]["int8_kib"] <= FLASH_KB and rows[name]["arena_kib"] <= RAM_KB
    return rows


def measure(seeds, quick):
    """``[{"seed", "default": rows, "board": rows}]``, one per seed."""
    measured = []
    for seed in seeds:
        print(f"seed {seed}: the main job", flush=True)
        default = pocket_runs.run_pocket(LOSS, BUDGET, seed, quick, stages=pocket_runs.STAGES)
        print(f"seed {seed}: the main job on a {FLASH_KB:g} KiB flash, {RAM_KB:g} KiB RAM board", flush=True)
        board = pocket_runs.run_pocket(LOSS, BUDGET, seed, quick, stages=pocket_runs.STAGES, extra=BOARD)
        costs = json.loads((board["workdir"] / "pruned" / "costs.json").read_text())
        measured.append({"seed": seed, "default": domain_rows(default),
                         "board": domain_rows(board, costs.get("mcu_estimate"))})
    return measured


def summary(measured):
    """Means over seeds per domain and overall, and whether every domain fit at every seed."""
    domains = list(measured[0]["board"])
    result = {"fits_every_seed": all(row["fits"] for m in measured for row in m["board"].values()), "domains": {}}
    for domain in domains:
        entry = {}
        for kind in ("default", "board"):
            for key in ("int8_kib", "arena_kib", "accuracy_pruned", "accuracy_tflm"):
                entry[f"{kind}_{key}"] = common.mean([m[kind][domain][key] for m in measured])
        result["domains"][domain] = entry
    for key in ("accuracy_pruned", "accuracy_tflm"):
        for kind in ("default", "board"):
            result[f"{kind}_{key}"] = common.mean([e[f"{kind}_{key}"] for e in result["domains"].values()])
        result[f"{key}_cost"] = result[f"default_{key}"] - result[f"board_{key}"]
    return result


def plot(measured, path):
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    domains = list(measured[0]["board"])
    positions = range(len(domains))
    for axis, key, limit, label in ((axes[0], "int8_kib", FLASH_KB, "int8 file (KiB)"),
                                    (axes[1], "arena_kib", RAM_KB, "TFLM arena (KiB)")):
        for offset, kind, name in ((-0.2, "default", "main job"), (0.2, "board", "trained to the board")):
            values = [common.mean([m[kind][d][key] for m in measured]) for d in domains]
            axis.bar([p + offset for p in positions], values, width=0.4, label=name)
        axis.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"board: {limit:g} KiB")
        axis.set_xticks(list(positions), domains, fontsize=8)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Pocket benchmark: int8 models against a {FLASH_KB:g} KiB flash / {RAM_KB:g} KiB RAM board")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return path


def markdown(record):
    measured, result = record["measured"], record["summary"]
    rows = []
    for domain, entry in result["domains"].items():
        estimates = [m["board"][domain] for m in measured]
        rows.append([f"`{domain}`", f"{entry['default_int8_kib']:.1f}", f"{entry['board_int8_kib']:.1f}",
                     f"{common.mean([e['estimate_flash_kib'] for e in estimates]):.1f}",
                     f"{entry['default_arena_kib']:.1f}", f"{entry['board_arena_kib']:.1f}",
                     f"{common.mean([e['estimate_ram_kib'] for e in estimates]):.1f}",
                     common.verdict(all(e["fits"] for e in estimates)),
                     f"{common.fmt(entry['default_accuracy_pruned'])} → {common.fmt(entry['board_accuracy_pruned'])}",
                     f"{common.fmt(entry['default_accuracy_tflm'])} → {common.fmt(entry['board_accuracy_tflm'])}"])
    seeds = ", ".join(str(m["seed"]) for m in measured)
    return "\n".join([
        f"### A {FLASH_KB:g} KiB flash, {RAM_KB:g} KiB RAM board, pocket benchmark (seeds {seeds})", "",
        common.markdown_table(
            ["domain", "int8 file, main job", "int8 file, board", "its estimate", "arena, main job", "arena, board",
             "its estimate", "fits the board", "accuracy, pruned model", "accuracy, int8 in TFLM"], rows), "",
        "Sizes in KiB (means over the seeds): the file's bytes and the smallest TFLM arena it runs in, measured by "
        "the eval stage; the estimates are what training met (`bap_tf.budgets.mcu`). Accuracies on the test split, "
        "the main job's → trained to the board.", "",
        f"Every domain fits the board at every seed: **{'yes' if result['fits_every_seed'] else 'no'}**. The board "
        f"costs {result['accuracy_pruned_cost'] * 100:.1f} points of mean accuracy for the pruned model "
        f"({common.fmt(result['default_accuracy_pruned'])} → {common.fmt(result['board_accuracy_pruned'])}) and "
        f"{result['accuracy_tflm_cost'] * 100:.1f} for the int8 files in TFLM.", "",
        f"![mcu budget]({record['plot_name']})",
    ])


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=1, help="seeds (default 1)")
    args = parser.parse_args()
    record = common.start_record(NAME, args.quick, {"board": BOARD, "seeds": args.seeds}, module=NAME)
    record["measured"] = measure(list(range(args.seeds)), args.quick)
    record["summary"] = summary(record["measured"])
    record["plot_name"] = common.results_path(NAME, args.quick, "png", args.results_dir).name
    plot(record["measured"], common.results_path(NAME, args.quick, "png", args.results_dir))
    common.write_results(record, markdown(record), args.results_dir)


if __name__ == "__main__":
    main()
