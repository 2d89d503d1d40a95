"""Shared pytest fixtures."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator so every test is repeatable."""
    return np.random.default_rng(1234)
