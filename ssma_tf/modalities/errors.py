"""The error of a bad value given to a modality preparation."""

from ssma_tf.errors import UserInputError


class ParameterError(UserInputError, ValueError):
    """A value given to a preparation is invalid (a range, units, a kernel, intrinsics, a list).

    A `UserInputError`, so that `ssma-prepare` ends with one line naming it, and a `ValueError`,
    as a bad argument to these functions was before; any other `ValueError` is a bug and keeps
    its traceback.
    """
