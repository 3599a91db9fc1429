"""The local runner: a node agent that runs the containers of its pods as local processes.

``python -m harness.noderunner`` registers a Node, keeps it Ready and runs the pods bound to it
(image ignored, each pod on its own loopback address, volumes mapped to directories); see
``docs/local-runner.md``. Pure decisions live in small modules (``expansion``, ``containerenv``,
``fieldpath``, ``quantity``, ``volumes``, ``podstatus``, ``backoff``, ``ipam``, ``probestate``,
``logfiles``, ``sync``); processes, probes, the API, the host and the log server are at the
edge (``process``, ``nsexec``, ``probes``, ``kube``, ``volumedirs``, ``hostnet``,
``podworker``, ``agent``, ``logserver``).
"""
