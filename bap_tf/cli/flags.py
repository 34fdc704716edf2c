"""The flags of the bap-* commands, and their translation into configs.

bap-train, bap-prune, bap-export and bap-eval define the same experiment flags (so one flagfile
serves them all; absl rejects a flag a command does not define), bap-pretrain its own. Each
flag is a field of ``bap_tf.config.ExperimentConfig`` (or ``PretrainConfig``) of the same name;
its default comes from that dataclass, the one place defaults live.
"""

import dataclasses

from absl import flags

from bap_tf import config as config_lib

FLAGS = flags.FLAGS
_E = config_lib.ExperimentConfig()
_P = config_lib.PretrainConfig()


def _positive(name, fv):
    flags.register_validator(name, lambda v: v is None or v > 0, message=f"--{name} must be > 0", flag_values=fv)


def _list_of(name, choices, fv):
    flags.register_validator(
        name, lambda values: all(v in choices for v in values),
        message=f"--{name} must be a comma list of {','.join(choices)}", flag_values=fv,
    )


def define_workdir_flag(what, fv=FLAGS):
    flags.DEFINE_string("workdir", None, f"Folder of the run: {what}. Created if needed. Required.", flag_values=fv)
    flags.mark_flag_as_required("workdir", flag_values=fv)


def define_experiment_flags(fv=FLAGS):
    """Defines every ``ExperimentConfig`` flag (plus --workdir) in ``fv``, once."""
    if "budget" in fv:
        return
    define_workdir_flag(
        "config.json, model.keras, pruned/, export/, report.md ... A command run again on it "
        "continues (training resumes from its last epoch) or redoes a later stage", fv,
    )
    # -- data
    flags.DEFINE_enum("dataset", _E.dataset, config_lib.DATASETS,
                      "pocket: the offline pocket benchmark (4 small domains, no download); decathlon: "
                      "Visual Decathlon (tfds visual_domain_decathlon); imagenet_sketch: ImageNet-to-Sketch "
                      "(tfds + --folders_root for wikiart/sketch); folders: --folders_root/<domain>/{train,test}/<class>/*, "
                      "or <domain>/<class>/* split with --test_fraction.", flag_values=fv)
    flags.DEFINE_list("domains", list(_E.domains),
                      "Comma list of target domains, in the order of their domain index. Empty: the dataset's "
                      f"standard domains (pocket: {','.join(config_lib.POCKET_DOMAINS)}; decathlon: all ten; "
                      "imagenet_sketch: cubs,stanford_cars,flowers,wikiart,sketch; folders: every sub-folder).", flag_values=fv)
    flags.DEFINE_string("data_dir", _E.data_dir, "tfds data_dir (prepared data sets). For pocket: its cache folder "
                        "(empty: ~/.cache/bap_tf/pocket).", flag_values=fv)
    flags.DEFINE_string("manual_dir", _E.manual_dir, "tfds manual_dir: archives tfds cannot download (ImageNet).", flag_values=fv)
    flags.DEFINE_string("folders_root", _E.folders_root, "Root of folder domains: <root>/<domain>/train/<class>/*.png "
                        "and <root>/<domain>/test/<class>/*.png (dataset=folders, or wikiart/sketch); for folders also "
                        "<root>/<domain>/<class>/*.png, split with --test_fraction.", flag_values=fv)
    flags.DEFINE_float("test_fraction", _E.test_fraction, "Folder domains without train/test folders: the share of each "
                       "class's images held out for test (seeded by --seed, recorded in WORKDIR/splits/).", flag_values=fv)
    flags.DEFINE_integer("image_size", _E.image_size, "Square input size in pixels; 0: the dataset's standard size "
                         "(pocket 32, decathlon 72, imagenet_sketch 224, folders 64).", lower_bound=0, flag_values=fv)
    flags.DEFINE_boolean("augment", _E.augment, "Random translations (and flips where a domain allows) in training.", flag_values=fv)
    flags.DEFINE_float("validation_fraction", _E.validation_fraction, "Share of each domain's training split held "
                       "back (seeded): the best epoch of training and of fine-tuning is kept on it, and the baselines "
                       "choose their settings on it; 0: keep the last epoch.",
                       lower_bound=0.0, upper_bound=0.49, flag_values=fv)
    # -- backbone
    flags.DEFINE_enum("backbone", _E.backbone, config_lib.BACKBONES, "The frozen pre-trained CNN.", flag_values=fv)
    flags.DEFINE_integer("width", _E.width, "resnet26 only: channels of the first stage (64 in the paper; "
                         "the shipped pocket backbone has 16).", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("pretrained", _E.pretrained, "Backbone weights file (bap-pretrain's output, or a Keras "
                        "Applications *_notop.h5). Empty: the backbone shipped for the pocket benchmark "
                        "(resnet26, width 16, 32 px); 'none': random weights (tests only).", flag_values=fv)
    # -- method
    flags.DEFINE_float("budget", _E.budget, "Budget beta in (0, 1]: fraction of the switchable cost each domain may keep.",
                       upper_bound=1.0, flag_values=fv)
    _positive("budget", fv)
    flags.DEFINE_enum("budget_metric", _E.budget_metric, config_lib.BUDGET_METRICS,
                      "What a switch costs: the MACs or the parameters of its kernel slice.", flag_values=fv)
    flags.DEFINE_enum("sharing_loss", _E.sharing_loss, config_lib.SHARING_LOSSES,
                      "Parameter-sharing loss: union, intersection, jaccard, or none (BA2 trained jointly).", flag_values=fv)
    flags.DEFINE_float("sharing_weight", _E.sharing_weight, "Fixed weight alpha of the sharing loss. Unset: learnable "
                       "alpha (dual ascent on the union exceeding the budget).", lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("multiplier_rate", _E.multiplier_rate, "Step eta_lambda of the budget multipliers' dual ascent.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("sharing_rate", _E.sharing_rate, "Step eta_alpha of the learnable sharing weight.", lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("max_sharing_weight", _E.max_sharing_weight, "Cap of the learnable sharing weight alpha; "
                       "0: no cap.", lower_bound=0.0, flag_values=fv)
    # -- training
    flags.DEFINE_integer("epochs", _E.epochs, "Training epochs. A larger value on an existing workdir trains on.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("warmup_epochs", _E.warmup_epochs, "First epochs in which only the BatchNorms and heads "
                         "train (switches still, budget and sharing weights held at 0).", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", _E.steps_per_epoch, "Steps per epoch of training and of fine-tuning; 0: one pass over the largest domain.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("batch_size", _E.batch_size, "Images per domain per step; the global batch is "
                         "batch_size x number of domains.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("learning_rate", _E.learning_rate, "Adam learning rate of the domain BatchNorms and heads.", flag_values=fv)
    _positive("learning_rate", fv)
    flags.DEFINE_float("switch_learning_rate", _E.switch_learning_rate, "Learning rate of the switches "
                       "(Adam without momentum).", flag_values=fv)
    _positive("switch_learning_rate", fv)
    flags.DEFINE_integer("seed", _E.seed, "Random seed (keras.utils.set_random_seed, data order, augmentation).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("strategy", _E.strategy, config_lib.STRATEGIES,
                      "tf.distribute strategy: default (one device), mirrored (local GPUs), multi_worker "
                      "(TF_CONFIG workers), tpu (--tpu).", flag_values=fv)
    flags.DEFINE_string("tpu", _E.tpu, "TPU name or grpc:// address for --strategy=tpu (empty: the local TPU).", flag_values=fv)
    # -- prune
    flags.DEFINE_integer("finetune_epochs", _E.finetune_epochs, "Epochs of fine-tuning the reduced models after "
                         "pruning (all layers); 0: off.", lower_bound=0, flag_values=fv)
    flags.DEFINE_float("finetune_learning_rate", _E.finetune_learning_rate, "Adam learning rate of the fine-tuning.", flag_values=fv)
    _positive("finetune_learning_rate", fv)
    flags.DEFINE_integer("finetune_batch_size", _E.finetune_batch_size, "Per-domain batch size of the fine-tuning; "
                         "0: --batch_size (larger batches: fewer, cheaper steps).", lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("finetune_layers", _E.finetune_layers, config_lib.FINETUNE_LAYERS, "What the fine-tuning "
                      "trains: all layers, or only the BatchNorms and heads.", flag_values=fv)
    flags.DEFINE_enum("finetune_schedule", _E.finetune_schedule, config_lib.FINETUNE_SCHEDULES, "Learning rate "
                      "of the fine-tuning: constant, or cosine decay from --finetune_learning_rate to 0.", flag_values=fv)
    flags.DEFINE_float("distill_weight", _E.distill_weight, "Share of the fine-tuning loss that distils each "
                       "domain's per-domain fine-tuning baseline (its teacher, measured before the fine-tuning "
                       "and cached across runs); 0: off.", lower_bound=0.0, upper_bound=1.0, flag_values=fv)
    flags.DEFINE_boolean("whole_union", _E.whole_union, "In the union-pruned model every domain reads all the "
                         "channels the union keeps (no per-domain channel masks: the shared convs compute them "
                         "anyway), and the fine-tuning adapts it; needs --finetune_epochs > 0.", flag_values=fv)
    flags.DEFINE_integer("channel_multiple", _E.channel_multiple, "Round every kept channel stream of the reduced "
                         "models up to a multiple of this (XNNPACK computes whole tiles of 16 float32 channels on "
                         "AVX2, 32 on AVX-512); the extra channels count in the reported params and MACs. 1: off.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_boolean("dense_reads", _E.dense_reads, "Convs read their input's whole kept stream with zero kernel "
                         "rows for the channels they drop, instead of a channel gather (which XNNPACK does not run).",
                         flag_values=fv)
    # -- export
    flags.DEFINE_enum("android_layout", _E.android_layout, config_lib.ANDROID_LAYOUTS, "The Android file: per_domain "
                      "(each domain's own model as its signature, gathers absorbed into the convs, BatchNorms "
                      "folded, no masks: fast, a model per domain), shared (the union model, weights stored "
                      "once, per-domain masks and BatchNorms as extra ops: slower) or shared_filters (the union "
                      "model in which every domain reads all its channels and the domains share each "
                      "BatchNorm's scale, fine-tuned so in the prune stage: every filter stored once, each "
                      "domain adds biases and its head; needs --finetune_epochs > 0).", flag_values=fv)
    flags.DEFINE_list("quantize", list(_E.quantize), "Comma list of export variants: float32 and dynamic (the "
                      "Android multi-signature file), int8 (per-domain full-int8 files for microcontrollers), "
                      "qat (the same after quantization-aware fine-tuning; needs the [qat] extra).", flag_values=fv)
    _list_of("quantize", config_lib.QUANTIZE_VARIANTS, fv)
    flags.DEFINE_integer("calibration_examples", _E.calibration_examples, "Training images per domain that "
                         "calibrate the int8 quantization and, with --android_layout=shared_filters, the tie of "
                         "the domains' BatchNorm scales.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("qat_epochs", _E.qat_epochs, "Epochs of quantization-aware fine-tuning (--quantize=qat).",
                         lower_bound=1, flag_values=fv)
    # -- eval
    flags.DEFINE_integer("eval_examples", _E.eval_examples, "Test images per domain on which the exported files "
                         "run in LiteRT and TFLM; 0: all. (Keras accuracies always use the whole test split.)",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_string("reference_errors", _E.reference_errors, "JSON file {domain: error fraction} of the S-score's "
                        "reference. Empty: measured in the run: per-domain fine-tuning of the whole backbone (--baselines), "
                        "else the frozen backbone + a linear classifier per domain.", flag_values=fv)
    flags.DEFINE_boolean("baselines", _E.baselines, "Measure the per-domain fine-tuning baseline (the whole backbone "
                         "and a head per domain, the run's epochs) in the eval stage: the S-score's reference unless "
                         "--reference_errors is given. A few minutes at pocket size; --nobaselines for large runs.",
                         flag_values=fv)
    flags.DEFINE_float("mcu_flash_kb", _E.mcu_flash_kb, "Flash (KiB) a microcontroller leaves for one int8 model.", flag_values=fv)
    _positive("mcu_flash_kb", fv)
    flags.DEFINE_float("mcu_ram_kb", _E.mcu_ram_kb, "RAM (KiB) a microcontroller leaves for the TFLM tensor arena.", flag_values=fv)
    _positive("mcu_ram_kb", fv)
    flags.DEFINE_boolean("enforce_mcu_budget", _E.enforce_mcu_budget, "Fail (exit code 3) when a domain's int8 model "
                         "does not fit --mcu_flash_kb / --mcu_ram_kb (the report is written first).", flag_values=fv)


def define_pretrain_flags(fv=FLAGS):
    """Defines every ``PretrainConfig`` flag (plus --workdir) in ``fv``."""
    define_workdir_flag("pretrain.json, pretrain_config.json, backbone.weights.h5 (unless --output), tensorboard/pretrain/", fv)
    flags.DEFINE_enum("source", _P.source, config_lib.PRETRAIN_SOURCES,
                      "Source domain: fashion_mnist (the pocket benchmark's, offline) or imagenet (tfds imagenet2012; "
                      "archives in --manual_dir).", flag_values=fv)
    flags.DEFINE_string("data_dir", _P.data_dir, "tfds data_dir; for fashion_mnist the pocket cache folder.", flag_values=fv)
    flags.DEFINE_string("manual_dir", _P.manual_dir, "tfds manual_dir (ImageNet's archives).", flag_values=fv)
    flags.DEFINE_integer("image_size", _P.image_size, "Square input size in pixels.", lower_bound=8, flag_values=fv)
    flags.DEFINE_boolean("augment", _P.augment, "Random translations and flips in training.", flag_values=fv)
    flags.DEFINE_enum("backbone", _P.backbone, config_lib.BACKBONES, "Architecture to pre-train.", flag_values=fv)
    flags.DEFINE_integer("width", _P.width, "resnet26 only: channels of the first stage.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("epochs", _P.epochs, "Training epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", _P.steps_per_epoch, "Steps per epoch; 0: one pass over the source.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("batch_size", _P.batch_size, "Images per step.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("learning_rate", _P.learning_rate, "Peak Adam learning rate (cosine decay to 0).", flag_values=fv)
    _positive("learning_rate", fv)
    flags.DEFINE_integer("seed", _P.seed, "Random seed.", lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("strategy", _P.strategy, config_lib.STRATEGIES, "tf.distribute strategy (see bap-train).", flag_values=fv)
    flags.DEFINE_string("tpu", _P.tpu, "TPU name or address for --strategy=tpu.", flag_values=fv)
    flags.DEFINE_string("output", _P.output, "Where to write the backbone's weights (*.weights.h5); empty: "
                        "WORKDIR/backbone.weights.h5.", flag_values=fv)


def explicit_values(config_class, flag_values=FLAGS):
    """``{field: value}`` of the config fields whose flag was given (command line or flagfile)."""
    values = {}
    for field in dataclasses.fields(config_class):
        flag = flag_values[field.name]
        if flag.present:
            value = flag.value
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values


def flagfile_text(config, command):
    """The config as a flagfile that replays it (``--flagfile=WORKDIR/flags.cfg``)."""
    lines = [
        f"# Resolved flags of the run in this workdir, written by {command}.",
        "# Replay: bap-train --flagfile=WORKDIR/flags.cfg --workdir=WORKDIR (or any bap-* command)",
    ]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue  # e.g. sharing_weight unset: the learnable weight
        if isinstance(value, bool):
            lines.append(f"--{'' if value else 'no'}{field.name}")
        elif isinstance(value, tuple):
            lines.append(f"--{field.name}={','.join(value)}")
        else:
            lines.append(f"--{field.name}={value}")
    return "\n".join(lines) + "\n"
