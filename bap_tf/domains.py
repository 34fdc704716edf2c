"""Domain specifications: the one place that validates domain names and label spaces."""

import dataclasses
import math
import numbers


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
