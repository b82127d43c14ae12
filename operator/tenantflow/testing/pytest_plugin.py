"""pytest plugin (entry point `pytest11`): a tenant's `async def test_...` runs as it is.

Installing tenantflow is all a project testing its workflows with `WorkflowTestEnv`
needs: pytest itself cannot run coroutine tests ("async def functions are not natively
supported"), and asking every tenant to install and configure pytest-asyncio for that is
the first thing they trip on. A coroutine test no other plugin took (pytest-asyncio's
marked or auto-mode tests, anyio's) runs here in a fresh event loop of its own.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a coroutine test function with `asyncio.run`. Plugins that handle async tests
    hand pytest a synchronous wrapper instead (pytest-asyncio) or answer first (anyio,
    tryfirst), so what still is a coroutine function here is ours. pytest's own
    implementation, which would fail it as unsupported, is trylast: called after this."""
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(test(**args))
    return True
