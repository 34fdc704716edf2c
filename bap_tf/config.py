"""The configuration of a bap-tf run: one frozen dataclass per command, defaults in one place.

The commands (``bap_tf.cli``) build these from flags; the library (``bap_tf.run``) reads them
and never reads flags. A config validates itself on construction, so a wrong value fails with
a message naming it before any work starts. ``resolve`` fills the values that depend on the
dataset (its standard domains and image size); the resolved config is what a run writes to
``WORKDIR/config.json`` and what a later stage reads back.

Flag names are field names: ``--budget`` sets ``ExperimentConfig.budget``. Each field is
documented once, by ``setting``: its default, the help text of its flag and the flag's bounds;
``bap_tf.cli.flags`` defines the flags from that.
"""

import dataclasses
import json
import math
import os
from pathlib import Path

from bap_tf.domains import check_domain_names  # a module without TensorFlow

# Names the library defines; repeated here so that building and validating a config (and so a
# command's --help and its flag errors) does not import TensorFlow. tests/cli/test_config.py
# checks that each one equals the library's own constant.
# The same as bap_tf.backbones.BACKBONES.
BACKBONES = ("resnet26", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
BUDGET_METRICS = ("macs", "params", "latency", "mcu")  # bap_tf.budgets.BUDGET_METRICS
SHARING_LOSSES = ("none", "union", "intersection", "jaccard")  # bap_tf.losses.SHARING_LOSSES
POCKET_SOURCE = "fashion_mnist"  # bap_tf.data.pocket.POCKET_SOURCE
POCKET_DOMAINS = ("digits", "letters", "textures", "photo_digits")  # keys of bap_tf.data.pocket.POCKET_DOMAINS
DECATHLON_DOMAINS = (  # bap_tf.data.tfds_loaders.DECATHLON_DOMAINS
    "aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb",
    "imagenet12", "omniglot", "svhn", "ucf101", "vgg-flowers",
)
DECATHLON_IMAGE_SIZE = 72  # bap_tf.data.tfds_loaders.DECATHLON_IMAGE_SIZE
IMAGENET_TO_SKETCH = ("imagenet", "cubs", "stanford_cars", "flowers")  # keys of tfds_loaders.IMAGENET_TO_SKETCH
IMAGENET_TO_SKETCH_FOLDERS = ("wikiart", "sketch")  # bap_tf.data.tfds_loaders.IMAGENET_TO_SKETCH_FOLDERS
IMAGENET_TO_SKETCH_IMAGE_SIZE = 224  # bap_tf.data.tfds_loaders.IMAGENET_TO_SKETCH_IMAGE_SIZE

DATASETS = ("pocket", "decathlon", "imagenet_sketch", "folders")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
STAGES = ("train", "prune", "export", "eval")
# What bap-export writes: the Android file (float32, dynamic-range) and per-domain int8 files,
# post-training ("int8") or quantization-aware ("qat", needs the [qat] extra).
QUANTIZE_VARIANTS = ("float32", "dynamic", "int8", "qat")
PRETRAIN_SOURCES = (POCKET_SOURCE, "imagenet")
FINETUNE_LAYERS = ("all", "batchnorm_heads")  # bap_tf.prune.finetune.FINETUNE_LAYERS
FINETUNE_SCHEDULES = ("constant", "cosine")  # bap_tf.prune.finetune.FINETUNE_SCHEDULES
# The Android file (bap_tf.export.absorb.android_models): each domain's own model, the union
# model with its channel masks, or the union model read whole by every domain; "auto" is the
# last when the reduced models are fine-tuned (they must adapt to it), else the first, and the
# first under a latency budget (each signature then runs its own domain's channels, the
# latency the budget bounds, rather than the union's).
ANDROID_LAYOUTS = ("auto", "per_domain", "shared", "shared_filters")


def resolve_android_layout(layout, finetune_epochs, budget_metric="macs"):
    """The layout ``"auto"`` stands for (see ``ANDROID_LAYOUTS``); any other as it is."""
    if layout != "auto":
        return layout
    return "shared_filters" if finetune_epochs and budget_metric != "latency" else "per_domain"

# The standard image size of each dataset (--image_size=0 picks it).
DEFAULT_IMAGE_SIZE = {
    "pocket": 32,
    "decathlon": DECATHLON_IMAGE_SIZE,
    "imagenet_sketch": IMAGENET_TO_SKETCH_IMAGE_SIZE,
    "folders": 64,
}
# ImageNet-to-Sketch targets (ImageNet itself is the source; add it with --domains if wanted).
IMAGENET_SKETCH_TARGETS = ("cubs", "stanford_cars", "flowers", "wikiart", "sketch")
# The fields that define what a workdir holds: a later command on the same workdir may not
# change them (it would read a model trained for other domains, another backbone or budget).
IDENTITY_FIELDS = (
    "dataset", "domains", "test_fraction", "image_size", "backbone", "width", "pretrained",
    "budget", "budget_metric", "latency_table", "budget_ms", "sharing_loss", "sharing_weight",
)


def _fail(name, value, expected):
    raise ValueError(f"{name} must be {expected}. Received: {name}={value!r}")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"an integer >= {minimum}")


