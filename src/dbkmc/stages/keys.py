"""Config keys the rules hand to their stage steps, free of torch (the rule files import them at parse time).

A rule passes exactly these keys of its config block as ``params``: changing one of them
reruns the rule's jobs, changing any other key of the block does not.
"""

from __future__ import annotations

TRAIN_CONFIG_KEYS: tuple[str, ...] = ("hidden", "dropout", "lr", "weight_decay", "batch_size", "max_epochs",
                                      "patience", "n_members", "seed", "per_kind")
"""``models.*`` keys that make a :class:`dbkmc.detailed_balance.training.TrainConfig`."""

TRAIN_KEYS: tuple[str, ...] = (*TRAIN_CONFIG_KEYS, "split", "device")
"""``models.*`` keys of the training rules (``sas_sweep``, ``train``, ``evaluate``, ``learning_curve``)."""

NNK_TRAIN_KEYS: tuple[str, ...] = ("cutoff", "grid", "mlp_hidden", "cnn_channels", "cnn_dense", "lr", "batch_size",
                                   "max_epochs", "lr_factor", "lr_patience", "min_lr", "stop_patience", "augment",
                                   "split", "seed", "device", "transfer_tolerance")
"""``nnk.*`` keys of the ``train_nnk`` rule."""
