"""Counter-based RNG independence from the batch; action validation at the simulator boundary."""

from __future__ import annotations

import numpy as np
import pytest

from sim_bridge.api import Action, NonFiniteActionError, as_action_array
from sim_bridge.embedded.rng import uniform, world_seed


def test_draws_do_not_depend_on_batch_composition():
    seeds = np.array([world_seed(s) for s in range(5)])
    counters = np.array([3, 1, 4, 1, 5])
    batch = uniform(seeds, counters, stream=7, n=6)
    for b in range(5):
        alone = uniform(seeds[b : b + 1], counters[b : b + 1], stream=7, n=6)
        np.testing.assert_array_equal(alone[0], batch[b])
    assert not np.allclose(uniform(seeds, counters, 8, 6), batch)  # streams differ
    big = uniform(np.array([world_seed(i) for i in range(2000)]), np.zeros(2000, np.int64), 0, 50)
    assert 0.49 < big.mean() < 0.51 and big.min() >= 0.0 and big.max() < 1.0


def test_nan_actions_are_refused_naming_the_world():
    with pytest.raises(NonFiniteActionError, match=r"world\(s\) \[1\]"):
        as_action_array(np.array([[0.0, 0.0], [np.nan, 0.0]]), 2)


def test_actions_are_clipped_and_shape_checked():
    np.testing.assert_array_equal(as_action_array(Action(2.0, -3.0), 1), [[1.0, -1.0]])
    with pytest.raises(ValueError, match=r"shape \[B=3, 2\]"):
        as_action_array(np.zeros((2, 2)), 3)
