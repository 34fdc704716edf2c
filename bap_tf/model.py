"""The multi-domain budget-aware model: a ``keras.Model`` whose ``train_step`` is BAP's.

One step takes a batch mixing every domain (``{"image", "domain"}`` features, int labels),
and minimises ``sum_d CE_d + sum_d lambda_d (b_d - beta) + alpha * L_PS`` over the switches,
the domain BatchNorms and the heads. After the gradient step it moves the budget multipliers
``lambda_d`` and, when it is learnable, the sharing weight ``alpha`` by dual ascent
(``docs/method.md`` sections 3-4).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bap_tf import budgets, losses
from bap_tf import costs as cost_model
from bap_tf.domains import as_domain_specs, domain_index, validate_budget
from bap_tf.layers import PACKAGE
from bap_tf.switching import switched_layers


def default_switch_optimizer(learning_rate=1e-2):
    """Adam without momentum: switches follow the budget multipliers without lag."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.0)


class ProjectToBudget(keras.callbacks.Callback):
    """At the end of ``fit``, makes every domain meet its budget (``project_to_budget``)."""

    def on_train_end(self, logs=None):
        self.model.project_to_budget()


def _validate_rate(name, value):
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BudgetAwareModel(keras.Model):
    """Trains several domains on one frozen switched network under a budget.

    Args:
      network: the switched network from ``switching.build_switched_network``.
      domains: the ``DomainSpec``s, in the order of the network's domain indices.
      budget: beta in (0, 1], the fraction of the switchable cost each domain may keep.
      sharing_loss: one of ``losses.SHARING_LOSSES``; ``"none"`` is BA² trained jointly.
      sharing_weight: a fixed alpha, or ``None`` for the learnable (dual ascent) alpha.
      budget_metric: what the budget measures (``budgets.BUDGET_METRICS``): ``"macs"`` or
        ``"params"`` (each switch costs its kernel slice), or ``"latency"`` (milliseconds from
        ``latency_table``; the sharing loss then still weighs channels by their MACs).
      latency_table: the latency table dict (``export.latency_table.load_table``) of
        ``budget_metric="latency"``; stored in the model's config.
      mcu_budget: ``(flash KiB, RAM KiB)`` of ``budget_metric="mcu"``: each domain's int8 file
        and TFLM arena, estimated (``budgets.mcu``), within them; ``budget`` is then 1.
      multiplier_rate: eta_lambda, step of the budget multipliers' dual ascent.
      sharing_rate: eta_alpha, step of the learnable sharing weight's dual ascent.
      warmup_steps: first training steps in which only the BatchNorms and heads learn: the
        switches get no update and lambda and alpha stay at 0, so the budget and the sharing
        loss act on a network whose heads already fit their domains.
      max_sharing_weight: a cap on the learnable alpha (0: none). Uncapped, alpha grows while the
        union exceeds the budget, which it does from the first step (every switch starts on).
    """

    def __init__(
        self,
        network,
        domains,
        budget=0.5,
        sharing_loss="jaccard",
        sharing_weight=None,
        budget_metric="macs",
        multiplier_rate=2.0,
        sharing_rate=0.5,
        warmup_steps=0,
        max_sharing_weight=0.0,
        latency_table=None,
        mcu_budget=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.network = network
        self.domains = as_domain_specs(domains)
        self.budget = validate_budget(budget)
        if sharing_loss not in losses.SHARING_LOSSES:
            raise ValueError(
                f"sharing_loss must be one of {losses.SHARING_LOSSES}. Received: sharing_loss={sharing_loss!r}"
            )
        self.sharing_loss_name = sharing_loss
        self.learnable_sharing_weight = sharing_weight is None
        initial_alpha = 0.0 if sharing_weight is None else _validate_rate("sharing_weight", sharing_weight)
        self.budget_metric = budget_metric
        self.multiplier_rate = _validate_rate("multiplier_rate", multiplier_rate)
        self.sharing_rate = _validate_rate("sharing_rate", sharing_rate)
        self.max_sharing_weight = _validate_rate("max_sharing_weight", max_sharing_weight)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0. Received: warmup_steps={warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)

        self.switched = switched_layers(network)
        if not self.switched:
            raise ValueError(f"The network '{network.name}' has no switched convolution to train.")
        num_domains = self.switched[0].num_domains
        if num_domains != len(self.domains):
            raise ValueError(
                f"The network was built for {num_domains} domains. Received: {len(self.domains)} domains"
            )
        self.latency_table = latency_table
        self.mcu_budget = None if mcu_budget is None else tuple(float(v) for v in mcu_budget)
        self._budget_cost = budgets.budget_cost(budget_metric, network, self.switched, latency_table, self.mcu_budget)
        floor = self._budget_cost.minimum_fraction()
        if self.budget <= floor:
            raise ValueError(
                f"The budget is below what the network costs with every switch off ({floor:.3f} of the backbone's "
                f"{budget_metric}: the layers no switch removes). Expected a budget in ({floor:.3f}, 1]. "
                f"Received: budget={budget!r}"
            )
        # What the sharing loss weighs each channel by: its MACs unless the budget counts params.
        sharing_metric = "params" if budget_metric == "params" else "macs"
        self._switch_costs = cost_model.switch_cost_vector(self.switched, sharing_metric).astype("float32")
        self._num_classes = np.array([d.num_classes for d in self.domains], dtype="int32")

        # One copy per step whatever the number of replicas: the updates are data-independent.
        self.multipliers = self.add_weight(
            name="budget_multipliers", shape=(num_domains,), initializer="zeros",
            trainable=False, aggregation="only_first_replica",
        )
        self.sharing_weight = self.add_weight(
            name="sharing_weight", shape=(), initializer=keras.initializers.Constant(initial_alpha),
            trainable=False, aggregation="only_first_replica",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.domain_losses = [keras.metrics.Mean(name=f"{d.name}_loss") for d in self.domains]
        self.domain_accuracies = [
            keras.metrics.SparseCategoricalAccuracy(name=f"{d.name}_accuracy") for d in self.domains
        ]
        # All state exists now (the network is built): nothing is left for a first call.
        self.built = True

    # -- the network's state ------------------------------------------------------------
    @property
    def domain_names(self):
        return [d.name for d in self.domains]

    def gates(self):
        """Binary gates of all switched convs, concatenated: ``(num_domains, num_switches)``."""
        return ops.concatenate([layer.gates() for layer in self.switched], axis=-1)

    def kept_fractions(self):
        """Per-domain kept fraction of the budget's cost, as numpy ``(num_domains,)``."""
        return ops.convert_to_numpy(self._budget_cost.kept_fractions(self.gates()))

    def latency_cost(self):
        """The ``budgets.LatencyCost`` of a latency budget, else None."""
        return self._budget_cost if self.budget_metric == "latency" else None

    def mcu_estimates(self):
        """``{domain: {"flash_bytes", "ram_bytes", "fraction"}}`` under an MCU budget, else None."""
        if self.budget_metric != "mcu":
            return None
        gates = self.gates()
        estimate = {k: ops.convert_to_numpy(v) for k, v in self._budget_cost.estimate(gates).items()}
        fractions = ops.convert_to_numpy(self._budget_cost.kept_fractions(gates))
        return {name: {"flash_bytes": float(estimate["flash_bytes"][i]), "ram_bytes": float(estimate["ram_bytes"][i]),
                       "fraction": float(fractions[i])} for i, name in enumerate(self.domain_names)}

    def union_fraction(self):
        return float(ops.convert_to_numpy(self._union_fraction(self.gates())))

    def _union_fraction(self, gates):
        """The budget's cost of the channels some domain keeps, as a fraction."""
        return self._budget_cost.kept_fractions(ops.expand_dims(losses.union_gates(gates), 0))[0]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def domain_logits(self, images, domain, batch_size=256):
        """Logits ``(N, num_classes)`` of one domain (name or index) for a batch of images."""
        index = self.domain_index(domain)
        images = np.asarray(images)
        expected = tuple(self.network.input["image"].shape[1:])
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"Images must have shape (N, {', '.join(map(str, expected))}). "
                f"Received: images.shape={images.shape}"
            )
        domains = np.full((len(images),), index, dtype="int32")
        logits = self.predict({"image": images, "domain": domains}, batch_size=batch_size, verbose=0)
        return logits[:, : self.domains[index].num_classes]

    def domain_index(self, domain):
        return domain_index(self.domains, domain)

    def project_to_budget(self):
        """Turns off each over-budget domain's weakest switches until it meets the budget.

        Dual ascent keeps the kept fraction within a few points of the budget but it may end
        a little above. This makes the budget hard: per domain, the fewest of its switches that
        are on are turned off, in increasing order of their real value (the least confident
        first), for ``b_d <= budget`` as the rewrite will build it (``rounded``). A cost only
        falls as switches go off, so the count is found by bisection.

        A cost with ``step_moves`` (a latency table: the rewrite keeps each stream on a multiple
        of the table's step) is projected a step at a time instead: of the moves that take one
        stream down to its next lower step, the one that loses the least confidence per unit of
        cost saved, until the domain fits. Switch by switch, nothing is saved until a stream
        passes a step, so the bisection went hundreds of switches deep and cut whole stages.
        Such a cost also fills a domain that ends under its budget back up to it (the switches
        nearest to on first, the most that fit): the budget is the device's time, and time left
        unused is accuracy given away. Returns the number of switches turned off per domain
        (negative: turned on).
        """
        values = np.concatenate([layer.switches.numpy() for layer in self.switched], axis=1)
        by_steps = hasattr(self._budget_cost, "step_moves")
        changed = []
        for row in values:
            count = self._project_by_steps(row) if by_steps else 0
            on = np.flatnonzero(row > 0)  # switch by switch: all of it, or what steps left over
            order = on[np.argsort(row[on], kind="stable")]
            more = self._most_that_fit(row, order, on=False)
            row[order[:more]] = -np.abs(row[order[:more]])
            count += more
            if by_steps:
                off = np.flatnonzero(row <= 0)
                order = off[np.argsort(-row[off], kind="stable")]  # the nearest to on first
                filled = self._most_that_fit(row, order, on=True)
                row[order[:filled]] = np.maximum(np.abs(row[order[:filled]]), 1e-3)
                count -= filled
            changed.append(count)
        offsets = np.cumsum([0] + [layer.switches.shape[1] for layer in self.switched])
        for layer, start, stop in zip(self.switched, offsets[:-1], offsets[1:]):
            layer.switches.assign(values[:, start:stop])
        return changed

    def _rounded_fraction(self, gates):
        """The domains' costs of gate rows ``gates`` ``(N, S)`` as the rewrite builds them."""
        return ops.convert_to_numpy(self._budget_cost.kept_fractions(ops.convert_to_tensor(gates), rounded=True))

    def _project_by_steps(self, row):
        """Applies ``step_moves`` to one domain's switch values ``row`` (in place) until it
        fits; returns the number of switches turned off."""
        turned_off = 0
        while True:
            gates = (row > 0).astype("float32")
            now = float(self._rounded_fraction(gates[None])[0])
            moves = self._budget_cost.step_moves(row) if now > self.budget + 1e-6 else []
            if not moves:
                return turned_off
            trials, lost = zip(*moves)
            savings = now - self._rounded_fraction(np.stack(trials))
            if not np.any(savings > 1e-9):
                return turned_off
            score = np.where(savings > 1e-9, np.asarray(lost) / np.maximum(savings, 1e-12), np.inf)
            off = (gates > 0) & (trials[int(np.argmin(score))] == 0)
            row[off] = -np.abs(row[off])
            turned_off += int(off.sum())

    def _most_that_fit(self, row, order, on):
        """Turning off (``on`` False) the fewest of ``order``'s first switches, or turning on
        (``on`` True) the most of them, that leave the domain within its budget (``rounded``).
        A cost only rises as switches come on, so the count is found by bisection."""

        def fits(count):
            gates = (row > 0).astype("float32")
            gates[order[:count]] = 1.0 if on else 0.0
            return float(self._rounded_fraction(gates[None])[0]) <= self.budget + 1e-6

        low, high = 0, len(order)
        if on:  # the largest count that fits
            while low < high:
                middle = (low + high + 1) // 2
                low, high = (middle, high) if fits(middle) else (low, middle - 1)
            return low
        while low < high:  # the smallest count that fits
            middle = (low + high) // 2
            low, high = (low, middle) if fits(middle) else (middle + 1, high)
        return low

    # -- the step -------------------------------------------------------------------------
    def _check_labels(self, labels, domain):
        """``labels``, once checked: fails the step on a label outside its domain's classes,
        naming the first such label. The labels returned depend on the check, so in a traced
        step it runs before the cross-entropy (which would otherwise fail first, unnamed).

        A label past the domain's class count would otherwise pick a padding logit and give a
        huge but finite loss. XLA drops assertions, so under ``jit_compile`` this check rests
        on the input pipeline's own validation (``bap_tf.data.pipeline``).
        """
        limits = tf.gather(self._num_classes, domain)
        invalid = tf.logical_or(labels < 0, labels >= limits)
        first = tf.argmax(tf.cast(invalid, "int32"))
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(invalid)),
            [
                "Label outside its domain's class range [0, num_classes). Received: label =",
                labels[first], "in domain index", domain[first], "with num_classes =", limits[first],
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    def _cross_entropies(self, labels, logits, domain):
        """Per-domain mean cross-entropy, scaled to the global batch across replicas."""
        per_sample = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        num_domains = len(self.domains)
        counts = ops.segment_sum(ops.ones_like(per_sample), domain, num_domains)
        sums = ops.segment_sum(per_sample, domain, num_domains)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # Each replica holds the same share of every domain, so the global count is local x replicas.
        return sums / (ops.maximum(counts, 1.0) * replicas)

    def _constraint_terms(self):
        gates = self.gates()
        kept = self._budget_cost.kept_fractions(gates)
        union = self._union_fraction(gates)
        sharing = losses.sharing_loss(self.sharing_loss_name, gates, self._switch_costs)
        budget_term = ops.sum(self.multipliers * (kept - self.budget))
        return kept, union, sharing, budget_term

    def compile(self, optimizer="adam", switch_optimizer=None, **kwargs):
        """Like ``keras.Model.compile``; the switches get an optimizer of their own.

        ``switch_optimizer=None`` gives ``default_switch_optimizer()``: Adam without momentum.
        With momentum, switches keep moving for ~10 steps after the multipliers change sign,
        so the kept fraction swings far around the budget. Optimizer slots are built here:
        creating them inside the first traced step would make ``tf.function`` trace it twice.
        """
        super().compile(optimizer=optimizer, **kwargs)
        self.switch_optimizer = keras.optimizers.get(switch_optimizer or default_switch_optimizer())
        switches, others = self._variable_groups()
        self.optimizer.build(others)
        self.switch_optimizer.build(switches)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["switch_optimizer"] = keras.saving.serialize_keras_object(self.switch_optimizer)
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    def _variable_groups(self):
        """(switch variables, every other trainable variable)."""
        switches = [layer.switches for layer in self.switched]
        switch_ids = {id(v) for v in switches}
        return switches, [v for v in self.trainable_variables if id(v) not in switch_ids]

    def _constraints_active(self):
        """1.0 once the warm-up is over, else 0.0 (a tensor: the step is traced once)."""
        return ops.cast(self.optimizer.iterations >= self.warmup_steps, "float32")

    def _apply_gradients(self, tape, loss, active):
        switches, others = self._variable_groups()
        gradients = tape.gradient(loss, switches + others)
        # Zero gradients leave the switches still: the switch optimizer has no momentum.
        self.switch_optimizer.apply([g * active for g in gradients[: len(switches)]], switches)
        self.optimizer.apply(gradients[len(switches) :], others)

    def train_step(self, data):
        inputs, labels = data[0], data[1]
        domain = ops.cast(inputs["domain"], "int32")
        labels = ops.cast(labels, "int32")
        labels = self._check_labels(labels, domain)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = self.network(inputs, training=True)
            domain_ce = self._cross_entropies(labels, logits, domain)
            kept, union, sharing, budget_term = self._constraint_terms()
            # Summed over replicas by the optimizer: data-independent terms count once.
            loss = ops.sum(domain_ce) + (budget_term + self.sharing_weight * sharing) / replicas
        active = self._constraints_active()
        self._apply_gradients(tape, loss, active)
        self._dual_ascent(kept, union, active)
        return self._update_metrics(loss, domain_ce, labels, logits, domain, kept, union, sharing)

    def _dual_ascent(self, kept, union, active):
        multipliers = ops.maximum(0.0, self.multipliers + self.multiplier_rate * (kept - self.budget))
        self.multipliers.assign(multipliers * active)
        if self.learnable_sharing_weight and self.sharing_loss_name != "none":
            alpha = ops.maximum(0.0, self.sharing_weight + self.sharing_rate * (union - self.budget))
            if self.max_sharing_weight:
                alpha = ops.minimum(alpha, self.max_sharing_weight)
            self.sharing_weight.assign(alpha * active)

    def test_step(self, data):
        inputs, labels = data[0], data[1]
        domain = ops.cast(inputs["domain"], "int32")
        labels = ops.cast(labels, "int32")
        labels = self._check_labels(labels, domain)
        logits = self.network(inputs, training=False)
        domain_ce = self._cross_entropies(labels, logits, domain)
        kept, union, sharing, _ = self._constraint_terms()
        return self._update_metrics(ops.sum(domain_ce), domain_ce, labels, logits, domain, kept, union, sharing)

    def _update_metrics(self, loss, domain_ce, labels, logits, domain, kept, union, sharing):
        self.loss_tracker.update_state(loss)
        logs = {"loss": self.loss_tracker.result()}
        for index, spec in enumerate(self.domains):
            in_domain = ops.cast(ops.equal(domain, index), "float32")
            # Weight by presence so a batch without this domain leaves its means unchanged.
            self.domain_losses[index].update_state(domain_ce[index], sample_weight=ops.minimum(ops.sum(in_domain), 1.0))
            self.domain_accuracies[index].update_state(labels, logits, sample_weight=in_domain)
            logs[f"{spec.name}_loss"] = self.domain_losses[index].result()
            logs[f"{spec.name}_accuracy"] = self.domain_accuracies[index].result()
            logs[f"{spec.name}_kept"] = kept[index]
            logs[f"{spec.name}_lambda"] = self.multipliers[index]
        logs.update(union=union, sharing_loss=sharing, sharing_weight=ops.convert_to_tensor(self.sharing_weight))
        return logs

    @property
    def metrics(self):
        return [self.loss_tracker, *self.domain_losses, *self.domain_accuracies]

    # -- serialization ----------------------------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "network": keras.saving.serialize_keras_object(self.network),
            "domains": [d.to_dict() for d in self.domains],
            "budget": self.budget,
            "sharing_loss": self.sharing_loss_name,
            "sharing_weight": None if self.learnable_sharing_weight else float(self.sharing_weight.numpy()),
            "budget_metric": self.budget_metric,
            "multiplier_rate": self.multiplier_rate,
            "sharing_rate": self.sharing_rate,
            "warmup_steps": self.warmup_steps,
            "max_sharing_weight": self.max_sharing_weight,
            "latency_table": self.latency_table,
            "mcu_budget": None if self.mcu_budget is None else list(self.mcu_budget),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
