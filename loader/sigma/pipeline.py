"""The pySigma processing pipeline from Sigma's CloudTrail field names to the view's.

One transformation, applied to every field a rule names (in its detections and in field
references): the field spelled as the view spells it (:func:`loader.sigma.fields.canonical`:
``eventname`` is ``eventName``, ``useridentity.Type`` is ``userIdentity.type``), or the rule
fails there, naming the field, when no CloudTrail event has it. The backend then reads each
field by its kind (:func:`loader.sigma.fields.resolve`).
"""

from __future__ import annotations

from sigma.exceptions import SigmaTransformationError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldFunctionTransformation

from loader.sigma.fields import UnknownField, canonical


def _mapped(field: str) -> str:
    try:
        return canonical(field)
    except UnknownField as exc:
        raise SigmaTransformationError(str(exc)) from exc


def cloudtrail_pipeline() -> ProcessingPipeline:
    """Sigma's AWS CloudTrail fields onto the `cloudtrail` view."""
    return ProcessingPipeline(
        name="CloudTrail fields onto the timely-security-analytics cloudtrail view",
        priority=20,
        items=[
            ProcessingItem(
                identifier="tsa_cloudtrail_fields",
                transformation=FieldFunctionTransformation(transform_func=_mapped, mapping={}),
            )
        ],
    )
