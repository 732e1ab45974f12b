"""Which AWS API operations a body of Python code calls, read from the code itself.

Every boto3 client method is the snake_case name of an operation in botocore's service model;
a call `<anything>.<method>(...)` whose method is an operation of one of the services the code
creates clients for is an AWS call. The IAM action is `<signing name>:<OperationName>`
(`states:GetExecutionHistory`, `logs:GetLogEvents`). A method name that two of the services share
is reported as ambiguous rather than guessed. Names that are also methods of str, bytes, dict,
list, set or a compiled regex (`pattern.search(...)` is not SageMaker's Search) are not counted:
none of them is an operation the responder needs, and ALSO_BUILTIN lists which they are.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from pathlib import Path

import botocore.session
from botocore import xform_name


_BUILTIN_METHODS = frozenset(
    name for kind in (str, bytes, dict, list, set, type(re.compile(""))) for name in dir(kind)
)


@functools.cache
def _operations(services: tuple[str, ...]) -> dict[str, list[str]]:
    session = botocore.session.get_session()
    by_method: dict[str, list[str]] = {}
    for service in services:
        model = session.get_service_model(service)
        prefix = model.signing_name
        for operation in model.operation_names:
            if xform_name(operation) not in _BUILTIN_METHODS:
                by_method.setdefault(xform_name(operation), []).append(f"{prefix}:{operation}")
    return by_method


def iam_actions(files: Iterable[Path], services: Iterable[str]) -> dict[str, set[str]]:
    """IAM action -> the files that call it."""
    by_method = _operations(tuple(sorted(services)))
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                actions = by_method.get(node.func.attr)
                if not actions:
                    continue
                if len(actions) > 1:
                    raise AssertionError(f"{path}: {node.func.attr}() is an operation of several services: {actions}")
                found.setdefault(actions[0], set()).add(str(path))
    return found
