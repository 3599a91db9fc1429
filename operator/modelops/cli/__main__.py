"""``kubectl modelops``: lineage, drift, history, and a person's promote / rollback / approve /
quarantine.

Installed with the package as the console script ``kubectl-modelops``; kubectl finds it on
``PATH`` and runs it for ``kubectl modelops …`` (kubectl's own flags are not passed on: give
``--kubeconfig``, ``--context``, ``-n`` after ``modelops``). Writes are what a person would
type with ``kubectl patch``/``label``: a pin in ``spec.serving.version``, the approval label.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from modelops import api
from modelops.cli import render
from modelops.cli.kube import Kube, KubeError
from modelops.core import labels

Obj = dict[str, Any]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit code (0 done, 1 refused or failed, 2 bad usage)."""
    args = _parser().parse_args(argv)
    try:
        kube = Kube(
            getattr(args, "kubeconfig", None),
            getattr(args, "context", None),
            getattr(args, "namespace", None),
            as_user=getattr(args, "as_user", None),
        )
        command: Callable[[Kube, argparse.Namespace], str] = args.run
        sys.stdout.write(command(kube, args))
    except KubeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    # The connection options are accepted before and after the command (kubectl users put -n
    # anywhere); SUPPRESS keeps a subcommand's default from overwriting an earlier value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    common.add_argument(
        "--context", default=argparse.SUPPRESS, help="kubeconfig context (default: the current)"
    )
    common.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="namespace (default: the context's, else default)",
    )
    common.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        default=argparse.SUPPRESS,
        help="act as this user (impersonation, like kubectl --as)",
    )
    parser = argparse.ArgumentParser(
        prog="kubectl modelops",
        description="Lineage, drift and history of modelops Models; promote, roll back, "
        "approve, quarantine.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, parents=[common], **kwargs)
        return sub

    lineage = command(
        "lineage",
        help="tree from dataset to versions to the Model serving them",
        description="Group ModelVersions by the dataset they were trained on and show which "
        "Model serves each. Select by dataset digest, image digest or Model.",
    )
    which = lineage.add_mutually_exclusive_group()
    which.add_argument("--dataset", metavar="DIGEST", help="sha256:<hex> of the training data")
    which.add_argument("--image", metavar="DIGEST", help="sha256:<hex> of the training image")
    which.add_argument("--model", help="versions of this Model only")
    lineage.add_argument(
        "-A", "--all-namespaces", action="store_true", help="look in every namespace"
    )
    _output(lineage)
    lineage.set_defaults(run=_lineage)

    drift = command("drift", help="per-feature drift scores against thresholds, as a bar chart")
    drift.add_argument("policy", help="DriftPolicy name")
    _output(drift)
    drift.set_defaults(run=_drift)

    history = command("history", help="promotions, rollbacks and retirements")
    history.add_argument("model", help="Model name")
    _output(history)
    history.set_defaults(run=_history)

    promote = command("promote", help="pin production to a version (spec.serving.version)")
    promote.add_argument("model", help="Model name")
    promote.add_argument("version", help="version to serve (a ModelVersion's spec.version)")
    promote.set_defaults(run=_promote)

    rollback = command(
        "rollback", help="pin production back to the version served before the current one"
    )
    rollback.add_argument("model", help="Model name")
    rollback.add_argument("--to", metavar="VERSION", help="pin this version instead")
    rollback.set_defaults(run=_rollback)

    approve = command("approve", help="approve a version (label modelops.dev/approved=true)")
    approve.add_argument("model", help="Model name")
    approve.add_argument("version", help="version to approve")
    approve.set_defaults(run=_approve)

    quarantine = command(
        "quarantine",
        help="declare a dataset or training image tainted, list the declarations, or lift one",
        description="Declare a dataset (or training image) digest tainted: every ModelVersion "
        "trained on it, and every version trained from one of those, is taken out of "
        "production, refused when pinned, and not retrained from, in every namespace. "
        "Cluster-scoped: needs the modelops-quarantine-admin role.",
    )
    mode = quarantine.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dataset", metavar="DIGEST", help="sha256:<hex> of the tainted data")
    mode.add_argument("--image", metavar="DIGEST", help="sha256:<hex> of the tainted image")
    mode.add_argument("--list", action="store_true", help="list the Quarantines in force")
    mode.add_argument("--lift", metavar="NAME", help="lift (delete) the Quarantine NAME")
    quarantine.add_argument("--reason", help="why it is tainted (required to declare)")
    quarantine.add_argument(
        "--name", help="the Quarantine's name (default: dataset-<12 hex> or image-<12 hex>)"
    )
    _output(quarantine)
    quarantine.set_defaults(run=_quarantine)
    return parser


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=("text", "json", "yaml"), default="text", help="output format"
    )


def _formatted(args: argparse.Namespace, document: Any, text: Callable[[], str]) -> str:
    if args.output == "json":
        return json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output == "yaml":
        return str(yaml.safe_dump(document, sort_keys=True))
    return text()


# -- commands ---------------------------------------------------------------------------------


def _lineage(kube: Kube, args: argparse.Namespace) -> str:
    namespace = None if args.all_namespaces else kube.namespace
    if args.dataset:
        selector = f"{labels.DATASET_DIGEST}={labels.digest_value(_digest(args.dataset))}"
    elif args.image:
        selector = f"{labels.IMAGE_DIGEST}={labels.digest_value(_digest(args.image))}"
    elif args.model:
        selector = f"{labels.MODEL}={args.model}"
    else:
        selector = None
    versions = kube.list("modelversions", namespace, selector)
    models = kube.list("models", namespace)
    groups = render.lineage(versions, models)
    return _formatted(args, groups, lambda: render.lineage_tree(groups))


