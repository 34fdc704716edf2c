"""Params and MACs of the reduced models next to the backbone's, all from ``bap_tf.costs``.

What is counted (``docs/method.md`` section 6): conv and dense layers' weights and multiply-accumulates;
a BatchNormalization folds into the conv before it (one bias per channel, no MACs); gathers,
masks, activations, adds and pooling cost nothing. Each cost is split into the switched convs,
the unswitched layers (RGB stem, depthwise convs, BatchNorms) and the heads.

- backbone: the switched network without heads, as one single-domain backbone (no switches);
- union-pruned model: the layers the domains share counted once, plus every domain's own
  BatchNorms and head; each domain's ChannelMask bits are reported as ``mask_bits`` and enter
  ``params_with_masks`` as bits / 32 (a 1-bit switch is 1/32 of a float32 parameter). Masks
  are only stored where a domain uses a strict subset of a conv's kept inputs;
- per-domain model: every layer of it (no masks).
"""

import dataclasses

from bap_tf import costs
from bap_tf.layers import SwitchedConv2D


@dataclasses.dataclass(frozen=True)
class ModelCost:
    """A model's cost split by part (``costs.PARTS``), plus the bits of its channel masks."""

    parts: dict
    mask_bits: int = 0

    @property
    def total(self):
        return sum(self.parts.values(), costs.Cost())

    @property
    def params_with_masks(self):
        return self.total.params + self.mask_bits / costs.BITS_PER_PARAM

    def to_dict(self):
        return {
            "params": self.total.params,
            "macs": self.total.macs,
            "mask_bits": self.mask_bits,
            "params_with_masks": self.params_with_masks,
            **{f"{part}_params": cost.params for part, cost in self.parts.items()},
            **{f"{part}_macs": cost.macs for part, cost in self.parts.items()},
        }


def model_cost(models, switched_names):
    """``ModelCost`` of one model or of a dict of models sharing layers (each layer once)."""
    layers = costs.unique_layers(models)
    return ModelCost(costs.cost_by_part(layers, set(switched_names)), costs.mask_bits(models))


def backbone_cost(network):
    """``ModelCost`` of the network's backbone (no heads, no switches, one domain's BN)."""
    switched = {layer.name for layer in network.layers if isinstance(layer, SwitchedConv2D)}
    return ModelCost(costs.cost_by_part(costs.backbone_layers(network), switched))


def prune_report(rewriter, union_models, domain_models=None, budget=None, latency=None, mcu=None):
    """JSON-ready costs: backbone, union-pruned model, per-domain models, and ratios to the backbone.

    Per-domain costs of the union model (``union_per_domain``) count the shared layers plus
    that domain's own layers, i.e. what one domain's model of the union costs to run.
    ``budget``: optional ``(fraction, metric)``; adds ``budget_check``, per domain's own model
    its switched convs' ``metric`` over the backbone's, whether that is within the budget and
    by how much it exceeds it (channel rounding spends budget the switches did not ask for).
    ``latency``: the ``budgets.LatencyCost`` of a latency budget; adds ``latency``, the table's
    ms of the backbone, of each domain's model and of each domain's signature of the union
    model, and the ``budget_check`` of metric ``"latency"`` compares each domain's ms with
    the budget's share of the backbone's. ``mcu``: ``BudgetAwareModel.mcu_estimates()`` of an
    MCU budget; stored as ``mcu_estimate``, its fractions are the ``budget_check``'s.
    """
    switched = rewriter.dependency.switched
    backbone = backbone_cost(rewriter.network)
    union = model_cost(union_models, switched)
    report = {
        "backbone": backbone.to_dict(),
        "union": union.to_dict(),
        "union_per_domain": {name: model_cost(model, switched).to_dict() for name, model in union_models.items()},
        "union_ratio": _ratios(union, backbone),
    }
    if mcu is not None:
        report["mcu_estimate"] = mcu
    if domain_models:
        report["domains"] = {name: model_cost(model, switched).to_dict() for name, model in domain_models.items()}
        report["domain_ratio"] = {
            name: _ratios(model_cost(model, switched), backbone) for name, model in domain_models.items()
        }
        if latency is not None:
            report["latency"] = {
                **latency.summary(),
                "domains_ms": {name: latency.model_ms(model) for name, model in domain_models.items()},
                "union_ms": {name: latency.model_ms(model) for name, model in union_models.items()},
            }
            if budget is not None:
                report["latency"]["budget"] = budget[0]
        if budget is not None:
            fraction, metric = budget
            report["budget_check"] = {}
            for name, ratios in report["domain_ratio"].items():
                if metric == "latency":
                    ratio = report["latency"]["domains_ms"][name] / latency.backbone_ms
                elif metric == "mcu":
                    ratio = mcu[name]["fraction"]
                else:
                    ratio = ratios[f"switched_{metric}"]
                report["budget_check"][name] = {"budget": fraction, "metric": metric, "ratio": ratio,
                                                "met": ratio <= fraction + 1e-9,
                                                "exceeded_by": max(0.0, ratio - fraction)}
    return report


def _ratios(cost, backbone):
    """Params and MACs of ``cost`` over the backbone's, in total and for the switched convs."""
    def ratio(a, b):
        return a / b if b else float("nan")

    return {
        "params": ratio(cost.params_with_masks, backbone.total.params),
        "macs": ratio(cost.total.macs, backbone.total.macs),
        "switched_params": ratio(cost.parts["switched"].params, backbone.parts["switched"].params),
        "switched_macs": ratio(cost.parts["switched"].macs, backbone.parts["switched"].macs),
    }
