"""The background work of a process, wired from the composition root: the projection runner,
the Merkle tree's integrator, the checkpointer and the webhook dispatcher, each in a
thread."""

import threading

from infra.bootstrap import Container
from infra.checkpoints import Checkpointer
from infra.merkle.integrator import Integrator
from infra.runner import ProjectionRunner
from infra.webhooks import Dispatcher


class Workers:
    """The background work of a process: the projection runner, and the checkpointer when
    given one, each in a thread."""

    def __init__(self, container: Container, *, poll_interval: float = 0.5,
                 checkpointer: Checkpointer | None = None, dispatch: bool = False) -> None:
        self.runner = ProjectionRunner(container, poll_interval=poll_interval)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.runner.run, args=(self.stop_event,),
                                       name="projection-runner", daemon=True)
        integrator = Integrator(container, poll_interval=poll_interval)  # the Merkle tree
        self.threads = [self.thread, threading.Thread(target=integrator.run,
                                                      args=(self.stop_event,),
                                                      name="merkle-integrator", daemon=True)]
        if checkpointer is not None:
            self.threads.append(threading.Thread(target=checkpointer.run,
                                                 args=(self.stop_event,),
                                                 name="checkpointer", daemon=True))
        if dispatch:
            settings = container.settings
            dispatcher = Dispatcher(container, timeout=settings.webhook_timeout,
                                    backoff_scale=settings.webhook_backoff_scale)
            self.threads.append(threading.Thread(target=dispatcher.run,
                                                 args=(self.stop_event, poll_interval),
                                                 name="webhook-dispatcher", daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10)
