"""Rate limits per endpoint (`max_per_second`): a send is let through only while fewer than
`max_per_second` sends of its endpoint were let through in the last second (a sliding
window, shared by the endpoint's concurrent chains), just before it starts. A limit holds
per dispatcher process: with several, each keeps to it."""

import asyncio
import time
from collections import deque


class Pacer:
    def __init__(self) -> None:
        self.sent: dict[str, deque[float]] = {}

    async def wait(self, endpoint_id: str, max_per_second: int | None) -> None:
        if not max_per_second:
            return
        window = self.sent.setdefault(endpoint_id, deque())
        while True:
            now = time.monotonic()
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) < max_per_second:
                window.append(now)
                return
            await asyncio.sleep(window[0] + 1.0 - now)
