"""The S-score's reference errors: from a file, or from the baselines measured in the run.

Reference errors from a file (``--reference_errors=PATH``): JSON ``{domain: error}`` with errors
as fractions in [0, 1] (e.g. the published errors of fine-tuned models), or a JSON file whose
``errors`` entry holds them (a ``reference_errors.json`` shared by several runs).

Otherwise the errors of the baselines measured in the run (``bap_tf.run.baseline_cache``):
per-domain fine-tuning of the whole backbone, the Visual Decathlon convention (250 points per
domain at the reference), or, when ``config.baselines`` is off, the cheaper feature extractor.
"""

from bap_tf import metrics
from bap_tf.atomic import read_json
from bap_tf.run import baseline_models as baselines_lib


def reference_errors(config, baselines):
    """``(errors {domain: error}, description)`` of the S-score reference, given the run's
    ``measured_baselines``: the file when there is one, else fine-tuning, else the feature
    extractor."""
    if config.reference_errors:
        return load_reference_errors(config.reference_errors, config.domains)
    kind = "finetune" if baselines.get("finetune") else "feature_extractor"
    errors = {d: 1.0 - baselines[kind][d]["accuracy"] for d in config.domains}
    return errors, f"{baselines_lib.DESCRIPTIONS[kind]}; measured in this run on the same test split"


def load_reference_errors(path, domains):
    """``({domain: error}, description)`` from a JSON file (see module docstring)."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"reference_errors must be a JSON file {{domain: error}}. Received: "
            f"reference_errors={path!r}, which does not exist"
        ) from None
    except ValueError as error:
        raise ValueError(
            f"reference_errors must be a JSON file {{domain: error}}. Received: {path} ({error})"
        ) from None
    errors = data.get("errors", data) if isinstance(data, dict) else None
    if not isinstance(errors, dict):
        raise ValueError(f"reference_errors must hold a JSON object {{domain: error}}. Received: {path}")
    missing = [d for d in domains if d not in errors]
    if missing:
        raise ValueError(
            f"reference_errors must give an error for every domain {list(domains)}. "
            f"Received: {path} lacks {missing}"
        )
    for domain in domains:
        metrics.check_error(domain, errors[domain], f"The reference error of {domain!r} in {path}")
    return {d: float(errors[d]) for d in domains}, f"file: {path}"
