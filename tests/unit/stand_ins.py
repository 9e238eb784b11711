"""Stand-ins for the pipeline in unit tests of pipeline/batch.py (no stack, no model)."""

from __future__ import annotations

from pipeline.errors import PipelineError
from pipeline.ports import ObjectRef
from pipeline.process import ObjectResult, TimeLeft


class OneByOne:
    """``process_batch`` as Pipeline.process_batch reports it (one result or error per ref, in order), built on the
    subclass's ``process``."""

    def process(self, ref: ObjectRef) -> ObjectResult:
        raise NotImplementedError

    def process_batch(
        self, refs: list[ObjectRef], time_left: TimeLeft | None = None
    ) -> list[ObjectResult | PipelineError]:
        outcomes: list[ObjectResult | PipelineError] = []
        for ref in refs:
            try:
                outcomes.append(self.process(ref))
            except PipelineError as exc:
                outcomes.append(exc)
        return outcomes
