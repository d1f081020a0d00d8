"""The tiny searches the study tests run on a real Ray cluster: synthetic data, a 4-channel
one-cell NB201 supernet, 2 steps per epoch, no probe (seconds per trial on a CPU)."""

TINY_BASE = """[base]
dataset = "synthetic"
channels = 4
depth = 1
batch_size = 16
steps_per_epoch = 2
probe_every = 0
"""


def tiny_toml(name: str, epochs: int, rest: str) -> str:
    """A grid or tuning file: ``name``, the tiny ``[base]`` with ``epochs``, then ``rest``
    (``[axes]``, ``[tune]``, ...)."""
    return f'name = "{name}"\n{TINY_BASE}epochs = {epochs}\n{rest}'
