"""The Android file's layouts against one unpruned backbone: stored parameters, bytes, latency.

The method's promise is every domain served with fewer parameters and less computation than
one backbone. Each layout of ``export.absorb.android_models`` is written for two shapes, with
random weights and synthetic switches (a random half of every conv's input channels shared by
all domains, each domain flipping ``FLIP`` of them: domains that agree on ~95 % of their
channels, as the sharing loss leaves them):

- ``pocket``: ResNet-26 width 16, 32 px, the pocket benchmark's 4 domains and class counts;
- ``decathlon10``: ResNet-26 width 64, 64 px, the 10 Visual Decathlon domains and class counts.

Layouts (``LAYOUTS``): ``per_domain`` (each domain's own pruned model, gathers absorbed),
``shared`` (the union model: weights once, masks, gathers and BatchNorms as extra ops) and
``shared_filters`` (every domain reads the whole union through zero kernel rows, as the prune
stage builds it for that layout: filters once, BatchNorms as 1x1 depthwise affines), and
``shared_filters_runs``, the same with ``--read_runs`` (each conv reads only the run of its input
that holds its channels, through a slice, the streams stored in the order that keeps runs short). The
baseline is the unpruned backbone (every switch on, the first domain's BatchNorms and head),
converted the same way; with the other domains' heads added it is one backbone that would
serve every domain. Per file (``export.promise.android_promise``): stored parameters (each
weight buffer once) and bytes against it; per signature, LiteRT latency (1 thread, batch 1,
every file of a shape timed in the same alternating rounds, medians) against the backbone's,
beside the signature's MACs ratio.

    python -m benchmarks.android_layouts           # both shapes: ~15 min on 2 cores (mostly conversions)
    python -m benchmarks.android_layouts --quick   # the pocket shape, fewer rounds: ~3 min
Files are cached in ``runs/benchmarks/android_layouts/<shape>/`` (delete it after changing the
rewriter or the layouts): a killed run converts only what is missing.
"""

from benchmarks import common

NAME = "android_layouts"
# row: (--android_layout, Rewriter options, every domain reads the whole union), as the prune stage builds each.
LAYOUTS = {
    "per_domain": ("per_domain", {}, False),
    "shared": ("shared", {}, False),
    "shared_filters": ("shared_filters", {"dense_reads": True}, True),
    "shared_filters_runs": ("shared_filters", {"dense_reads": True, "read_runs": True}, True),
}
SHAPES = {
    "pocket": {"width": 16, "image_size": 32,
               "domains": {"digits": 10, "letters": 26, "textures": 12, "photo_digits": 10}},
    "decathlon10": {"width": 64, "image_size": 64,
                    "domains": {"aircraft": 100, "cifar100": 100, "daimlerpedcls": 2, "dtd": 47, "gtsrb": 43,
                                "imagenet12": 1000, "omniglot": 1623, "svhn": 10, "ucf101": 101, "vgg-flowers": 102}},
}
SHARED, FLIP, SEED = 0.5, 0.025, 0
ROUNDS = {True: 6, False: 15}
ROUND_S = {True: 0.05, False: 0.1}
CACHE = common.ROOT / "runs" / "benchmarks" / NAME


def synthetic_network(shape):
    """The switched ResNet-26 of ``SHAPES[shape]`` with synthetic switches and BatchNorms."""
    import keras
    import numpy as np

    from bap_tf.backbones import resnet26
    from bap_tf.layers import DomainBatchNormalization
    from bap_tf.switching import build_switched_network, switched_layers

    keras.utils.set_random_seed(SEED)
    spec = SHAPES[shape]
    domains = list(spec["domains"].items())
    network = build_switched_network(resnet26((spec["image_size"],) * 2 + (3,), width=spec["width"]), domains)
    rng = np.random.default_rng(SEED)
    for layer in switched_layers(network):
        shared = rng.uniform(size=layer.switches.shape[1]) < SHARED
        rows = [shared ^ (rng.uniform(size=shared.shape) < FLIP) for _ in domains]
        magnitude = rng.uniform(0.05, 1.0, size=layer.switches.shape)
        layer.switches.assign(np.where(np.stack(rows), magnitude, -magnitude).astype("float32"))
    for layer in network.layers:  # per-domain BatchNorms that differ, as trained ones do
        if isinstance(layer, DomainBatchNormalization):
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype("float32"))
    return network, domains


