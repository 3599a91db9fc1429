"""Errors the data plane reports to clients, each with the HTTP status it maps to.

The message is sent as is in the Open Inference Protocol error body ``{"error": message}``, so
it names the offending input, field or value and says what was expected.
"""

from typing import ClassVar


class InferenceError(Exception):
    """A request the server cannot answer; ``status`` is the HTTP status code to send."""

    status: ClassVar[int] = 500


class BadRequestError(InferenceError):
    """The request is malformed or does not fit the model's inputs."""

    status = 400


class NotFoundError(InferenceError):
    """The request names a model or version this server does not serve."""

    status = 404


class RequestTimeoutError(InferenceError):
    """The request body did not arrive within ``body_timeout_seconds``."""

    status = 408


class PayloadTooLargeError(InferenceError):
    """The body exceeds ``max_body_bytes`` or the batch exceeds ``max_batch_size``."""

    status = 413


class ModelNotReadyError(InferenceError):
    """The model is not loaded (still loading, or refused: retired, tampered with, invalid)."""

    status = 503


class ClientGoneError(Exception):
    """The client closed the connection before its request body had arrived.

    Not an error of the server and nobody is left to answer: the request is counted with the
    status 499 (nginx's "client closed request") and logged at debug level only.
    """

    status: ClassVar[int] = 499
