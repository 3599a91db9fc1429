"""The entry point of `python -m modelops.runtimes.trainer`.

Settings come from `MODELOPS_TRAINER_*` environment variables (how the operator configures a
training Job) and from command-line flags of the same names (how a human does), flags
winning. The result document goes to the termination log and to stdout; logs go to stderr.

Exit codes: 0 trained, 2 dataset refused, 1 any other failure. On failure the termination log
holds `{"error": "<one line>"}`.
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelops.runtimes.trainer.errors import EXIT_FAILED, TrainerError, describe
from modelops.runtimes.trainer.output import write_termination_log
from modelops.runtimes.trainer.run import failure_message, result_message, train
from modelops.runtimes.trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)

ENV_PREFIX = str(TrainerSettings.model_config.get("env_prefix", ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training from the environment and `argv`; return the process exit code."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    overrides = vars(_parser().parse_args(argv))
    try:
        settings = TrainerSettings(**overrides)
    except ValidationError as error:
        return _fail(_termination_log(overrides), f"invalid settings: {describe(error)}")
    try:
        result = train(settings)
        message = result_message(result)
    except TrainerError as error:
        return _fail(settings.termination_log, str(error), error.exit_code)
    except Exception as error:
        logger.exception("Training failed unexpectedly")
        return _fail(settings.termination_log, f"{type(error).__name__}: {error}")
    _report(settings.termination_log, message)
    sys.stdout.write(message.decode() + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    """One optional flag per setting, named after its environment variable."""
    parser = argparse.ArgumentParser(
        prog="python -m modelops.runtimes.trainer",
        description="Validate a dataset, train a linear model and write a modelops artifact.",
        epilog=f"Every flag can also be set as the environment variable {ENV_PREFIX}<FLAG>, "
        "e.g. --output-dir as MODELOPS_TRAINER_OUTPUT_DIR; flags win.",
        # Unset flags must not override the environment, so they stay out of the namespace.
        argument_default=argparse.SUPPRESS,
    )
    for name, field in TrainerSettings.model_fields.items():
        alias = field.validation_alias
        flag = alias.removeprefix(ENV_PREFIX).lower() if isinstance(alias, str) else name
        parser.add_argument(
            "--" + flag.replace("_", "-"),
            dest=name,
            metavar=flag.upper(),
            help=" ".join((field.description or "").split()),
        )
    return parser


def _termination_log(overrides: dict[str, Any]) -> Path:
    """Where to report when the settings themselves are invalid, as best as can be told."""
    configured = overrides.get("termination_log") or os.environ.get(f"{ENV_PREFIX}TERMINATION_LOG")
    if configured:
        return Path(configured)
    default = TrainerSettings.model_fields["termination_log"].default
    return Path(default)


def _fail(termination_log: Path, error: str, exit_code: int = EXIT_FAILED) -> int:
    logger.error("Training failed: %s", error)
    _report(termination_log, failure_message(error))
    return exit_code


def _report(termination_log: Path, message: bytes) -> None:
    try:
        write_termination_log(termination_log, message)
    except OSError as error:
        # Outside a pod there may be no termination log; stdout and stderr still tell.
        logger.warning("Could not write the termination log %s: %s", termination_log, error)
