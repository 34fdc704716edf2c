"""Domain specifications: the one place that validates domain names and label spaces."""

import dataclasses
import math
import numbers
import re

# A domain's name becomes Keras layer names (TensorFlow name scopes), file names (pruned/<name>.keras,
# export/int8/<name>.tflite), TFLite signature keys and C identifiers (export.firmware). ASCII
# letters, digits, '_' and '-' (Decathlon's "vgg-flowers"), starting with a letter, are valid in
# all of them once '-' is written '_' where an identifier is needed (``identifier``).
NAME_RULE = "ASCII letters, digits, '_' and '-', starting with a letter"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """A target domain: its name and the size of its label space."""

    name: str
    num_classes: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"A domain needs a non-empty name. Received: name={self.name!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(
                f"Domain '{self.name}' needs a positive integer number of classes. "
                f"Received: num_classes={self.num_classes!r}"
            )

    def to_dict(self):
        return dataclasses.asdict(self)


def identifier(name):
    """The name of a domain where an identifier is needed (TFLite signature keys): '-' as '_'."""
    return name.replace("-", "_")


def check_domain_names(names):
    """Raises ``ValueError`` for a name outside ``NAME_RULE``, or for two names that differ only
    in case, '-' and '_': the firmware sources would give them the same C symbol, include guard
    or class name (``export.firmware``: ``a-b`` and ``a_b`` share ``g_a_b_model_data``, ``A``
    and ``a`` ``kAArenaSize``, ``aB`` and ``a_b`` ``ABOpResolver``), and a case-insensitive disk
    the same files."""
    names = list(names)
    shown = ",".join(map(str, names))
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"Domain name {name!r} cannot name layers, files, TFLite signatures and C identifiers. "
                f"Expected {NAME_RULE}. Received: domains={shown}"
            )
    seen = {}
    for name in names:
        key = identifier(name).replace("_", "").lower()
        if key in seen:
            raise ValueError(
                f"Domains {seen[key]!r} and {name!r} would share C identifiers in the firmware sources. "
                f"Expected names that differ in more than case, '-' and '_'. Received: domains={shown}"
            )
        seen[key] = name


def as_domain_specs(domains):
    """Validated tuple of ``DomainSpec`` from specs, dicts or ``(name, num_classes)`` pairs."""
    specs = []
    for domain in domains:
        if isinstance(domain, DomainSpec):
            specs.append(domain)
        elif isinstance(domain, dict):
            specs.append(DomainSpec(**domain))
        else:
            name, num_classes = domain
            specs.append(DomainSpec(name, num_classes))
    if not specs:
        raise ValueError("At least one domain is needed. Received: domains=[]")
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Domain names must be unique. Received duplicates: {duplicates}")
    check_domain_names(names)
    return tuple(specs)


def domain_index(domains, domain):
    """Index of ``domain`` (a name or an index) among ``domains``, or a clear error."""
    names = [d.name for d in domains]
    if isinstance(domain, numbers.Integral) and not isinstance(domain, bool) and 0 <= domain < len(names):
        return int(domain)
    if domain in names:
        return names.index(domain)
    raise ValueError(f"Unknown domain. Expected one of {names}. Received: domain={domain!r}")


def validate_budget(budget):
    """Returns ``budget`` as a float after checking it is a fraction in (0, 1]."""
    try:
        value = float(budget)
    except (TypeError, ValueError):
        value = math.nan
    if not (0.0 < value <= 1.0):
        raise ValueError(f"budget must be a fraction in (0, 1]. Received: budget={budget!r}")
    return value
