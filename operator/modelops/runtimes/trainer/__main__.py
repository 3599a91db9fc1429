"""`python -m modelops.runtimes.trainer`: see `modelops.runtimes.trainer.cli`."""

from modelops.runtimes.trainer.cli import main

raise SystemExit(main())
