"""Multi-domain scores: top-1 accuracy, the Visual Decathlon S-score and the efficiency of a pruned model.

S-score (Rebuffi et al. 2017): ``S = sum_d alpha_d * max(0, E_d^max - E_d) ** gamma`` with
``gamma = 2``, ``E_d^max = 2 * E_d^ref`` (twice the reference error on domain d) and
``alpha_d = 1000 * (E_d^max) ** -gamma``. A perfect domain (error 0) scores 1000, a domain at
the reference error 250, a domain at or above twice the reference error 0. Errors are fractions
in [0, 1] (the score does not depend on the unit: ``alpha_d`` normalises it away).

Efficiency (ours, see ``docs/method.md`` section 6): ``S / sqrt(params_ratio * macs_ratio)``, the
S-score divided by the geometric mean of the model's params and MACs relative to the backbone.

numpy only, no Keras: the QAT worker process (legacy Keras) scores its models with it too.
"""

import math

import numpy as np

GAMMA = 2
MAX_ERROR_FACTOR = 2.0
POINTS_PER_DOMAIN = 1000.0


def accuracy(logits, labels):
    """Top-1 accuracy of ``(N, K)`` logits (or any increasing map of them, such as raw int8
    outputs) against ``(N,)`` integer labels; NaN when there are no examples."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def check_error(name, value, what):
    """``value`` as a float after checking it is an error fraction in [0, 1]."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be an error fraction in [0, 1]. Received: {name}={value!r}")
    return float(value)


def domain_score(error, reference_error, gamma=GAMMA):
    """One domain's S-score term: ``1000 * (max(0, E_max - E) / E_max) ** gamma``.

    A zero reference error makes ``E_max`` zero: the domain then scores 1000 for error 0 and
    0 otherwise (the limit of the formula).
    """
    error = check_error("error", error, "error")
    reference_error = check_error("reference_error", reference_error, "reference_error")
    max_error = MAX_ERROR_FACTOR * reference_error
    if max_error == 0.0:
        return POINTS_PER_DOMAIN if error == 0.0 else 0.0
    alpha = POINTS_PER_DOMAIN * max_error ** (-gamma)
    return alpha * max(0.0, max_error - error) ** gamma


def s_score(errors, reference_errors, gamma=GAMMA):
    """``(total, {domain: term})`` over the domains of ``errors`` ({domain: error fraction}).

    Every domain of ``errors`` needs a reference error; extra reference domains are ignored.
    """
    if not errors:
        raise ValueError("s_score needs at least one domain. Received: errors={}")
    missing = sorted(set(errors) - set(reference_errors))
    if missing:
        raise ValueError(
            f"Every domain needs a reference error. Expected reference errors for {sorted(errors)}. "
            f"Received none for: {missing}"
        )
    terms = {d: domain_score(e, reference_errors[d], gamma) for d, e in errors.items()}
    return sum(terms.values()), terms


def efficiency(score, params_ratio, macs_ratio):
    """``score / sqrt(params_ratio * macs_ratio)``: S-score per unit of (geometric mean) cost."""
    for name, value in (("params_ratio", params_ratio), ("macs_ratio", macs_ratio)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0. Received: {name}={value!r}")
    return float(score) / math.sqrt(params_ratio * macs_ratio)
