"""ssma-tf: SSMA and AdapNet++ (Valada, Mohan, Burgard, IJCV 2019) on TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

# Every serializable class of the project is registered under this package name, so that
# `.keras` files name their classes `ssma_tf>ClassName`.
SERIALIZATION_PACKAGE = "ssma_tf"
