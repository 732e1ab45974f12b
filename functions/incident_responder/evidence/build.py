"""BatchGetBuilds: the failed phase, CodeBuild's own words for it, and where the build's log is."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..intake import FAILED_BUILD_STATUSES
from ..models import BuildEvidence
from .base import GatherState, aws_error


def gather_build(state: GatherState, clients: Any) -> None:
    arn = state.event.build_arn
    if not arn:
        return
    build_id = arn.split(":build/", 1)[-1]
    try:
        response = clients.codebuild.batch_get_builds(ids=[build_id])
    except (ClientError, BotoCoreError) as exc:
        state.note_aws_failure("build", f"BatchGetBuilds({build_id}) failed: {aws_error(exc)}")
        return
    builds = [b for b in response.get("builds", []) if b.get("arn") == arn or b.get("id") == build_id]
    if not builds:
        state.note_missing("build", f"BatchGetBuilds({build_id}) found no such build "
                                    f"(buildsNotFound: {', '.join(response.get('buildsNotFound', [])) or 'none'})")
        return
    build = builds[0]
    failed = [p for p in build.get("phases", []) if p.get("phaseStatus") in FAILED_BUILD_STATUSES]
    contexts = [f"{c.get('statusCode', '')}: {c.get('message', '')}".strip(": ")
                for p in failed[:1] for c in p.get("contexts", [])]
    logs = build.get("logs", {})
    state.build = BuildEvidence(
        arn=build.get("arn", arn),
        project=build.get("projectName"),
        number=build.get("buildNumber"),
        status=build.get("buildStatus"),
        failed_phase=failed[0].get("phaseType") if failed else None,
        phase_context=[c for c in contexts if c],
        source_version=build.get("resolvedSourceVersion") or build.get("sourceVersion"),
        initiator=build.get("initiator"),
        log_group=_real(logs.get("groupName")) or state.event.log_group,
        log_stream=_real(logs.get("streamName")) or state.event.log_stream,
    )


def _real(name: str | None) -> str | None:
    # CodeBuild reports "null" for a build whose CloudWatch logging is off.
    return name if name and name != "null" else None
