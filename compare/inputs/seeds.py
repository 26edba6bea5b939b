"""The run's random streams, all from one ``seed``: independent, so changing one input (say, ``--data``)
leaves the others as they were."""

import numpy as np


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the data, the initial weights and the batch order."""
    data_rng, init_rng, batch_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return data_rng, init_rng, batch_rng


def dropout_seed(seed: int) -> int:
    """A fourth independent stream, for the manual side's dropout masks."""
    return int(np.random.SeedSequence(seed).spawn(4)[3].generate_state(1)[0])
