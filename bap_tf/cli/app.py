"""The shared entry point of the bap-* commands: flags -> config -> workdir -> library.

Errors a user can fix (a bad flag value, a missing flagfile or file, an unknown name, an
unwritable workdir, a workdir from another run, a loss that became NaN) print one line,
``<command>: error: ...``, and exit with code 2; ``--verbosity=1`` (or higher) shows the
traceback instead. A microcontroller budget that ``--enforce_mcu_budget`` enforces and a domain
misses exits with code 3. Anything else is a bug and keeps its traceback.
"""

import logging as py_logging
import os
import sys

# Before TensorFlow loads (in the library, after the flags are checked): no C++ info chatter.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from bap_tf import config as config_lib  # noqa: E402
from bap_tf.cli import flags as cli_flags  # noqa: E402
from bap_tf.export.mcu import McuBudgetError  # noqa: E402  (a module without TensorFlow)
from bap_tf.run.stages import check_run, run_stages  # noqa: E402  (TensorFlow loads when they run)
from bap_tf.run.workdir import Workdir, config_for_workdir  # noqa: E402

FLAGS = flags.FLAGS
USAGE_ERROR = 2
MCU_BUDGET_ERROR = 3
# What a user can fix; OSError covers missing files (FileNotFoundError) and unwritable folders.
# (A loss that turned NaN, checkpoint.NonFiniteLossError, too: checked in call_main, imported
# there because bap_tf.run.checkpoint loads Keras, and flag errors must not wait for it.)
USER_ERRORS = (ValueError, OSError)


def fail(command, message, code=USAGE_ERROR):
    text = " ".join(str(message).split()) if code == USAGE_ERROR else str(message)
    print(f"{command}: error: {text}", file=sys.stderr, flush=True)
    sys.exit(code)


def _flags_parser(command):
    def parse(argv):
        try:
            return FLAGS(argv)
        except flags.Error as error:
            message = str(error).replace("ERROR:: ", "")
            fail(command, f"{message} (see {command} --helpfull)")

    return parse


def call_main(command, main, argv):
    """Calls ``main(argv)``; a user error ends the process as the module docstring says."""
    if len(argv) > 1:
        fail(command, f"unexpected arguments {argv[1:]}; every setting is a --flag (see {command} --helpfull)")
    try:
        main(argv)
    except Exception as error:  # sorted below: user errors become one line
        if FLAGS["verbosity"].value >= 1:
            raise
        if isinstance(error, McuBudgetError):
            fail(command, error, MCU_BUDGET_ERROR)
        if isinstance(error, (_loaded_error_class("bap_tf.run.checkpoint", "NonFiniteLossError"), *USER_ERRORS)):
            fail(command, error)
        raise


def _loaded_error_class(module, name):
    """The exception class ``module.name`` if that module is loaded (an error of that class can
    only come from it), else a class nothing raises: importing it here would load TensorFlow
    before a flag error is printed (tests/cli/test_app.py checks that it does not)."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name) if loaded is not None else _NeverRaised


class _NeverRaised(Exception):
    pass


def run_app(command, main):
    """Runs ``main(argv)`` as an absl app named ``command`` with bap-tf's error handling."""
    app.run(lambda argv: call_main(command, main, argv), argv=[command, *sys.argv[1:]],
            flags_parser=_flags_parser(command))


def experiment_config(command):
    """``(config, workdir)`` of an experiment command: its workdir's run plus the given flags.

    The config is validated, then everything else that would stop the run later is checked
    (``run.stages.check_run``: files, folder domains, the QAT extra), all before the workdir is
    created or written, so a bad flag leaves nothing behind. Then the resolved config goes to
    ``WORKDIR/config.json`` and ``flags.cfg``, and the folder domains' records to ``splits/``.
    """
    workdir = Workdir(os.path.abspath(FLAGS.workdir))
    explicit = cli_flags.explicit_values(config_lib.ExperimentConfig)
    config = config_for_workdir(workdir.saved_config(), explicit, FLAGS.workdir)
    records = check_run(config, workdir)
    workdir.create()
    workdir.write_config(config, cli_flags.flagfile_text(config, command))
    workdir.write_splits(records)
    return config, workdir


def say(command, message):
    """A line for the user on stdout (progress goes to stderr through absl logging)."""
    print(f"{command}: {message}", flush=True)


def stage_main(command, stages_of):
    """``main`` of bap-train/prune/export/eval: runs ``stages_of()`` on the flags' config."""

    def main(argv):
        quiet_tensorflow()
        config, workdir = experiment_config(command)
        stages = stages_of()
        logging.info("%s: stages %s in %s", command, ",".join(stages), workdir.root)
        results = run_stages(config, workdir, stages)
        print_outputs(command, workdir, results)

    return main


def quiet_tensorflow():
    """TensorFlow's own Python INFO lines (SavedModel writing...) drown the progress below
    --verbosity=1; keep its warnings. Some TensorFlow modules log through the ``tensorflow``
    logger, others straight through absl's, so the second is filtered by source file."""
    if FLAGS["verbosity"].value < 1:
        py_logging.getLogger("tensorflow").setLevel(py_logging.WARNING)
        logging.get_absl_logger().addFilter(_not_tensorflow_info)


def _not_tensorflow_info(record):
    return record.levelno >= py_logging.WARNING or f"{os.sep}tensorflow{os.sep}" not in record.pathname


def print_outputs(command, workdir, results):
    root = workdir.root
    say(command, f"done. Outputs in {root}:")
    rel = lambda path: os.path.relpath(path, root)  # noqa: E731
    if "train" in results:
        r = results["train"]
        kept = ", ".join(f"{d} {v:.2f}" for d, v in r.kept_fractions.items())
        note = " (already trained; nothing to do)" if r.skipped else ""
        print(f"  {rel(r.model_path)}: the trained masked model, {r.epochs} epochs{note}; kept {kept}; "
              f"union {r.union_fraction:.2f}")
        print(f"  {rel(r.history_path)}, tensorboard/ (tensorboard --logdir {root / 'tensorboard'}), backup/")
    if "prune" in results:
        r = results["prune"]
        ratio = r.costs["union_ratio"]
        print(f"  {rel(r.union_path)}: union-pruned model, params x{ratio['params']:.3f}, "
              f"MACs x{ratio['macs']:.3f} of the backbone")
        print(f"  pruned/<domain>.keras: {len(r.domain_paths)} per-domain models; {rel(r.costs_path)}")
    if "export" in results:
        manifest = results["export"].manifest
        for variant, entry in manifest["android"].items():
            print(f"  {entry['path']}: Android, {variant}, {entry['bytes'] / 1024:.0f} KiB")
        for variant in ("int8", "qat"):
            if manifest[variant]:
                total = sum(e["bytes"] for e in manifest[variant].values()) / 1024
                print(f"  export/{variant}/<domain>.tflite: {len(manifest[variant])} files, {total:.0f} KiB in all")
    if "eval" in results:
        from bap_tf.run.report import fmt  # loaded by the eval stage already; matplotlib slows --help

        r = results["eval"]
        report = r.report
        print(f"  {rel(r.paths['md'])}, {rel(r.paths['json'])}, plots/: S-score {report['s_score']:.0f}, "
              f"efficiency {report['efficiency']:.0f}, pruned MACs x{report['pruned']['macs_ratio']:.3f}")
        for name, d in report["domains"].items():
            print(f"    {name}: accuracy {d['accuracy_pruned']:.3f} (int8 {fmt(d['accuracy_tflite_int8'])}), "
                  f"kept {d['kept_fraction']:.2f}")
