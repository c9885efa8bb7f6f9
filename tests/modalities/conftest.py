"""Synthetic geometry with known answers, and the prepare_modality command line, for these tests."""

import importlib.util
import pathlib
from typing import Callable, Dict

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def camera_rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation from a level camera's frame to one pitched down by `pitch` and rolled by `roll`."""
    pitch, roll = np.radians(pitch_deg), np.radians(roll_deg)
    about_x = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    about_z = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return about_z @ about_x


def render_room(
    height: int = 240,
    width: int = 320,
    focal: float = 262.5,
    pitch_deg: float = 30.0,
    roll_deg: float = 10.0,
    camera_height: float = 1.3,
    wall_distance: float = 3.0,
) -> Dict[str, np.ndarray]:
    """Renders a floor and a wall facing the camera, seen by a tilted pinhole camera.

    Returns a dict with `depth` (metres along the optical axis), `on_wall` (bool), the true
    `height` above the floor in metres, `down` (the true gravity direction in the camera frame)
    and the intrinsics `fx, fy, cx, cy`.
    """
    rotation = camera_rotation(pitch_deg, roll_deg)
    up = rotation @ np.array([0.0, -1.0, 0.0])  # a level camera's y axis points down
    forward = rotation @ np.array([0.0, 0.0, 1.0])  # the horizontal direction the camera faces
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - cx) / focal, (v - cy) / focal, np.ones_like(u)], axis=-1)
    towards_up = rays @ up
    towards_wall = rays @ forward
    to_floor = np.where(towards_up < 0, -camera_height / np.where(towards_up < 0, towards_up, -1), np.inf)
    to_wall = np.where(towards_wall > 0, wall_distance / np.where(towards_wall > 0, towards_wall, 1), np.inf)
    distance = np.minimum(to_floor, to_wall)  # z of the hit point, since the rays have z = 1
    depth = np.where(np.isfinite(distance), distance, 0.0)
    points = rays * depth[..., None]
    return {
        "depth": depth,
        "on_wall": to_wall < to_floor,
        "height": points @ up + camera_height,
        "down": -up,
        "fx": focal,
        "fy": focal,
        "cx": cx,
        "cy": cy,
    }


@pytest.fixture
def room() -> Callable[..., Dict[str, np.ndarray]]:
    """The `render_room` function."""
    return render_room


@pytest.fixture(scope="session")
def prepare_modality() -> Callable:
    """`main` of tools/prepare_modality.py, loaded from its file (tools/ is not a package)."""
    path = ROOT / "tools" / "prepare_modality.py"
    spec = importlib.util.spec_from_file_location("prepare_modality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
