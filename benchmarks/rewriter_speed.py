"""How long the rewriter takes on the paper's Visual Decathlon setting.

Builds a 10-domain ResNet-26 at full width (64/128/256 channels) on 64x64 inputs, sets random
switches with about half of them on, and times the rewriter: the dependency graph, the
union-pruned multi-domain model and one per-domain model (building the switched network is not
timed). Prints the figures and writes ``benchmarks/results/rewriter_speed.json``.

    .venv/bin/python benchmarks/rewriter_speed.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/rewriter_speed.py --quick    # 3 domains, width 16

Claim: the rewrite takes well under a minute on 2 CPU cores.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bap_tf import backbones, switching
from bap_tf.layers import ChannelGather, ChannelMask
from bap_tf.prune import Rewriter, report

RESULTS = Path(__file__).parent / "results" / "rewriter_speed.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 domains at width 16")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    num_domains, width, size = (3, 16, 32) if args.quick else (10, 64, 64)
    domains = [(f"domain{d}", 10 + d) for d in range(num_domains)]

    start = time.perf_counter()
    network = switching.build_switched_network(backbones.resnet26((size, size, 3), width=width), domains)
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    for layer in switching.switched_layers(network):
        layer.switches.assign(np.where(rng.uniform(size=layer.switches.shape) < 0.5, 0.5, -0.5).astype("float32"))

    timings = {}
    start = time.perf_counter()
    rewriter = Rewriter(network, domains)
    timings["dependency_s"] = time.perf_counter() - start
    start = time.perf_counter()
    union = rewriter.union_models()
    timings["union_s"] = time.perf_counter() - start
    start = time.perf_counter()
    own = rewriter.domain_model(0)
    timings["domain_model_s"] = time.perf_counter() - start
    timings["total_s"] = sum(timings.values())

    costs = report.prune_report(rewriter, union, {domains[0][0]: own})
    layers = [layer for model in union.values() for layer in model.layers]
    result = {
        "setting": {"backbone": "resnet26", "width": width, "image_size": size, "domains": num_domains,
                    "switch_fraction_on": 0.5, "quick": args.quick},
        "switched_network_build_s": build_s,
        **timings,
        "union_layers_per_domain": len(union[domains[0][0]].layers),
        "union_masks": sum(isinstance(layer, ChannelMask) for layer in layers),
        "union_gathers": len({id(layer) for layer in layers if isinstance(layer, ChannelGather)}),
        "union_ratio": costs["union_ratio"],
        "domain0_ratio": costs["domain_ratio"][domains[0][0]],
    }
    print(json.dumps(result, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