def layout_files(shape):
    """``{layout or "backbone": (path, {domain: signature}, {domain: model})}``, converted once."""
    import numpy as np

    from bap_tf.domains import identifier
    from bap_tf.export.absorb import android_models
    from bap_tf.export.convert import export_android
    from bap_tf.prune import Rewriter
    from bap_tf.switching import gate_values

    network, domains = synthetic_network(shape)
    first = domains[0][0]
    ones = {name: np.ones_like(gates) for name, gates in gate_values(network).items()}
    models = {"backbone": {first: Rewriter(network, domains, gates=ones).domain_model(first)}}
    for row, (layout, options, whole_union) in LAYOUTS.items():
        rewriter = Rewriter(network, domains, **options)
        union = rewriter.union_models(domain_masks=not whole_union)
        models[row] = android_models(layout, union, rewriter.domain_models() if layout == "per_domain" else {})
    files = {}
    for layout, signatures in models.items():
        path = CACHE / shape / f"{layout}.tflite"
        if not path.exists():
            print(f"  converting {shape}/{path.name}", flush=True)
            export_android({identifier(d): m for d, m in signatures.items()}, path, variant="float32")
        files[layout] = (path, {d: identifier(d) for d in signatures}, signatures)
    return files, first


def measure(shape, quick):
    """One shape's rows: per layout, ``export.promise.android_promise`` of its file."""
    from bap_tf import costs
    from bap_tf.export.promise import android_promise, head_parameters
    from bap_tf.export.timing import signature_latencies

    files, first = layout_files(shape)
    backbone_path, _, backbone_models = files["backbone"]
    backbone_macs = costs.count_model(backbone_models[first]).macs
    timed = {("backbone", first): (backbone_path, files["backbone"][1][first])}
    for layout in LAYOUTS:
        path, signatures, _ = files[layout]
        timed.update({(layout, d): (path, s) for d, s in signatures.items()})
    print(f"timing {len(timed)} {shape} signatures", flush=True)
    latency = signature_latencies(timed, threads=1, rounds=ROUNDS[quick], round_s=ROUND_S[quick])
    results = {}
    for layout in LAYOUTS:
        path, signatures, models = files[layout]
        results[layout] = android_promise(
            path, backbone_path, first, {d: head_parameters(m) for d, m in models.items()},
            {"backbone": latency[("backbone", first)], **{d: latency[(layout, d)] for d in signatures}},
            {d: costs.count_model(m).macs / backbone_macs for d, m in models.items()},
        )
    return results


def markdown(record):
    lines = [f"# {NAME}", "", common.describe_run(record), ""]
    for shape, results in record["shapes"].items():
        spec = SHAPES[shape]
        lines += [f"## {shape}: ResNet-26 width {spec['width']}, {spec['image_size']} px, "
                  f"{len(spec['domains'])} domains",
                  "", f"Backbone (one, every domain's head): {next(iter(results.values()))['backbone_params']:,} "
                  f"parameters, {next(iter(results.values()))['backbone_bytes'] / 1024:.1f} KiB, "
                  f"{next(iter(results.values()))['backbone_latency_ms']:.2f} ms.", ""]
        rows = []
        for layout, result in results.items():
            signatures = result["signatures"].values()
            latency = [s["latency_ratio"] for s in signatures]
            per_macs = [s["latency_per_macs"] for s in signatures]
            macs = [s["macs_ratio"] for s in signatures]
            rows.append([layout, f"{result['params']:,}", f"x{result['params_ratio']:.2f}",
                         f"{result['bytes'] / 1024:.1f}", f"x{result['bytes_ratio']:.2f}",
                         f"x{min(macs):.2f}-x{max(macs):.2f}", f"x{min(latency):.2f}-x{max(latency):.2f}",
                         f"{max(per_macs):.2f}", "yes" if result["kept"] else "no"])
        lines.append(common.markdown_table(
            ["layout", "stored params", "vs backbone", "KiB", "vs backbone", "MACs per signature",
             "latency per signature", "max latency ÷ MACs", "fewer params and bytes, every signature faster"],
            rows, align="lrrrrrrrl"))
        lines.append("")
    lines += [f"![layouts]({record['plot']})", ""]
    return "\n".join(lines)


def plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(record["shapes"])
    figure, axes = plt.subplots(1, len(shapes), figsize=(5.5 * len(shapes), 4), squeeze=False)
    for axis, shape in zip(axes[0], shapes):
        for index, (layout, result) in enumerate(record["shapes"][shape].items()):
            ratios = [s["latency_ratio"] for s in result["signatures"].values()]
            axis.scatter([result["bytes_ratio"]] * len(ratios), ratios, label=layout, marker="os^D"[index], alpha=0.7)
        axis.axhline(1.0, color="grey", linestyle=":")
        axis.axvline(1.0, color="grey", linestyle=":")
        axis.set_xlabel("file bytes / one backbone with every head")
        axis.set_ylabel("signature latency / backbone's (1 thread)")
        axis.set_title(shape)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main():
    args = common.parser(__doc__).parse_args()
    shapes = ("pocket",) if args.quick else tuple(SHAPES)
    record = common.start_record(NAME, args.quick, {"shapes": shapes, "shared": SHARED, "flip": FLIP, "seed": SEED,
                                                    "rounds": ROUNDS[args.quick], "round_s": ROUND_S[args.quick]})
    record["shapes"] = {shape: measure(shape, args.quick) for shape in shapes}
    png = plot(record, common.results_path(NAME, args.quick, "png", args.results_dir))
    record["plot"] = png.name
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()
