import numpy as np

from promptlam.seeding import derive_seed, rng


def test_same_keys_same_numbers_and_other_keys_other_numbers():
    assert np.array_equal(rng(0, "a", 1).random(4), rng(0, "a", 1).random(4))
    assert not np.array_equal(rng(0, "a", 1).random(4), rng(0, "a", 2).random(4))
    assert not np.array_equal(rng(0, "a", 1).random(4), rng(1, "a", 1).random(4))
    assert derive_seed(0, "x") == derive_seed(0, "x") != derive_seed(0, "y")
    assert 0 <= derive_seed(5, "episode", "reach-v3", "train", 10) < 2**31
