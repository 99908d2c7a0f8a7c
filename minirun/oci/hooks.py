"""OCI hooks (config.md "POSIX-platform Hooks"): each runs with the container's state
as JSON on its stdin, through the one runner, csrc/hooks.c, so every kind fails with
the same words (``KIND hook PATH: exit status N: what it printed``, ``timed out after N s``).

    prestart, createRuntime   during `create`, once the namespaces exist; a failure
                              fails the create (and removes the container): run()
    poststart                 after `start` released the process; a failure is a warning
    poststop                  during `delete`; a failure is a warning
                              (both in csrc/ociverbs.c, or run() for a foreground `run`)
    createContainer, startContainer
                              by the container's own process, in its namespaces
                              (csrc/init.c; see runtime.create)
"""

from __future__ import annotations

from .. import jsonlite as json


def run(kind: str, hooks: list[dict], state: dict, *, fatal: bool) -> None:
    """Run ``hooks`` in order: SetupError at the first failure if ``fatal``, else each
    failure is a warning (errors.warn: minirun-oci's log) and the next one runs."""
    from .. import ociverbs

    ociverbs.run_hooks(kind, json.dumps(hooks), json.dumps(state), fatal)
