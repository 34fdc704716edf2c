"""``--strategy`` names to ``tf.distribute`` strategies.

Build and compile the model inside ``strategy.scope()``. The training pipeline yields global
batches of ``batch_size * num_domains`` examples (``batch_size`` per domain, interleaved); Keras
splits each global batch evenly across the replicas, and ``check_batch_size`` makes sure every
replica gets whole rounds of the domains so that each one sees every domain equally.
"""

import tensorflow as tf

from bap_tf.config import STRATEGIES


def get_strategy(name, tpu=""):
    """The strategy called ``name`` (one of ``STRATEGIES``); ``tpu`` names the TPU."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
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
