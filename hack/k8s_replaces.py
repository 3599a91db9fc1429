"""Print `go mod edit` flags that map k8s.io/kubernetes's staging modules to published versions.

Input: the JSON of `go mod edit -json` on k8s.io/kubernetes's own go.mod (as served by the
module proxy, with its `./staging/...` replace block) and the staging version (v0.Y.Z).
"""

import json
import sys


def main() -> None:
    path, version = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        gomod = json.load(f)
    for r in gomod.get("Replace") or []:
        if r["New"]["Path"].startswith("./staging/"):
            old = r["Old"]["Path"]
            print(f"-replace={old}={old}@{version}")
    print(f"-go={gomod['Go']}")
    for g in gomod.get("Godebug") or []:
        print(f"-godebug={g['Key']}={g['Value']}")


if __name__ == "__main__":
    main()
