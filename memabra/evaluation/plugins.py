"""The user's executor, named on the command line as `package.module:factory`."""

from __future__ import annotations

import importlib
import os
import re
import sys

from memabra.errors import BadInputError
from memabra.evaluation.evaluator import Executor

_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<factory>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$")


def load_executor(spec: str) -> Executor:
    """Import `package.module`, call its `factory()` and return the executor it makes (one with `execute`)."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise BadInputError(f"--executor {spec!r} is not package.module:factory (e.g. my_agent.bench:make_executor)")
    module_name, factory_name = match["module"], match["factory"]
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, so modules beside the caller are found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise BadInputError(f"--executor {spec}: no module named {module_name!r}; run from the folder that "
                                f"holds it or add that folder to PYTHONPATH") from exc
        raise BadInputError(f"--executor {spec}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failing to import is bad input, said in one line
        raise BadInputError(f"--executor {spec}: importing {module_name!r} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    factory = module
    for part in factory_name.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise BadInputError(f"--executor {spec}: module {module_name!r} has no {factory_name!r}")
    if not callable(factory):
        raise BadInputError(f"--executor {spec}: {factory_name!r} is not callable; name a function or class "
                            f"that returns the executor")
    try:
        executor = factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory failing is bad input, said in one line
        raise BadInputError(f"--executor {spec}: {factory_name}() raised {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(executor, "execute", None)):
        raise BadInputError(f"--executor {spec}: {factory_name}() returned a {type(executor).__name__}, which has "
                            f"no execute(task, candidate) method")
    return executor
