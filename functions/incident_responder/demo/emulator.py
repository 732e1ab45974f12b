"""An AWS emulator on loopback (moto in server mode), shared by the demo and the tests.

boto3 talks to it over HTTP exactly as it would to AWS; only the one thing moto cannot
produce through its API (a training job that failed) is set on its backend, which is why the
server runs in this process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

EMULATOR_ACCOUNT = "123456789012"
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Emulator:
    url: str
    port: int
    _server: Any = field(repr=False)
    _previous_moto_port: str | None = field(default=None, repr=False)

    def stop(self) -> None:
        self._server.stop()
        # moto's state is per process: another emulator still running here (the tests' one, when
        # a test runs the demo) must get Step Functions' callbacks again, not this stopped port.
        if self._previous_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._previous_moto_port

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enable_state_machine_execution(self) -> None:
        """Make Step Functions really run definitions (Pass, Choice, Fail, aws-sdk tasks...)."""
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()
        _aws_sdk_tasks_use_step_functions_casing()

    def reset_step_functions(self) -> None:
        """Forget every state machine and execution.

        moto 5.2 deep-copies its whole Step Functions backend when an execution starts, and a
        finished execution holds a lock that cannot be copied: after one execution, the next
        start_execution in the process fails with a 500. Tests that execute start from here.
        """
        from moto.stepfunctions.models import stepfunctions_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        # Per account: BackendDict.reset() is a classmethod that would reset every service's backend
        # (ECR, DynamoDB, ...), not only Step Functions'.
        for backends in (stepfunctions_backends, stepfunctions_parser_backends):
            for account_backends in backends.values():
                account_backends.reset()

    def fail_training_job(
        self, name: str, failure_reason: str, *, region: str, account: str = EMULATOR_ACCOUNT
    ) -> None:
        """moto always completes training jobs; a failed one is set on its backend."""
        from moto.sagemaker.models import sagemaker_backends

        job = sagemaker_backends[account][region].training_jobs[name]
        job.training_job_status = "Failed"
        job.secondary_status = "Failed"
        job.failure_reason = failure_reason
        job.secondary_status_transitions = [
            *job.secondary_status_transitions,
            {
                "Status": "Training",
                "StartTime": job.creation_time,
                "EndTime": job.creation_time,
                "StatusMessage": "Training image download completed. Training in progress.",
            },
            {
                "Status": "Failed",
                "StartTime": job.creation_time,
                "StatusMessage": "Training job failed",
            },
        ]


    def fail_build(self, build_id: str, *, phase: str, contexts: list[tuple[str, str]], log_group: str,
                   log_stream: str, region: str, account: str = EMULATOR_ACCOUNT) -> None:
        """moto always reports a build SUCCEEDED (BatchGetBuilds rewrites it); a failed one is kept here."""
        from moto.codebuild.models import codebuild_backends

        backend = codebuild_backends[account][region]
        if not hasattr(backend, "failed_builds"):
            backend.failed_builds = {}
            succeeded = backend.batch_get_builds

            def batch_get_builds(ids: list[str]) -> list[dict[str, Any]]:
                return [backend.failed_builds.get(build["id"], build) for build in succeeded(ids)]

            backend.batch_get_builds = batch_get_builds
        build = next(b for history in backend.build_metadata_history.values() for b in history if b["id"] == build_id)
        phases = [p for p in backend._set_phases(list(build["phases"])) if p["phaseType"] != phase]
        failed = {"phaseType": phase, "phaseStatus": "FAILED", "durationInSeconds": 19,
                  "contexts": [{"statusCode": code, "message": message} for code, message in contexts]}
        backend.failed_builds[build_id] = {
            **build, "buildStatus": "FAILED", "currentPhase": "COMPLETED", "buildComplete": True,
            "phases": [*phases[:3], failed, {"phaseType": "FINALIZING", "phaseStatus": "SUCCEEDED"}],
            "logs": {**build["logs"], "groupName": log_group, "streamName": log_stream},
        }

    def fail_stack_operation(self, stack_name: str, resource_events: list[tuple[str, ...]], *,
                             operation: str = "UPDATE", region: str, account: str = EMULATOR_ACCOUNT) -> None:
        """moto deploys every template it can parse; a failed deployment's events are written here, in the
        order CloudFormation writes them: the stack's 'User Initiated' start, then ``resource_events``
        (logical id, type, status, reason[, physical id]), then the rollback."""
        from moto.cloudformation.models import Event, cloudformation_backends

        stack = cloudformation_backends[account][region].get_stack(stack_name)

        def add(logical: str, physical: str, kind: str, status: str, reason: str | None) -> None:
            stack.events.append(Event(stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical,
                                      physical_resource_id=physical, resource_type=kind, resource_status=status,
                                      resource_status_reason=reason, resource_properties=None))

        add(stack.name, stack.stack_id, "AWS::CloudFormation::Stack", f"{operation}_IN_PROGRESS", "User Initiated")
        for logical, kind, status, reason, *physical in resource_events:
            add(logical, physical[0] if physical else "", kind, status, reason)
        failed = [event[0] for event in resource_events if event[2].endswith("_FAILED")]
        verb = {"UPDATE": "update", "CREATE": "create"}[operation]
        rollback = "UPDATE_ROLLBACK" if operation == "UPDATE" else "ROLLBACK"
        add(stack.name, stack.stack_id, "AWS::CloudFormation::Stack", f"{rollback}_IN_PROGRESS",
            f"The following resource(s) failed to {verb}: [{', '.join(failed)}]. ")
        add(stack.name, stack.stack_id, "AWS::CloudFormation::Stack", f"{rollback}_COMPLETE", None)
        stack.status = f"{rollback}_COMPLETE"


def _aws_sdk_tasks_use_step_functions_casing() -> None:
    """Step Functions' `aws-sdk:*` tasks take and return PascalCase names even where the service's API is
    camelCase (ECR's `repositoryName` is `RepositoryName` in a definition, `images` is `Images` in the
    result). moto 5.2 passes them through unconverted, so a definition written for AWS fails there.
    moto's own task base class has the conversion (used by its optimised integrations); this applies it
    to aws-sdk tasks too, in this process's server. Idempotent."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    cls = aws_sdk.StateTaskServiceAwsSdk
    if getattr(cls, "_step_functions_casing", False):
        return
    original = cls._eval_service_task
    models: dict[tuple[str, str], Any] = {}

    def operation(task: Any) -> Any:
        service, action = task._get_boto_service_name(), task.resource.api_action
        if (service, action) not in models:
            model = botocore.session.get_session().get_service_model(service)
            models[(service, action)] = model.operation_model(action[0].upper() + action[1:])
        return models[(service, action)]

    def evaluate(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any) -> None:
        op = operation(self)
        if op.input_shape is not None:
            self._to_boto_request(normalised_parameters, op.input_shape)
        original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        if op.output_shape is not None:
            self._from_boto_response(env.stack[-1], op.output_shape)

    cls._eval_service_task = evaluate
    cls._step_functions_casing = True


def start_emulator() -> Emulator:
    import logging

    from moto.server import ThreadedMotoServer

    # The server logs every request line to stderr; a report reader needs none of them.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    previous = os.environ.get("MOTO_PORT")
    # moto's Step Functions integrations call back to the server on MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return Emulator(url=f"http://127.0.0.1:{port}", port=port, _server=server, _previous_moto_port=previous)
