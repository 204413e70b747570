"""The training engine of the deep models: the epoch loop (:mod:`xmc.training.loop`), length-bucketed
batching (:mod:`xmc.training.batching`), checkpoints (:mod:`xmc.training.checkpoint`, torch-free at import:
the linear PLT uses it too), the loop's params (:mod:`xmc.training.params`) and torch.distributed helpers
(:mod:`xmc.training.distributed`). Importing this package imports nothing else.
"""
