"""The library behind the commands: one module per stage, each a function of a config.

``stages.run_stages(config, workdir, stages)`` runs train -> prune -> export -> eval (or a
part), each stage in its module (``train_stage``, ``prune_stage``, ``export_stage``,
``eval_stage``); ``pretrain.pretrain(config, workdir)`` makes a backbone. Nothing here reads
flags: the commands in ``bap_tf.cli`` build the config and call these.
"""
