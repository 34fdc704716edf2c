"""The bap-* commands: absl apps that turn flags into a config and call one library function.

``bap-pretrain`` (``pretrain``), ``bap-train`` (``train``: by default every stage), ``bap-prune``
(``prune``), ``bap-export`` (``export``), ``bap-eval`` (``evaluate``). ``flags`` defines the
flags, ``app`` the shared entry point (one-line errors, exit codes, the workdir's config).
"""
