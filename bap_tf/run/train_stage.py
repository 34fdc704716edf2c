"""The train stage: multi-domain budget-aware training of the switches, BatchNorms and heads.

data -> frozen pre-trained backbone -> ``build_switched_network`` -> ``BudgetAwareModel`` ->
``compile`` -> ``fit`` with TensorBoard, a progress bar, resumable backups, ``ProjectToBudget``
and ``RecalibrateBatchNorm`` (domain BatchNorm statistics re-estimated for the final switches);
the result is ``WORKDIR/model.keras`` and ``WORKDIR/history.json``.

Resuming: training state is backed up at the end of every epoch (``WORKDIR/backup``, kept
after training; ``checkpoint.AtomicBackupAndRestore``). Running the same command again
continues from the last finished epoch, with the batches an uninterrupted run would have seen;
with a larger ``--epochs`` it trains on from where the run stopped. Once ``model.keras`` holds as many
epochs as asked, the stage has nothing to do and says so.
"""

import dataclasses
import functools

import keras
import tensorflow as tf
from absl import logging

from bap_tf.atomic import atomic_path, read_json, write_json
from bap_tf.budgets.latency import LatencyCost, budget_fraction
from bap_tf.data import eval_datasets, train_dataset
from bap_tf.data.pipeline import default_steps_per_epoch
from bap_tf.export import latency_table
from bap_tf.model import BudgetAwareModel, ProjectToBudget, default_switch_optimizer
from bap_tf.run import sources as data_sources
from bap_tf.run.backbone import load_backbone
from bap_tf.run.callbacks import JsonHistory, RecalibrateBatchNorm, progress_verbosity, standard_callbacks
from bap_tf.run.selection import SelectBestEpoch
from bap_tf.run.strategy import check_batch_size, get_strategy, lost_workers_reported
from bap_tf.switching import build_switched_network

# Forward passes that re-estimate the BatchNorm statistics after training (RecalibrateBatchNorm).
RECALIBRATION_STEPS = 50


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model_path: str
    history_path: str
    epochs: int  # epochs the saved model has been trained for
    kept_fractions: dict  # domain -> kept fraction of the switchable cost
    union_fraction: float
    skipped: bool = False  # the workdir already held a model trained for config.epochs


def build_model(config, domains, strategy, steps_per_epoch=0):
    """The compiled ``BudgetAwareModel`` for ``domains`` ([(name, num_classes)]), in scope;
    ``steps_per_epoch`` turns ``config.warmup_epochs`` into steps."""
    with strategy.scope():
        network = build_switched_network(load_backbone(config), domains)
        table, mcu_budget, budget = None, None, config.budget
        if config.budget_metric == "latency":
            table = latency_table.load_table(config.latency_table, network)
            budget = budget_fraction(LatencyCost(network, table), config.budget, config.budget_ms)
        elif config.budget_metric == "mcu":
            mcu_budget, budget = (config.mcu_flash_kb, config.mcu_ram_kb), 1.0
        model = BudgetAwareModel(
            network, domains, budget=budget, sharing_loss=config.sharing_loss, latency_table=table,
            mcu_budget=mcu_budget,
            sharing_weight=config.sharing_weight, budget_metric=config.budget_metric,
            multiplier_rate=config.multiplier_rate, sharing_rate=config.sharing_rate,
            warmup_steps=config.warmup_epochs * steps_per_epoch, max_sharing_weight=config.max_sharing_weight,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            switch_optimizer=default_switch_optimizer(config.switch_learning_rate),
        )
    return model


def epoch_datasets(sources, config, steps, start):
    """Epochs ``start`` .. ``config.epochs - 1`` of training batches, one after the other.

    Each epoch's order and augmentation come from its own seed, so a run resumed at epoch
    ``start`` sees exactly the batches an uninterrupted run sees from there on (one pipeline
    reshuffled per pass would start again from its first order). ``fit`` reads them as one
    stream of ``steps`` batches per epoch.
    """
    epochs = range(start, config.epochs) if start < config.epochs else [config.epochs - 1]
    datasets = [
        train_dataset(sources, batch_size=config.batch_size, image_size=config.image_size,
                      seed=config.seed * 1000 + epoch, augment=config.augment, steps_per_epoch=steps)
        for epoch in epochs
    ]
    return functools.reduce(lambda a, b: a.concatenate(b), datasets)


