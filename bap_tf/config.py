"""The configuration of a bap-tf run: one frozen dataclass per command, defaults in one place.

The commands (``bap_tf.cli``) build these from flags; the library (``bap_tf.run``) reads them
and never reads flags. A config validates itself on construction, so a wrong value fails with
a message naming it before any work starts. ``resolve`` fills the values that depend on the
dataset (its standard domains and image size); the resolved config is what a run writes to
``WORKDIR/config.json`` and what a later stage reads back.

Flag names are field names: ``--budget`` sets ``ExperimentConfig.budget``.
"""

import dataclasses
import json
import math
import os

from bap_tf.domains import check_domain_names  # a module without TensorFlow

# Names the library defines; repeated here so that building and validating a config (and so a
# command's --help and its flag errors) does not import TensorFlow. tests/cli/test_config.py
# checks that each one equals the library's own constant.
BACKBONES = ("resnet26", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")  # bap_tf.backbones.BACKBONES
BUDGET_METRICS = ("macs", "params")  # bap_tf.costs.BUDGET_METRICS
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
# model with its weights and channel masks, or the union model with every filter stored once.
ANDROID_LAYOUTS = ("per_domain", "shared", "shared_filters")

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
    "budget", "budget_metric", "sharing_loss", "sharing_weight",
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
    names = sorted(n for n in os.listdir(folders_root) if os.path.isdir(os.path.join(folders_root, n)) and not n.startswith("."))
    if not names:
        raise ValueError(
            f"folders_root has no domain sub-folders. Expected <domain>/{{train,test}}/<class>/* or <domain>/<class>/*. "
            f"Received: folders_root={folders_root!r}"
        )
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One multi-domain budget-aware run: data, backbone, method, training, pruning, export, eval.

    Zero / empty values mean "the dataset's standard choice" where noted; ``resolve()`` makes
    them explicit.
    """

    # -- data ---------------------------------------------------------------------------
    dataset: str = "pocket"  # pocket | decathlon | imagenet_sketch | folders
    domains: tuple = ()  # empty: the dataset's standard domains (default_domains)
    data_dir: str = ""  # tfds data_dir; for pocket the cache folder ("": ~/.cache/bap_tf)
    manual_dir: str = ""  # tfds manual_dir (archives tfds cannot download, e.g. ImageNet)
    folders_root: str = ""  # dataset=folders, or ImageNet-to-Sketch's wikiart/sketch
    test_fraction: float = 0.2  # folder domains without train/test: the share split off for test
    image_size: int = 0  # 0: the dataset's standard size (DEFAULT_IMAGE_SIZE)
    augment: bool = True  # random translations (and flips where a domain allows them)
    # Share of each domain's training split held back (seeded, per domain): the best epoch of
    # training and of fine-tuning is kept on it, and the baselines choose their settings on it.
    # 0: nothing held back, the last epoch is kept and the baselines take their first setting.
    validation_fraction: float = 0.1
    # -- backbone -----------------------------------------------------------------------
    backbone: str = "resnet26"
    width: int = 16  # resnet26 only: channels of its first stage (64 in the paper)
    pretrained: str = ""  # weights file; "": the shipped pocket backbone; "none": random
    # -- method (docs/method.md sections 2-4) --------------------------------------------
    budget: float = 0.5
    budget_metric: str = "macs"
    sharing_loss: str = "jaccard"  # benchmarks/results/recipes.md: more accurate and cheaper than union
    sharing_weight: float = None  # None: learnable (dual ascent); a number: fixed alpha
    multiplier_rate: float = 2.0  # eta_lambda
    sharing_rate: float = 0.5  # eta_alpha
    # Epochs in which only the BatchNorms and heads train: switches still, lambda and alpha at 0.
    warmup_epochs: int = 0
    max_sharing_weight: float = 0.0  # cap of the learnable alpha; 0: no cap
    # -- training -------------------------------------------------------------------------
    epochs: int = 8
    steps_per_epoch: int = 0  # 0: one pass over the largest domain
    batch_size: int = 32  # per domain; the global batch is batch_size * len(domains)
    learning_rate: float = 1e-2  # Adam, for domain BatchNorms and heads
    switch_learning_rate: float = 1e-2  # Adam without momentum, for the switches
    seed: int = 0
    strategy: str = "default"  # default | mirrored | multi_worker | tpu
    tpu: str = ""  # TPU name or address for strategy=tpu ("": the local TPU)
    # -- prune ----------------------------------------------------------------------------
    # Fine-tuning of the reduced models after pruning (0 epochs: none); benchmarks/results/recipes.md:
    # 8 epochs at batch 128 take the steps of 4 at batch 32. Rate and schedule: chosen on held-back
    # data (benchmarks/results/finetune_recipe.md: 1.6e-3 decayed by a cosine over 8e-4 held).
    finetune_epochs: int = 8
    finetune_learning_rate: float = 1.6e-3
    finetune_batch_size: int = 128  # per domain; 0: batch_size. Larger batches: fewer, cheaper steps
    finetune_layers: str = "all"  # all | batchnorm_heads (convolutions stay as pre-trained)
    finetune_schedule: str = "cosine"  # constant | cosine (decay to 0 over the fine-tuning's steps)
    # Share of the fine-tuning loss that distils each domain's per-domain fine-tuning baseline
    # (bap_tf.prune.distill; the baselines are then measured before fine-tuning). 0: off. Off by
    # default, as it costs D whole-backbone fine-tunings (minutes at pocket size, days at
    # Visual Decathlon's); the pocket main job, which measures them anyway, turns it on (0.5,
    # chosen on held-back data: benchmarks/results/finetune_recipe.md).
    distill_weight: float = 0.0
    # In the union model each domain reads every channel the union keeps (no channel masks):
    # the shared convs compute them anyway; the fine-tuning adapts its BatchNorms and head.
    whole_union: bool = False
    channel_multiple: int = 1  # kept streams rounded up to a multiple (XNNPACK tiles: 16, 32)
    dense_reads: bool = False  # zero kernel rows instead of channel gathers
    # -- export ---------------------------------------------------------------------------
    quantize: tuple = ("float32", "dynamic", "int8")
    # per_domain: each domain's own model, gathers absorbed (fast, a model per domain);
    # shared: the union model with its masks (weights once, slower); shared_filters: the union
    # model in which every domain reads every kept channel and the domains share each
    # BatchNorm's scale (bap_tf.prune.shared_scales; the prune stage fine-tunes it so): every
    # filter stored once, each domain adds biases and its head.
    android_layout: str = "per_domain"
    # Training images per domain that calibrate the int8 files and the shared_filters layout's
    # tie of the BatchNorm scales.
    calibration_examples: int = 256
    qat_epochs: int = 1
    # -- eval -----------------------------------------------------------------------------
    eval_examples: int = 0  # test images per domain for the on-device checks (0: all)
    reference_errors: str = ""  # JSON {domain: error} for the S-score; "": measured in the run
    # Per-domain fine-tuning of the whole backbone, measured in the eval stage (a few minutes at
    # pocket size, far longer on real benchmarks) next to the feature extractor; the S-score's
    # reference unless reference_errors names a file.
    baselines: bool = True
    mcu_flash_kb: float = 1024.0
    mcu_ram_kb: float = 256.0
    enforce_mcu_budget: bool = False

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
        if not (isinstance(self.budget, (int, float)) and not isinstance(self.budget, bool) and 0.0 < self.budget <= 1.0):
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
            _fail("distill_weight", self.distill_weight, "0 when finetune_epochs=0 (distillation happens in the fine-tuning)")
        if self.android_layout == "shared_filters" and not self.finetune_epochs:
            _fail("android_layout", self.android_layout, "per_domain or shared when finetune_epochs=0 (shared_filters "
                  "changes the union model, and the fine-tuning adapts it)")
        if self.whole_union and not self.finetune_epochs:
            _fail("whole_union", self.whole_union, "used with finetune_epochs > 0 (each domain's BatchNorms and head "
                  "must adapt to the channels it gains)")
        if self.warmup_epochs >= self.epochs:
            _fail("warmup_epochs", self.warmup_epochs, f"fewer than epochs={self.epochs} (the switches must train)")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) or not 0 < self.test_fraction < 1:
            _fail("test_fraction", self.test_fraction, "a fraction in (0, 1)")
        if 0 < self.image_size < 8:
            _fail("image_size", self.image_size, "0 (the dataset's standard size) or at least 8 pixels")
        for variant in self.quantize:
            _check_choice("quantize", variant, QUANTIZE_VARIANTS)
        if len(set(self.quantize)) != len(self.quantize):
            _fail("quantize", ",".join(self.quantize), "a list without repeats")
        self._check_domains()
        if self.dataset == "folders" and not self.folders_root:
            _fail("folders_root", self.folders_root, "a folder of <domain>/{train,test}/<class>/ or <domain>/<class>/ images when dataset='folders'")

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

    source: str = POCKET_SOURCE  # fashion_mnist (offline, pocket) | imagenet (tfds imagenet2012)
    data_dir: str = ""
    manual_dir: str = ""
    image_size: int = 32
    augment: bool = True
    backbone: str = "resnet26"
    width: int = 16
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: one pass over the source's training split
    batch_size: int = 64
    learning_rate: float = 2e-3  # Adam with cosine decay to 0 over the run
    seed: int = 0
    strategy: str = "default"
    tpu: str = ""
    output: str = ""  # where the backbone's weights go ("": WORKDIR/backbone.weights.h5)

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
