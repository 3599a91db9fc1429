"""Talk to a model server with the KServe Python client at its default settings.

Run by ``tests/unit/test_server_protocol_clients.py`` with the interpreter of the KServe client
venv (``make kserve-client``; KServe's dependency closure conflicts with the project's pins, so
it never enters ``.venv``). Usage: ``kserve_client.py BASE_URL MODEL``. Serves the classifier
of ``tests/unit/test_server.py``; prints one JSON document with what the client received.
"""

import asyncio
import json
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


def _outputs(response: Any) -> dict[str, Any]:
    result = {}
    for output in response.outputs:
        array = output.as_numpy()
        values = [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]
        result[output.name] = {"shape": list(array.shape), "data": values}
    return result


async def main(base_url: str, model: str) -> dict[str, Any]:
    report: dict[str, Any] = {}
    # V2 is the protocol; everything else (transport, timeouts, binary inputs) is the default.
    async with InferenceRESTClient(RESTConfig(protocol="v2")) as client:
        report["live"] = await client.is_server_live(base_url)
        report["ready"] = await client.is_server_ready(base_url)
        report["model_ready"] = await client.is_model_ready(base_url, model)

        matrix = InferInput(name="input-0", shape=[2, 2], datatype="FP32")
        matrix.set_data_from_numpy(np.array([[3, 6], [1, 2]], dtype=np.float32))
        response = await client.infer(base_url, InferRequest(model, [matrix]), model_name=model)
        report["matrix"] = _outputs(response)

        # Per-feature inputs, outputs asked for as binary tensor data.
        x1 = InferInput(name="x1", shape=[2], datatype="FP64")
        x1.set_data_from_numpy(np.array([3.0, 1.0]))
        x2 = InferInput(name="x2", shape=[2], datatype="INT64")
        x2.set_data_from_numpy(np.array([6, 2], dtype=np.int64))
        request = InferRequest(model, [x1, x2], parameters={"binary_data_output": True})
        response = await client.infer(base_url, request, model_name=model)
        report["columns_binary_outputs"] = _outputs(response)

        wrong = InferInput(name="input-0", shape=[1, 3], datatype="FP32")
        wrong.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
        try:
            await client.infer(base_url, InferRequest(model, [wrong]), model_name=model)
        except httpx.HTTPStatusError as error:
            report["error"] = {"status": error.response.status_code, "message": str(error)}
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
