"""Shared test helpers: the ../shared fixtures folder and small-model settings."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> pathlib.Path:
    """Returns a path under ../shared, skipping the test when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the ../shared fixtures are only on developer and CI machines)")
    return path
