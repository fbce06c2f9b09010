"""The posture use cases (projections/posture.py) over a container's stores."""

from infra.bootstrap import Container
from infra.findings_store import FindingsStore
from projections.posture import MAX_WAIT_SECONDS, PostureService, ProjectionBehindError
from projections.views import Reading

Moment = Reading  # its name before projections/views.py (the asked pair is now Moment there)

__all__ = ["MAX_WAIT_SECONDS", "Moment", "PostureService", "ProjectionBehindError", "Reading",
           "posture_service"]


def posture_service(container: Container) -> PostureService:
    return PostureService(container.store, FindingsStore(container.store.dialect))
