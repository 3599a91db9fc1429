"""Serving runtimes: which model server image and command serve a version, by its format.

The operator holds a table of runtimes (operator setting ``runtimes``; the chart's ``runtimes``
value), each naming the artifact formats it loads, like KServe's ServingRuntimes. A Model
either lets the table choose (the first runtime listing the version's format), names one
(``spec.serving.runtime``), or brings its own server (``spec.serving.image``, which then
decides alone what it can load). A version no runtime can serve is never rolled out: the Model
reports it (reason ``UnsupportedFormat``) instead of starting a server that would crash-loop.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from modelops import api
from modelops.api.artifact import FORMATS

REFERENCE_RUNTIME = "modelops-reference"


class ServingRuntime(BaseModel):
    """One entry of the runtime table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    formats: tuple[str, ...] = Field(min_length=1)
    """The artifact formats (a ModelVersion's ``spec.artifact.format``) this server loads."""
    image: str = Field(min_length=1)
    command: tuple[str, ...] = Field(min_length=1)


DEFAULT_RUNTIMES: tuple[ServingRuntime, ...] = (
    ServingRuntime(
        name=REFERENCE_RUNTIME,
        formats=FORMATS,
        image=api.DEFAULT_SERVER_IMAGE,
        command=api.DEFAULT_SERVER_COMMAND,
    ),
)
"""The reference server loads both formats of the contract: the trainer's linear models and
ONNX graphs (its image has onnxruntime)."""


@dataclass(frozen=True)
class Server:
    """What runs a version: the image, and the command (None: the image's entrypoint)."""

    image: str
    command: tuple[str, ...] | None
    runtime: str | None
    """The runtime's name; None for a Model's own image."""


def select(
    serving: api.Serving, fmt: str, runtimes: Sequence[ServingRuntime]
) -> Server | tuple[str, str]:
    """The server for a version of format ``fmt``, or the (reason, message) why none can.

    ``serving.image`` wins (with ``serving.command`` if set): a server of the user's own, which
    decides itself what it loads. Otherwise ``serving.runtime`` names the runtime, which must
    exist and list the format; otherwise the first runtime listing the format serves it.
    """
    if serving.image is not None:
        command = tuple(serving.command) if serving.command is not None else None
        return Server(serving.image, command, None)
    if serving.runtime is not None:
        runtime = next((r for r in runtimes if r.name == serving.runtime), None)
        if runtime is None:
            return (
                "UnknownRuntime",
                f"serving.runtime {serving.runtime} is not in the operator's runtime table "
                f"({describe(runtimes)})",
            )
        candidates: Sequence[ServingRuntime] = (runtime,)
    else:
        candidates = runtimes
    for runtime in candidates:
        if fmt in runtime.formats:
            command = tuple(serving.command) if serving.command is not None else runtime.command
            return Server(runtime.image, command, runtime.name)
    return (
        "UnsupportedFormat",
        f"no serving runtime loads format {fmt} ({describe(candidates)}); add a runtime for it "
        "to the operator's table or set serving.image to a server that does",
    )


def describe(runtimes: Sequence[ServingRuntime]) -> str:
    """``name: format, format; name: …`` for messages."""
    if not runtimes:
        return "the table is empty"
    return "; ".join(f"{r.name}: {', '.join(r.formats)}" for r in runtimes)
