"""Reference errors for the S-score: from a file, or measured in the run.

From a file (``--reference_errors=PATH``): JSON ``{domain: error}`` with errors as fractions in
[0, 1] (e.g. the published errors of fine-tuned models), or a ``reference_errors.json`` written
by another run (its ``errors`` entry is read), so several budgets can share one reference.

Measured (the default): the *feature extractor* baseline of Rebuffi et al. (2017): the frozen
pre-trained backbone, unpruned and with its source BatchNorm statistics, and per domain a
linear classifier (multinomial logistic regression on the standardised pooled features) fitted
on at most ``MAX_TRAIN_IMAGES`` training images, evaluated on the same test split as the run.
Cheap (one forward pass of the backbone over the data) and a fair floor: BAP trains more than a
head (domain BatchNorms and switches), so beating it means the switches and BatchNorms help.
"""

import numpy as np
from absl import logging
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bap_tf import metrics
from bap_tf.run import sources as data_sources
from bap_tf.run.backbone import load_backbone
from bap_tf.atomic import read_json, write_json

MAX_TRAIN_IMAGES = 10_000
FEATURE_EXTRACTOR = (
    "feature_extractor: errors of the unpruned pre-trained backbone, frozen with its source "
    "BatchNorm statistics, with a linear classifier per domain (logistic regression on its "
    "pooled features), measured in this run on the same test split"
)


def reference_errors(config, workdir):
    """``(errors {domain: error}, description)`` of the config's S-score reference."""
    if config.reference_errors:
        return load_reference_errors(config.reference_errors, config.domains)
    if workdir.reference_errors.exists():
        saved = read_json(workdir.reference_errors)
        if saved.get("kind") == "feature_extractor" and saved.get("pretrained") == config.pretrained \
                and set(config.domains) <= set(saved["errors"]):
            return {d: saved["errors"][d] for d in config.domains}, saved["description"]
    errors = feature_extractor_errors(config)
    write_json(workdir.reference_errors, {
        "kind": "feature_extractor", "description": FEATURE_EXTRACTOR,
        "pretrained": config.pretrained, "errors": errors,
    })
    return errors, FEATURE_EXTRACTOR


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
        raise ValueError(f"reference_errors must be a JSON file {{domain: error}}. Received: {path} ({error})") from None
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


def feature_extractor_errors(config):
    """Test error per domain of frozen-backbone features + a logistic-regression head."""
    backbone = load_backbone(config)
    train_sources = data_sources.domain_sources(config, "train")
    test_sources = data_sources.domain_sources(config, "test")
    errors = {}
    for train, test in zip(train_sources, test_sources):
        logging.info("Measuring the feature-extractor reference on %s.", train.name)
        x_train, y_train = data_sources.sample_images(train, config.image_size, MAX_TRAIN_IMAGES, config.seed)
        x_test, y_test = data_sources.labelled_images(test, config.image_size)
        scaler = StandardScaler()
        f_train = scaler.fit_transform(backbone.predict(x_train, batch_size=256, verbose=0))
        f_test = scaler.transform(backbone.predict(x_test, batch_size=256, verbose=0))
        classifier = LogisticRegression(max_iter=2000, C=1.0, random_state=config.seed)
        classifier.fit(f_train, y_train)
        errors[train.name] = float(1.0 - np.mean(classifier.predict(f_test) == y_test))
    return errors
