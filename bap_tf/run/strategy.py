"""``--strategy`` names to ``tf.distribute`` strategies.

Build and compile the model inside ``strategy.scope()``. The training pipeline yields global
batches of ``batch_size * num_domains`` examples (``batch_size`` per domain, interleaved); Keras
splits each global batch evenly across the replicas, and ``check_batch_size`` makes sure every
replica gets whole rounds of the domains so that each one sees every domain equally.
"""

import contextlib
import json
import os
import re

import tensorflow as tf

from bap_tf.config import STRATEGIES


def get_strategy(name, tpu=""):
    """The strategy called ``name`` (one of ``STRATEGIES``); ``tpu`` names the TPU."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return KerasMultiWorkerStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise ValueError(
                f"strategy='tpu' found no TPU. Expected a reachable TPU (pass its name or grpc:// "
                f"address with --tpu). Received: tpu={tpu!r} ({type(error).__name__}: {error})"
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be one of {list(STRATEGIES)}. Received: strategy={name!r}")


class KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` with the ``reduce`` Keras 3's ``fit`` expects of it.

    Keras 3 (TF issue 72388) hands the multi-worker ``reduce`` what it cannot take:
    - a whole ``(x, y)`` batch before it builds the model, a nested structure ("unsupported
      type (<class 'dict'>)");
    - scalar logs with ``axis=0`` after every step ("Invalid reduction dimension 0 for input
      with 0 dimensions");
    - logs that are no per-replica values at all ("doesn't have device set").
    Reducing leaf by leaf, scalars across replicas only, and passing through a value that is the
    same on every replica gives what ``MirroredStrategy`` gives.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def reduce_leaf(leaf):
            if not isinstance(leaf, tf.distribute.DistributedValues):
                return leaf
            scalar = self.experimental_local_results(leaf)[0].shape.rank == 0
            return parent.reduce(reduce_op, leaf, None if scalar else axis)

        return tf.nest.map_structure(reduce_leaf, value)


class WorkerLostError(ConnectionError):
    """A worker of a multi-worker run died or stopped answering; training stopped."""


@contextlib.contextmanager
def lost_workers_reported(strategy):
    """Turns a multi-worker collective that failed because a peer is gone into ``WorkerLostError``.

    TensorFlow notices a peer that died or stopped (no more heartbeats to the coordination
    service, or ``MultiWorkerMirroredStrategy``'s health check) and aborts the collectives rather
    than letting them wait forever; what reaches ``fit``'s caller is then a bare
    ``UnavailableError`` from inside a graph. This names the worker and what to do instead.
    """
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError) as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise WorkerLostError(describe_lost_worker(error)) from error


def describe_lost_worker(error):
    """The ``WorkerLostError`` message for a collective ``error``: which worker, and what to do."""
    workers = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {}).get("worker", [])
    message = str(error.message)
    lost = sorted({int(task) for task in re.findall(r"/job:worker/replica:\d+/task:(\d+)", message)})
    named = [f"worker {task} ({workers[task]})" if task < len(workers) else f"worker {task}" for task in lost]
    # TensorFlow's reason ("... stopped sending heartbeats") follows "aborted by:"; the rest of
    # the message is the graph's traceback.
    reason = " ".join(message.split("aborted by:", 1)[-1].strip().splitlines()[:2])
    return (
        f"{' and '.join(named) or 'A worker'} of the multi-worker run died or stopped answering, so "
        f"training stopped instead of waiting for it. Expected every worker of TF_CONFIG's cluster "
        f"{workers} to run until the end; start them all again (training resumes from the last "
        f"finished epoch). Received: {type(error).__name__}: {reason[:400]}"
    )


def check_batch_size(strategy, batch_size, num_domains):
    """Refuses a per-domain batch that the replicas cannot split into whole domain rounds."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch_size (per domain) must be a multiple of the {replicas} replicas, so that each "
            f"replica sees every domain equally (global batch = batch_size x {num_domains} domains). "
            f"Received: batch_size={batch_size}"
        )
    return batch_size * num_domains
