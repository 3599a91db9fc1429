"""The Open Inference Protocol v2 operations for one model version, independent of transport.

The HTTP handlers in :mod:`modelops.runtimes.server.app` only parse and serialise; every
decision (which model, whether it is ready, whether a request is valid) is made here. Failures
are raised as :mod:`modelops.runtimes.server.errors` exceptions carrying their status code.
"""

import logging
from typing import Any

import numpy as np

import modelops
from modelops.runtimes.server import codec, loader
from modelops.runtimes.server.errors import BadRequestError, ModelNotReadyError, NotFoundError
from modelops.runtimes.server.metrics import ServerMetrics
from modelops.runtimes.server.model import FeatureBatch, ServedModel
from modelops.runtimes.server.settings import ServerSettings

SERVER_NAME = "modelops-server"

logger = logging.getLogger(__name__)


class DataPlane:
    """Loads the one served model and answers health, metadata and inference requests.

    The server is live as long as the process runs and ready exactly when the model is: a
    refused artifact keeps it live but never ready (docs/server.md, "Readiness").
    """

    def __init__(
        self, settings: ServerSettings, model: ServedModel, metrics: ServerMetrics
    ) -> None:
        self._settings = settings
        self._model = model
        self._metrics = metrics
        # Why the model is not ready, for the 503 messages: loading until load() has finished.
        self._not_ready_because = "still loading"

    async def load(self) -> None:
        """Load the model, or log and count why it was refused. Never raises."""
        name, version = self._settings.model_name, self._settings.model_version
        if self._settings.retired:
            logger.error(
                "Refused to load model %s version %s: the version is retired "
                "(MODELOPS_SERVER_RETIRED=true)",
                name,
                version,
            )
            self._metrics.load_failed("retired")
            self._not_ready_because = "the version is retired"
            return
        try:
            await self._model.load()
        except loader.ArtifactError as error:
            logger.error("Refused to load model %s version %s: %s", name, version, error)
            self._metrics.load_failed(error.reason)
            self._not_ready_because = f"the artifact was refused ({error.reason})"
            return
        except Exception:
            # The process stays up so the failure can be inspected; it just never gets ready.
            logger.exception("Failed to load model %s version %s", name, version)
            self._metrics.load_failed("internal_error")
            self._not_ready_because = "loading failed (internal_error)"
            return
        self._metrics.loaded(
            self._model.reference, (feature.name for feature in self._model.features)
        )
        logger.info(
            "Loaded model %s version %s from %s (digest %s)",
            name,
            version,
            self._settings.artifact_dir,
            self._settings.artifact_digest,
        )

    def ready(self) -> bool:
        """True once the model is loaded; the server serves one model, so it is its readiness."""
        return self._model.ready

    def server_metadata(self) -> dict[str, Any]:
        """The OIP server metadata: name, version and the one protocol extension, binary
        tensor data."""
        return {
            "name": SERVER_NAME,
            "version": modelops.__version__,
            "extensions": ["binary_tensor_data"],
        }

    def model_ready(self, name: str, version: str | None) -> bool:
        """Whether the named model (and version, if given) is ready; 404 for another model."""
        self._check_served(name, version)
        return self._model.ready

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """The OIP model metadata; inputs are listed in the one-tensor-per-feature style."""
        self._check_ready(name, version)
        return {
            "name": self._settings.model_name,
            "versions": [self._settings.model_version],
            "platform": self._model.platform,
            "inputs": [
                {
                    "name": feature.name,
                    "datatype": "FP64" if feature.kind == "numeric" else "BYTES",
                    "shape": [-1],
                }
                for feature in self._model.features
            ],
            "outputs": [
                {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}
                for spec in self._model.outputs
            ],
        }

    def reference(self, name: str, version: str | None) -> dict[str, Any]:
        """The verified ``reference.json`` the feature histograms are built on: the operator's
        drift evaluation compares the live histograms with exactly these counts."""
        self._check_ready(name, version)
        document: dict[str, Any] = self._model.reference.model_dump(mode="json", by_alias=True)
        return document

    def infer(
        self, name: str, version: str | None, payload: object, binary: bytes = b""
    ) -> codec.EncodedResponse:
        """Validate ``payload`` (the parsed JSON header; ``binary``, the binary tensor data
        after it), predict, record the features, encode.

        Only requests that get an answer are recorded in the feature distributions.
        """
        self._check_ready(name, version)
        outputs = self._model.outputs
        request = codec.decode_request(
            payload, self._model.features, outputs, self._settings.max_batch_size, binary
        )
        results = self._model.predict(request.batch)
        # A prediction must be a number: NaN or inf in the outputs means the model could not
        # compute one for these inputs.
        if not all(
            np.isfinite(array).all() for array in results.values() if array.dtype.kind == "f"
        ):
            raise BadRequestError(_no_prediction_because(request.batch))
        self._metrics.features.observe(request.batch.columns)
        return codec.encode_response(
            model_name=self._settings.model_name,
            model_version=self._settings.model_version,
            request_id=request.request_id,
            outputs=outputs,
            requested=request.requested_outputs,
            binary=request.binary_outputs,
            results=results,
        )

    def _check_served(self, name: str, version: str | None) -> None:
        if name != self._settings.model_name:
            raise NotFoundError(f"Model {name!r} is not served here")
        if version is not None and version != self._settings.model_version:
            raise NotFoundError(
                f"Model {name!r} has no version {version!r} here; this server serves version "
                f"{self._settings.model_version!r}"
            )

    def _check_ready(self, name: str, version: str | None) -> None:
        self._check_served(name, version)
        if not self._model.ready:
            raise ModelNotReadyError(
                f"Model {name!r} version {self._settings.model_version!r} is not ready: "
                f"{self._not_ready_because}"
            )


def _no_prediction_because(batch: FeatureBatch) -> str:
    missing = [
        name
        for name, column in batch.columns.items()
        if column.dtype.kind == "f" and np.isnan(column).any()
    ]
    if missing:
        return (
            f"The model cannot predict from missing values: NaN in {', '.join(missing)} gives "
            "non-numeric outputs"
        )
    # Finite inputs can still overflow float64 (1e308 times a weight).
    return "The inputs are outside the model's numeric range: its outputs overflow"
