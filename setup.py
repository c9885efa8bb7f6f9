"""Packaging for ssma-tf: SSMA and AdapNet++ on TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="ssma-tf",
    version="0.1.0",
    description=(
        "TensorFlow 2 / Keras 3 port of SSMA and AdapNet++ (Valada, Mohan, Burgard, IJCV 2019) "
        "that loads the original TF1 checkpoints"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ssma_tf", "ssma_tf.*"]),
    package_data={"ssma_tf": ["data/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "numpy",
        "pillow",
        "pyyaml",
        "absl-py",
    ],
    extras_require={
        # import-linter checks the package's import contract (.importlinter, tests/test_architecture.py).
        "test": ["pytest", "import-linter"],
    },
    license="GPL-3.0",
)
