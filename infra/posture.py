"""The posture use cases (projections/posture.py) over a container's stores: each read at a
position runs on a read replica that has replayed that far, when one has (infra.replicas),
else on the primary; the position itself is always decided on the primary."""

from infra.bootstrap import Container
from infra.replicas import RoutedFindings, RoutedLog
from projections.posture import MAX_WAIT_SECONDS, PostureService, ProjectionBehindError
from projections.views import Reading

Moment = Reading  # its name before projections/views.py (the asked pair is now Moment there)

__all__ = ["MAX_WAIT_SECONDS", "Moment", "PostureService", "ProjectionBehindError", "Reading",
           "posture_service"]


def posture_service(container: Container) -> PostureService:
    return PostureService(RoutedLog(container.reads), RoutedFindings(container.reads))
