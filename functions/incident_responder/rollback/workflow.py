"""The rollback workflow (statemachine/rollback.asl.json): its substitutions, its input, starting it.

The workflow records the proposal, waits for a decision on a task token it keeps in the approval
item (`.waitForTaskToken` on DynamoDB UpdateItem), re-checks, acts, records before/after and reports
on SNS. Undo is the same workflow with the roles of the two images swapped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import ImageRef, Incident, RollbackProposal
from .approvals import approval_item_key, incident_item_key, outcome_of
from .proposal import approval_id as make_approval_id

STATEMACHINE_DIR = Path(__file__).resolve().parents[3] / "statemachine"
ROLLBACK_DEFINITION = STATEMACHINE_DIR / "rollback.asl.json"
# Every ARN and name the definition uses, from the template's DefinitionSubstitutions.
SUBSTITUTIONS = ("IncidentTable", "NotificationTopicArn", "RepositoryName", "ImageTag", "ImageParameterName",
                 "RollbackMode", "ApprovalTimeoutSeconds")
HOLD_TAG_PREFIX = "rollback-hold-"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


class WorkflowError(RuntimeError):
    pass


def render_definition(values: dict[str, str], path: Path = ROLLBACK_DEFINITION) -> str:
    """What CloudFormation's DefinitionSubstitutions make of the file (for the emulator and tests)."""
    text = path.read_text()
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise WorkflowError(f"{path.name}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def rollback_input(incident: Incident, proposal: RollbackProposal) -> dict[str, Any]:
    if proposal.mode == "ecr-retag":
        expected, target, hold = proposal.from_digest, proposal.to_digest, HOLD_TAG_PREFIX + proposal.approval_id
    else:
        # The pipeline's parameter named the failing job's image; it is set to the digest-pinned target.
        expected = incident.subject.image.uri if incident.subject.image else ""
        target = ImageRef.in_ecr(proposal.registry or "", proposal.region, proposal.repository,
                                 digest=proposal.to_digest).uri
        hold = ""
    return {
        "approval_id": proposal.approval_id, "action": "rollback", "incident_key": incident.key,
        "incident_item_key": incident_item_key(incident.key), "approval_item_key": approval_item_key(proposal.approval_id),
        "from_digest": proposal.from_digest, "to_digest": proposal.to_digest, "expected": expected, "target": target,
        "hold_tag": hold, "release_tag": "",
        "summary": f"{proposal.repository} {proposal.from_digest[:19]} -> {proposal.to_digest[:19]}",
    }


def undo_input(rollback: dict[str, Any]) -> dict[str, Any]:
    """Undo of a finished rollback (its approval item): the recorded before state comes back."""
    outcome = outcome_of(rollback)
    if rollback.get("action") != "rollback":
        raise WorkflowError(f"approval {rollback.get('approval_id')} is an {rollback.get('action')}, not a rollback")
    if rollback.get("status") != "done" or not outcome.get("changed"):
        raise WorkflowError(f"rollback {rollback.get('approval_id')} changed nothing (status "
                            f"{rollback.get('status')}); there is nothing to undo")
    undo_id = make_approval_id(rollback["approval_id"], "undo")
    return {
        "approval_id": undo_id, "action": "undo", "incident_key": rollback["incident_key"],
        "incident_item_key": rollback["incident_item_key"], "approval_item_key": approval_item_key(undo_id),
        "from_digest": rollback["to_digest"], "to_digest": rollback["from_digest"],
        "expected": outcome["after"], "target": outcome["before"],
        # The rollback's target keeps its known-good tag; the hold put on the replaced image is released.
        "hold_tag": "", "release_tag": rollback.get("hold_tag", ""),
        "summary": f"undo {rollback['approval_id']}: {rollback['to_digest'][:19]} -> {rollback['from_digest'][:19]}",
    }


def start(stepfunctions: Any, state_machine_arn: str, workflow_input: dict[str, Any]) -> str:
    """Start the execution named after the approval id: a retry starts nothing new."""
    name = workflow_input["approval_id"]
    try:
        return stepfunctions.start_execution(stateMachineArn=state_machine_arn, name=name,
                                             input=json.dumps(workflow_input))["executionArn"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "ExecutionAlreadyExists":
            return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        raise WorkflowError(f"StartExecution({name}) failed ({code})") from None
    except BotoCoreError as exc:
        raise WorkflowError(f"StartExecution({name}) failed ({type(exc).__name__})") from None