def _check_number(name, value, minimum=0.0, strict=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        _fail(name, value, f"a finite number {'>' if strict else '>='} {minimum:g}")


def _check_choice(name, value, choices):
    if value not in choices:
        _fail(name, value, f"one of {list(choices)}")


def setting(default, help, *, choices=None, lower_bound=None, upper_bound=None, positive=False, flag=True):
    """A config field, documented once: its default and the help text of its flag.

    ``bap_tf.cli.flags`` defines a flag of the field's name from this metadata. The field's
    type picks the flag's: ``bool``, ``int``, ``float``, ``str`` (an enum when ``choices`` is
    given) or ``tuple`` (a comma list, each item among ``choices`` when given).
    ``lower_bound`` and ``upper_bound`` bound a number flag, ``positive=True`` requires it
    to be > 0, and ``flag=False`` is a field that no flag sets. The config's own checks
    (``__post_init__``) apply to every value, from flags or from ``config.json``.

    Args:
        default: the field's default value (immutable: a tuple, not a list).
        help: what the flag's ``--help`` says.
        choices: the values a ``str`` field, or each item of a ``tuple`` field, may take.
        lower_bound: the smallest value a number flag accepts.
        upper_bound: the largest value a number flag accepts.
        positive: whether a number flag must be > 0.
        flag: whether the field has a flag.

    Returns:
        A ``dataclasses.field`` carrying these in its ``metadata``.
    """
    metadata = {"help": help, "flag": flag}
    for key, value in (("choices", choices), ("lower_bound", lower_bound), ("upper_bound", upper_bound)):
        if value is not None:
            metadata[key] = value
    if positive:
        metadata["positive"] = True
    return dataclasses.field(default=default, metadata=metadata)


def known_domains(dataset):
    """The domain names ``dataset`` can load (``None`` for ``folders``: any sub-folder)."""
    if dataset == "pocket":
        return POCKET_DOMAINS
    if dataset == "decathlon":
        return DECATHLON_DOMAINS
    if dataset == "imagenet_sketch":
        return IMAGENET_TO_SKETCH + IMAGENET_TO_SKETCH_FOLDERS
    return None


def default_domains(dataset, folders_root=None):
    """A dataset's standard domains: all pocket targets, all ten Decathlon domains, the five
    ImageNet-to-Sketch targets, or every sub-folder of ``folders_root``."""
    if dataset == "pocket":
        return POCKET_DOMAINS
    if dataset == "decathlon":
        return DECATHLON_DOMAINS
    if dataset == "imagenet_sketch":
        return IMAGENET_SKETCH_TARGETS
    if not folders_root or not os.path.isdir(folders_root):
        raise FileNotFoundError(
            "dataset='folders' needs folders_root: a folder holding <domain>/train/<class>/* and "
            f"<domain>/test/<class>/* (or <domain>/<class>/*). Received: folders_root={folders_root!r}"
        )
    names = sorted(n for n in os.listdir(folders_root)
                   if os.path.isdir(os.path.join(folders_root, n)) and not n.startswith("."))
    if not names:
        raise ValueError(
            "folders_root has no domain sub-folders. Expected <domain>/{train,test}/<class>/* or "
            f"<domain>/<class>/*. Received: folders_root={folders_root!r}"
        )
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One multi-domain budget-aware run: data, backbone, method, training, pruning, export, eval.

    Zero / empty values mean "the dataset's standard choice" where noted; ``resolve()`` makes
    them explicit.
    """

    # -- data ---------------------------------------------------------------------------
    dataset: str = setting(
        "pocket",
        "pocket: the offline pocket benchmark (4 small domains, no download); decathlon: Visual Decathlon "
        "(tfds visual_domain_decathlon); imagenet_sketch: ImageNet-to-Sketch (tfds + --folders_root for "
        "wikiart/sketch); folders: --folders_root/<domain>/{train,test}/<class>/*, or <domain>/<class>/* "
        "split with --test_fraction.",
        choices=DATASETS,
    )
    domains: tuple = setting(  # empty: resolve() fills in default_domains(dataset)
        (),
        "Comma list of target domains, in the order of their domain index. Empty: the dataset's standard "
        f"domains (pocket: {','.join(POCKET_DOMAINS)}; decathlon: all ten; imagenet_sketch: "
        "cubs,stanford_cars,flowers,wikiart,sketch; folders: every sub-folder).",
    )
    data_dir: str = setting(
        "", "tfds data_dir (prepared data sets). For pocket: its cache folder (empty: ~/.cache/bap_tf/pocket)."
    )
    manual_dir: str = setting("", "tfds manual_dir: archives tfds cannot download (ImageNet).")
    folders_root: str = setting(
        "",
        "Root of folder domains: <root>/<domain>/train/<class>/*.png and <root>/<domain>/test/<class>/*.png "
        "(dataset=folders, or ImageNet-to-Sketch's wikiart/sketch); for folders also "
        "<root>/<domain>/<class>/*.png, split with --test_fraction.",
    )
    test_fraction: float = setting(
        0.2,
        "Folder domains without train/test folders: the share of each class's images held out for test "
        "(seeded by --seed, recorded in WORKDIR/splits/).",
    )
    image_size: int = setting(  # 0: resolve() fills in DEFAULT_IMAGE_SIZE[dataset]
        0,
        "Square input size in pixels; 0: the dataset's standard size (pocket 32, decathlon 72, "
        "imagenet_sketch 224, folders 64).",
        lower_bound=0,
    )
    augment: bool = setting(True, "Random translations (and flips where a domain allows) in training.")
    validation_fraction: float = setting(
        0.1,
        "Share of each domain's training split held back (seeded, per domain): the best epoch of training and "
        "of fine-tuning is kept on it, and the baselines choose their settings on it; 0: nothing held back, "
        "the last epoch is kept and the baselines take their first setting.",
        lower_bound=0.0,
        upper_bound=0.49,
    )
    # -- backbone -----------------------------------------------------------------------
    backbone: str = setting("resnet26", "The frozen pre-trained CNN.", choices=BACKBONES)
    width: int = setting(
        16,
        "resnet26 only: channels of the first stage (64 in the paper; the shipped pocket backbone has 16).",
        lower_bound=1,
    )
    pretrained: str = setting(
        "",
        "Backbone weights file (bap-pretrain's output, or a Keras Applications *_notop.h5). Empty: the "
        "backbone shipped for the pocket benchmark (resnet26, width 16, 32 px); 'none': random weights "
        "(tests only).",
    )
    # -- method (docs/method.md sections 2-4) --------------------------------------------
    budget: float = setting(
        0.5,
        "Budget beta in (0, 1]: fraction of the switchable cost each domain may keep.",
        upper_bound=1.0,
        positive=True,
    )
    budget_metric: str = setting(
        "macs",
        "What the budget measures: macs or params (of each switched kernel slice), latency (milliseconds "
        "on a target, from --latency_table), or mcu (each domain's int8 file within --mcu_flash_kb and its "
        "TFLM arena within --mcu_ram_kb, estimated in training, measured in eval; --budget is not used).",
        choices=BUDGET_METRICS,
    )
    latency_table: str = setting(
        "",
        "Latency table of the backbone's switched convs on the target (bap-latency-table's JSON, measured here "
        "or on a phone); needed by --budget_metric=latency.",
    )
    budget_ms: float = setting(
        0.0,
        "With --budget_metric=latency: each domain's budget in milliseconds on the table's target (instead of "
        "--budget, a fraction of the backbone's latency); 0: use --budget.",
        lower_bound=0.0,
    )
    # jaccard by default: more accurate and cheaper than union (benchmarks/results/recipes.md).
    sharing_loss: str = setting(
        "jaccard",
        "Parameter-sharing loss: union, intersection, jaccard, or none (BA2 trained jointly).",
        choices=SHARING_LOSSES,
    )
    sharing_weight: float = setting(
        None,
        "Fixed weight alpha of the sharing loss. Unset: learnable alpha (dual ascent on the union exceeding "
        "the budget).",
        lower_bound=0.0,
    )
    multiplier_rate: float = setting(
        2.0, "Step eta_lambda of the budget multipliers' dual ascent.", lower_bound=0.0
    )
    sharing_rate: float = setting(0.5, "Step eta_alpha of the learnable sharing weight.", lower_bound=0.0)
    warmup_epochs: int = setting(
        0,
        "First epochs in which only the BatchNorms and heads train (switches still, budget multipliers "
        "lambda and sharing weight alpha held at 0).",
        lower_bound=0,
    )
    max_sharing_weight: float = setting(
        0.0, "Cap of the learnable sharing weight alpha; 0: no cap.", lower_bound=0.0
    )
    # -- training -------------------------------------------------------------------------
    epochs: int = setting(8, "Training epochs. A larger value on an existing workdir trains on.", lower_bound=1)
    steps_per_epoch: int = setting(
        0, "Steps per epoch of training and of fine-tuning; 0: one pass over the largest domain.", lower_bound=0
    )
    batch_size: int = setting(
        32,
        "Images per domain per step; the global batch is batch_size x number of domains.",
        lower_bound=1,
    )
    learning_rate: float = setting(
        1e-2, "Adam learning rate of the domain BatchNorms and heads.", positive=True
    )
    switch_learning_rate: float = setting(
        1e-2, "Learning rate of the switches (Adam without momentum).", positive=True
    )
    seed: int = setting(
        0, "Random seed (keras.utils.set_random_seed, data order, augmentation).", lower_bound=0
    )
    strategy: str = setting(
        "default",
        "tf.distribute strategy: default (one device), mirrored (local GPUs), multi_worker "
        "(TF_CONFIG workers), tpu (--tpu).",
        choices=STRATEGIES,
    )
    tpu: str = setting("", "TPU name or grpc:// address for --strategy=tpu (empty: the local TPU).")
    # -- prune ----------------------------------------------------------------------------
    # The fine-tuning's recipe, chosen on held-back data (benchmarks/results/finetune_recipe.md):
    # 1.6e-3 decayed by a cosine (over 8e-4 held), 16 epochs with the training's augmentation (over
    # 8 epochs without it, the length first chosen on a test split, and over either change alone).
    # The batch, 128, is benchmarks/results/recipes.md's; held-back data did not vary it.
    finetune_epochs: int = setting(
        16, "Epochs of fine-tuning the reduced models after pruning (all layers); 0: off.", lower_bound=0
    )
    finetune_learning_rate: float = setting(1.6e-3, "Adam learning rate of the fine-tuning.", positive=True)
    finetune_batch_size: int = setting(
        128,
        "Per-domain batch size of the fine-tuning; 0: --batch_size (larger batches: fewer, cheaper steps).",
        lower_bound=0,
    )
    finetune_layers: str = setting(
        "all",
        "What the fine-tuning trains: all layers, or only the BatchNorms and heads (the convolutions stay "
        "as pre-trained).",
        choices=FINETUNE_LAYERS,
    )
    finetune_schedule: str = setting(
        "cosine",
        "Learning rate of the fine-tuning: constant, or cosine decay from --finetune_learning_rate to 0 "
        "over the fine-tuning's steps.",
        choices=FINETUNE_SCHEDULES,
    )
    finetune_augment: bool = setting(
        True,
        "Augment the fine-tuning's training images as the training stage does (--augment: random "
        "translations, flips where the domain allows them), seeded by --seed; held-back and test data stay "
        "as they are.",
    )
    # bap_tf.prune.distill. Off by default for its cost; the pocket main job, which measures the
    # baselines anyway, turns it on (0.5, chosen on held-back data: benchmarks/results/finetune_recipe.md).
    distill_weight: float = setting(
        0.0,
        "Share of the fine-tuning loss that distils each domain's per-domain fine-tuning baseline (its "
        "teacher, measured before the fine-tuning and cached across runs); 0: off. Costs one whole-backbone "
        "fine-tuning per domain (minutes at pocket size, days at Visual Decathlon's).",
        lower_bound=0.0,
        upper_bound=1.0,
    )
    whole_union: bool = setting(
        False,
        "In the union-pruned model every domain reads all the channels the union keeps (no per-domain "
        "channel masks: the shared convs compute them anyway), and the fine-tuning adapts it; needs "
        "--finetune_epochs > 0.",
    )
    channel_multiple: int = setting(
        1,
        "Round every kept channel stream of the reduced models up to a multiple of this (XNNPACK computes "
        "whole tiles of 16 float32 channels on AVX2, 32 on AVX-512); the extra channels count in the "
        "reported params and MACs. 1: off.",
        lower_bound=1,
    )
    dense_reads: bool = setting(
        False,
        "Convs read their input's whole kept stream with zero kernel rows for the channels they drop, "
        "instead of a channel gather (which XNNPACK does not run).",
    )
    read_runs: bool = setting(
        False,
        "With --dense_reads or the shared_filters Android layout: each conv reads only the shortest run of "
        "its input's kept stream that holds its channels (a slice), every stream stored in the order that "
        "keeps its readers' runs short: fewer zero kernel rows, fewer MACs and parameters (the main job's "
        "union model over 3 seeds: 0.38 of the backbone's MACs instead of 0.47) for about a point of "
        "accuracy after the fine-tuning, on held-back data.",
    )
    # -- export ---------------------------------------------------------------------------
    quantize: tuple = setting(
        ("float32", "dynamic", "int8"),
        "Comma list of export variants: float32 and dynamic (the Android multi-signature file), int8 "
        "(per-domain full-int8 files for microcontrollers), qat (the same after quantization-aware "
        "fine-tuning; needs the [qat] extra).",
        choices=QUANTIZE_VARIANTS,
    )
    # shared_filters: bap_tf.export.absorb.android_models; the prune stage builds its union model.
    android_layout: str = setting(
        "auto",
        "The Android file: auto (shared_filters when the reduced models are fine-tuned, --finetune_epochs > "
        "0, and the budget is not a latency budget; else per_domain), per_domain (each domain's own model as "
        "its signature, gathers absorbed into the convs, BatchNorms folded, no masks: fast, a model per "
        "domain), shared (the union model, weights stored once, per-domain masks, gathers and BatchNorms as "
        "extra ops: slower) or shared_filters (the union model in which every domain reads all the union's "
        "channels, with zero kernel rows instead of gathers, fine-tuned so in the prune stage: every filter "
        "stored once, each domain adds a 1x1 depthwise affine per BatchNorm and its head; needs "
        "--finetune_epochs > 0).",
        choices=ANDROID_LAYOUTS,
    )
    calibration_examples: int = setting(
        256,
        "Training images per domain that calibrate the int8 quantization.",
        lower_bound=1,
    )
    qat_epochs: int = setting(1, "Epochs of quantization-aware fine-tuning (--quantize=qat).", lower_bound=1)
    # -- eval -----------------------------------------------------------------------------
    eval_examples: int = setting(
        0,
        "Test images per domain on which the exported files run in LiteRT and TFLM; 0: all. (Keras "
        "accuracies always use the whole test split.)",
        lower_bound=0,
    )
    reference_errors: str = setting(
        "",
        "JSON file {domain: error fraction} of the S-score's reference. Empty: measured in the run: "
        "per-domain fine-tuning of the whole backbone (--baselines), else the frozen backbone + a linear "
        "classifier per domain.",
    )
    baselines: bool = setting(
        True,
        "Measure the per-domain fine-tuning baseline (the whole backbone and a head per domain, the run's "
        "epochs) in the eval stage, next to the feature extractor: the S-score's reference unless "
        "--reference_errors is given. A few minutes at pocket size, far longer on real benchmarks: "
        "--nobaselines for large runs.",
    )
    mcu_flash_kb: float = setting(1024.0, "Flash (KiB) a microcontroller leaves for one int8 model.", positive=True)
    mcu_ram_kb: float = setting(256.0, "RAM (KiB) a microcontroller leaves for the TFLM tensor arena.", positive=True)
    enforce_mcu_budget: bool = setting(
        False,
        "Fail (exit code 3) when a domain's int8 model does not fit --mcu_flash_kb / --mcu_ram_kb (the "
        "report is written first).",
    )

    def __post_init__(self):
        # Lists from JSON or flags become tuples, so the config stays hashable and comparable.
        object.__setattr__(self, "domains", tuple(self.domains))
        object.__setattr__(self, "quantize", tuple(self.quantize))
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_choice("budget_metric", self.budget_metric, BUDGET_METRICS)
        _check_choice("sharing_loss", self.sharing_loss, SHARING_LOSSES)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("finetune_layers", self.finetune_layers, FINETUNE_LAYERS)
        _check_choice("finetune_schedule", self.finetune_schedule, FINETUNE_SCHEDULES)
        _check_choice("android_layout", self.android_layout, ANDROID_LAYOUTS)
        object.__setattr__(self, "android_layout", resolve_android_layout(self.android_layout, self.finetune_epochs,
                                                                           self.budget_metric))
        budget = self.budget
        if not (isinstance(budget, (int, float)) and not isinstance(budget, bool) and 0.0 < budget <= 1.0):
            _fail("budget", self.budget, "a fraction in (0, 1]")
        if self.sharing_weight is not None:
            _check_number("sharing_weight", self.sharing_weight)
        for name in ("multiplier_rate", "sharing_rate", "max_sharing_weight"):
            _check_number(name, getattr(self, name))
        for name in ("learning_rate", "switch_learning_rate", "finetune_learning_rate", "mcu_flash_kb", "mcu_ram_kb"):
            _check_number(name, getattr(self, name), strict=True)
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("width", 1), ("steps_per_epoch", 0),
                              ("seed", 0), ("finetune_epochs", 0), ("finetune_batch_size", 0),
                              ("calibration_examples", 1), ("qat_epochs", 1), ("eval_examples", 0), ("image_size", 0),
                              ("warmup_epochs", 0), ("channel_multiple", 1)):
            _check_int(name, getattr(self, name), minimum)
        _check_number("validation_fraction", self.validation_fraction)
        if self.validation_fraction >= 0.5:
            _fail("validation_fraction", self.validation_fraction, "a fraction in [0, 0.5)")
        _check_number("distill_weight", self.distill_weight)
        if self.distill_weight > 1:
            _fail("distill_weight", self.distill_weight, "a fraction in [0, 1]")
        if self.distill_weight and not self.finetune_epochs:
            _fail("distill_weight", self.distill_weight,
                  "0 when finetune_epochs=0 (distillation happens in the fine-tuning)")
        if self.android_layout == "shared_filters" and not self.finetune_epochs:
            _fail("android_layout", self.android_layout, "per_domain or shared when finetune_epochs=0 (shared_filters "
                  "changes the union model, and the fine-tuning adapts it)")
        if self.read_runs and not (self.dense_reads or self.android_layout == "shared_filters"):
            _fail("read_runs", self.read_runs, "used with --dense_reads or --android_layout=shared_filters (runs are "
                  "what a dense read reads)")
        if self.whole_union and not self.finetune_epochs:
            _fail("whole_union", self.whole_union, "used with finetune_epochs > 0 (each domain's BatchNorms and head "
                  "must adapt to the channels it gains)")
        self._check_latency_budget()
        if self.warmup_epochs >= self.epochs:
            _fail("warmup_epochs", self.warmup_epochs, f"fewer than epochs={self.epochs} (the switches must train)")
        test_fraction = self.test_fraction
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            _fail("test_fraction", self.test_fraction, "a fraction in (0, 1)")
        if 0 < self.image_size < 8:
            _fail("image_size", self.image_size, "0 (the dataset's standard size) or at least 8 pixels")
        for variant in self.quantize:
            _check_choice("quantize", variant, QUANTIZE_VARIANTS)
        if len(set(self.quantize)) != len(self.quantize):
            _fail("quantize", ",".join(self.quantize), "a list without repeats")
        self._check_domains()
        if self.dataset == "folders" and not self.folders_root:
            _fail("folders_root", self.folders_root,
                  "a folder of <domain>/{train,test}/<class>/ or <domain>/<class>/ images when dataset='folders'")

    def _check_latency_budget(self):
        _check_number("budget_ms", self.budget_ms)
        if self.budget_metric == "latency":
            if not self.latency_table:
                _fail("latency_table", self.latency_table,
                      "a latency table file with budget_metric='latency' (make one with bap-latency-table)")
            if not Path(self.latency_table).is_file():
                _fail("latency_table", self.latency_table, "an existing file (bap-latency-table's output)")
        elif self.budget_ms:
            _fail("budget_ms", self.budget_ms,
                  f"0 unless budget_metric='latency' (budget_metric={self.budget_metric!r})")

    def _check_domains(self):
        names = list(self.domains)
        for name in names:
            if not isinstance(name, str) or not name.strip():
                _fail("domains", ",".join(map(str, names)), "a comma list of non-empty domain names")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            _fail("domains", ",".join(names), f"a list of distinct names (repeated: {duplicates})")
        known = known_domains(self.dataset)
        unknown = [n for n in names if known is not None and n not in known]
        if unknown:
            raise ValueError(
                f"Unknown domain {unknown[0]!r} for dataset={self.dataset!r}. Expected names among "
                f"{list(known)}. Received: domains={','.join(names)}"
            )
        check_domain_names(names)  # folder names: one rule for every stage, checked before any runs
        needs_folders = [n for n in names if self.dataset == "imagenet_sketch" and n in IMAGENET_TO_SKETCH_FOLDERS]
        if needs_folders and not self.folders_root:
            _fail(
                "folders_root", self.folders_root,
                f"a folder holding {needs_folders[0]}/train and {needs_folders[0]}/test (tfds lacks the "
                f"ImageNet-to-Sketch domains {list(IMAGENET_TO_SKETCH_FOLDERS)})",
            )

    # -- derived ---------------------------------------------------------------------------
    def resolve(self):
        """A copy with the dataset-dependent defaults (domains, image size) made explicit."""
        domains = self.domains or default_domains(self.dataset, self.folders_root)
        if self.dataset == "imagenet_sketch" and not self.domains and not self.folders_root:
            domains = tuple(d for d in domains if d not in IMAGENET_TO_SKETCH_FOLDERS)
        image_size = self.image_size or DEFAULT_IMAGE_SIZE[self.dataset]
        return dataclasses.replace(self, domains=tuple(domains), image_size=image_size)

    def identity(self):
        """The fields that must match between a workdir's run and a later command on it."""
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    def to_dict(self):
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f, v in
                ((f, getattr(self, f.name)) for f in dataclasses.fields(self))}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        """From ``to_dict``'s output; an unknown key is an error (a file from another version)."""
        return _from_dict(cls, values)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Pre-training of a backbone on a source domain (``bap-pretrain``)."""

    source: str = setting(
        POCKET_SOURCE,
        "Source domain: fashion_mnist (the pocket benchmark's, offline) or imagenet (tfds imagenet2012; "
        "archives in --manual_dir).",
        choices=PRETRAIN_SOURCES,
    )
    data_dir: str = setting("", "tfds data_dir; for fashion_mnist the pocket cache folder.")
    manual_dir: str = setting("", "tfds manual_dir (ImageNet's archives).")
    image_size: int = setting(32, "Square input size in pixels.", lower_bound=8)
    augment: bool = setting(True, "Random translations and flips in training.")
    backbone: str = setting("resnet26", "Architecture to pre-train.", choices=BACKBONES)
    width: int = setting(16, "resnet26 only: channels of the first stage.", lower_bound=1)
    epochs: int = setting(10, "Training epochs.", lower_bound=1)
    steps_per_epoch: int = setting(
        0, "Steps per epoch; 0: one pass over the source's training split.", lower_bound=0
    )
    batch_size: int = setting(64, "Images per step.", lower_bound=1)
    learning_rate: float = setting(2e-3, "Peak Adam learning rate (cosine decay to 0 over the run).", positive=True)
    seed: int = setting(0, "Random seed.", lower_bound=0)
    strategy: str = setting("default", "tf.distribute strategy (see bap-train).", choices=STRATEGIES)
    tpu: str = setting("", "TPU name or address for --strategy=tpu.")
    output: str = setting(
        "", "Where to write the backbone's weights (*.weights.h5); empty: WORKDIR/backbone.weights.h5."
    )

    def __post_init__(self):
        _check_choice("source", self.source, PRETRAIN_SOURCES)
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_number("learning_rate", self.learning_rate, strict=True)
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("width", 1), ("steps_per_epoch", 0),
                              ("seed", 0), ("image_size", 8)):
            _check_int(name, getattr(self, name), minimum)
        if self.output and not self.output.endswith(".weights.h5"):
            _fail("output", self.output, "a path ending in .weights.h5 (Keras weights file)")

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        return _from_dict(cls, values)


def _from_dict(cls, values):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"Unknown {cls.__name__} fields {unknown}. Expected fields among {sorted(names)}. "
            f"Received: {sorted(values)}"
        )
    return cls(**values)
