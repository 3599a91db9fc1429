"""The MLServer side of the serving benchmark: a custom runtime for ``modelops-linear/v1``.

MLServer loads this module by its import path (``implementation`` in ``model-settings.json``)
from the separate MLServer venv, so it imports nothing from ``modelops``. It serves the same
``model.json`` the trainer wrote with the same maths as the reference server
(``modelops.runtimes.server.model``): standardise, ``logits = X @ weights + bias``, softmax.

The request is the 2-D style the benchmark sends: one tensor ``[N, n_features]``, decoded
with MLServer's own ``NumpyCodec``; the response has the same two outputs as ours, ``predict``
(the most probable class, BYTES) and ``predict_proba`` (``[N, classes]``, FP64), encoded with
MLServer's codecs. Only numeric classification models are supported: the iris model the
benchmark trains is one, and anything else is refused at load time rather than served wrongly.
The runtime does not verify the artifact digest (ours does, before it reports ready); hashing
the two small files costs well under a millisecond, so cold starts stay comparable.
"""

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

MODEL_FORMAT = "modelops-linear/v1"


class LinearRuntime(MLModel):  # type: ignore[misc]  # no mlserver in the project venv: Any
    """Serves one ``modelops-linear/v1`` classification model from ``parameters.uri``."""

    async def load(self) -> bool:
        """Read ``model.json`` from the artifact directory and build the arrays once.

        Raises ``ValueError`` for another format, a regression model or categorical
        features; MLServer then logs the error and the model never becomes ready.
        """
        artifact_dir = Path(await get_model_uri(self.settings))
        document = json.loads((artifact_dir / "model.json").read_text(encoding="utf-8"))
        if document.get("format") != MODEL_FORMAT:
            raise ValueError(f"{artifact_dir}/model.json is not {MODEL_FORMAT}")
        if document.get("classes") is None:
            raise ValueError(f"{artifact_dir}/model.json is not a classification model")
        if any(feature["type"] != "numeric" for feature in document["features"]):
            raise ValueError(f"{artifact_dir}/model.json has non-numeric features")
        self._mean = np.array(document["mean"], dtype=np.float64)
        self._scale = np.array(document["scale"], dtype=np.float64)
        self._weights = np.array(document["weights"], dtype=np.float64)
        self._bias = np.array(document["bias"], dtype=np.float64)
        self._classes = np.array(document["classes"], dtype=np.object_)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Answer a request with one ``[N, n_features]`` tensor; anything else is a 400."""
        if len(payload.inputs) != 1:
            raise InferenceError("Expected exactly one input tensor [N, n_features]")
        features = NumpyCodec.decode_input(payload.inputs[0])
        if features.ndim != 2 or features.shape[1] != self._mean.shape[0]:
            raise InferenceError(
                f"Expected an input of shape [N, {self._mean.shape[0]}], got {features.shape}"
            )
        probabilities = self._probabilities(features.astype(np.float64, copy=False))
        labels = self._classes[np.argmax(probabilities, axis=1)]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                StringCodec.encode_output("predict", labels.tolist()),
                NumpyCodec.encode_output("predict_proba", probabilities),
            ],
        )

    def _probabilities(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        logits = ((features - self._mean) / self._scale) @ self._weights + self._bias
        # Subtracting the row maximum keeps exp() from overflowing, as the reference server does.
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        result: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return result