def train(config, workdir, verbose="auto"):
    """Trains the config's run in ``workdir`` (a ``Workdir``); returns a ``TrainResult``."""
    done = workdir.trained_epochs()
    if done >= config.epochs:
        logging.info("%s was trained for %d epochs (asked: %d): nothing to train.", workdir.model, done, config.epochs)
        model = workdir.load_masked_model(config)
        return _result(workdir, model, done, skipped=True)

    keras.utils.set_random_seed(config.seed)
    # Same flags and seed, same switches and report: TF picks deterministic kernels (slower on
    # GPU for a few ops; on CPU the ops bap-tf uses are deterministic anyway).
    tf.config.experimental.enable_op_determinism()
    strategy = get_strategy(config.strategy, config.tpu)
    train_sources = data_sources.domain_sources(config, "train", workdir)
    domains = data_sources.domain_specs(train_sources)
    global_batch = check_batch_size(strategy, config.batch_size, len(domains))
    callbacks = standard_callbacks(workdir, keep_backup=True)
    start = min(callbacks[0].saved_epochs(), config.epochs)  # epochs the backup already holds
    steps = config.steps_per_epoch or default_steps_per_epoch(train_sources, config.batch_size)
    data = epoch_datasets(train_sources, config, steps, start)
    model = build_model(config, domains, strategy, steps)
    logging.info(
        "Training %s on %d domains %s, budget %.2f, %s sharing loss; global batch %d on %d replica(s).",
        config.backbone, len(domains), [d[0] for d in domains], config.budget, config.sharing_loss,
        global_batch, strategy.num_replicas_in_sync,
    )
    recalibration = train_dataset(
        train_sources, batch_size=config.batch_size, image_size=config.image_size, seed=config.seed + 1,
        augment=False, steps_per_epoch=RECALIBRATION_STEPS,
    )
    # At the end of fit: project to the budget, then re-estimate BN statistics (in this order);
    # with a validation split, the best epoch's model so finished is the one kept. Selection
    # comes first: an epoch is scored before its backup is written, so a run killed between the
    # two retrains that epoch and scores it again instead of never scoring it.
    finish = [ProjectToBudget(), RecalibrateBatchNorm(recalibration, RECALIBRATION_STEPS)]
    if config.validation_fraction:
        callbacks.insert(0, _select_best_epoch(config, workdir, finish))
    else:
        callbacks += finish
    callbacks.append(JsonHistory(workdir.history))
    with lost_workers_reported(strategy):
        model.fit(
            data, epochs=config.epochs, steps_per_epoch=steps, shuffle=False,
            callbacks=callbacks, verbose=progress_verbosity(verbose),
        )
    with atomic_path(workdir.model) as temporary:
        model.save(temporary)
    history = read_json(workdir.history) if workdir.history.exists() else {}
    write_json(workdir.history, {**history, "model_epochs": config.epochs})
    return _result(workdir, model, config.epochs)


def _select_best_epoch(config, workdir, finish):
    """``SelectBestEpoch`` on the validation split; ``finish``: the end-of-fit callbacks."""
    validation = eval_datasets(data_sources.domain_sources(config, "validation", workdir),
                               batch_size=max(config.batch_size, 64), image_size=config.image_size)
    return SelectBestEpoch(validation, finish, str(workdir.root / "best_epoch.weights.h5"),
                           first_epoch=config.warmup_epochs)


def _result(workdir, model, epochs, skipped=False):
    kept = dict(zip(model.domain_names, (float(v) for v in model.kept_fractions())))
    return TrainResult(str(workdir.model), str(workdir.history), epochs, kept, model.union_fraction(), skipped)