def _drift(kube: Kube, args: argparse.Namespace) -> str:
    policy = kube.get("driftpolicies", args.policy)
    status = policy.get("status") or {}
    return _formatted(args, status, lambda: render.drift_chart(policy))


def _history(kube: Kube, args: argparse.Namespace) -> str:
    model = kube.get("models", args.model)
    history = (model.get("status") or {}).get("history") or []
    return _formatted(args, history, lambda: render.history_table(model))


def _promote(kube: Kube, args: argparse.Namespace) -> str:
    model = kube.get("models", args.model)
    return _pin(kube, model, args.version, "promoted")


def _rollback(kube: Kube, args: argparse.Namespace) -> str:
    model = kube.get("models", args.model)
    target = args.to or render.previous_version(model)
    if target is None:
        raise KubeError(
            f"Model {kube.namespace}/{args.model} has no earlier production version in its "
            "history to roll back to; name one with --to"
        )
    return _pin(kube, model, target, "rolled back")


def _approve(kube: Kube, args: argparse.Namespace) -> str:
    name = f"{args.model}-{args.version}"
    kube.get("modelversions", name)  # a clear "not found" before writing
    patched = kube.patch("modelversions", name, {"metadata": {"labels": {labels.APPROVED: "true"}}})
    annotations = patched["metadata"].get("annotations") or {}
    by, at = annotations.get(labels.APPROVED_BY), annotations.get(labels.APPROVED_AT)
    record = (
        f" (recorded: approved by {by} at {at})"
        if by
        else " (no approval record: the approval-record admission policy is not installed)"
    )
    return f"ModelVersion {kube.namespace}/{name} approved{record}\n"


def _quarantine(kube: Kube, args: argparse.Namespace) -> str:
    if args.list:
        items = kube.list("quarantines", None)
        return _formatted(args, items, lambda: render.quarantine_table(items))
    if args.lift:
        declared = kube.get_cluster("quarantines", args.lift)
        count = (declared.get("status") or {}).get("affectedCount")
        kube.delete_cluster("quarantines", args.lift)
        reached = f" ({count} version(s) eligible again)" if count else ""
        return (
            f"Quarantine {args.lift} lifted{reached}; nothing serves again by itself: pin or "
            "promote a version to serve it\n"
        )
    if not args.reason:
        raise KubeError("--reason is required to declare a Quarantine: say why it is tainted")
    what = "dataset" if args.dataset else "image"
    digest = _digest(args.dataset or args.image)
    name = args.name or f"{what}-{digest.removeprefix('sha256:')[:12]}"
    body = {
        "apiVersion": f"{api.GROUP}/{api.VERSION}",
        "kind": "Quarantine",
        "metadata": {"name": name},
        "spec": {f"{what}Digest": digest, "reason": args.reason},
    }
    created = kube.create_cluster("quarantines", body)
    by = (created["metadata"].get("annotations") or {}).get(labels.DECLARED_BY)
    record = (
        f"recorded: declared by {by}"
        if by
        else "no record of who declared it: the quarantine-record admission policy is not installed"
    )
    return (
        f"Quarantine {name} declared ({record}); affected versions: kubectl get mv -A -l "
        f"{labels.QUARANTINED}=true\n"
    )


def _pin(kube: Kube, model: Obj, version: str, verb: str) -> str:
    name = model["metadata"]["name"]
    serving = (model.get("spec") or {}).get("serving")
    where = f"Model {kube.namespace}/{name}"
    if serving is None:
        raise KubeError(f"{where} has no spec.serving: it is a registry entry and serves nothing")
    if serving.get("promotion") == "Automatic":
        raise KubeError(
            f"{where} promotes automatically (spec.serving.promotion: Automatic); a version can "
            "be pinned only with promotion Manual"
        )
    mv = kube.get("modelversions", f"{name}-{version}", what=f"version {version} of {where}")
    if (mv.get("status") or {}).get("phase") == "Retired":
        raise KubeError(f"version {version} of {where} is retired and can never be served again")
    if (mv["metadata"].get("labels") or {}).get(labels.QUARANTINED) == "true":
        raise KubeError(
            f"version {version} of {where} is quarantined (kubectl get mv {name}-{version} "
            "shows why): it cannot be served while the Quarantine stands"
        )
    kube.patch("models", name, {"spec": {"serving": {"version": version}}})
    current = (model.get("status") or {}).get("productionVersion")
    was = f" (production is {current} until it rolls out)" if current and current != version else ""
    return f"{where} {verb}: spec.serving.version={version}{was}\n"


def _digest(value: str) -> str:
    """Accept ``sha256:<hex>`` or a bare 64-digit hex digest."""
    digest = value if value.startswith("sha256:") else f"sha256:{value}"
    hex_digits = digest.removeprefix("sha256:")
    if len(hex_digits) != 64 or any(c not in "0123456789abcdef" for c in hex_digits):
        raise KubeError(f"{value!r} is not a sha256 digest (sha256:<64 lowercase hex digits>)")
    return digest


if __name__ == "__main__":
    sys.exit(main())
