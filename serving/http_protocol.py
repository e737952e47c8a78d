"""uvicorn's httptools protocol, refusing an overloaded request in the turn that reads it.

uvicorn starts each request as a task, whose first step runs in the event loop's next turn,
behind that turn's other callbacks (replies of admitted requests, a unit of model work): under
overload a 503 waited up to two turns. When :class:`~learnrec.serving.shedding.LoadShedder`
would refuse the request anyway, :class:`SheddingHttpProtocol` runs the application's first step
at once, where the request was parsed: the middleware chain answers it without awaiting anything
(503, or the guard's 401 / 413), so the answer is written before the loop moves on. Should the
application await after all, the rest runs as the task it would have been. Admitted requests
start as uvicorn starts them. The shedder is found in the lifespan state, where it puts itself
(:data:`~learnrec.serving.shedding.STATE_KEY`).

``learnrec serve`` and :class:`learnrec.testing.live_server.LiveServer` run uvicorn with it.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Coroutine
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from learnrec.serving.shedding import STATE_KEY

if not hasattr(HttpToolsProtocol, "_start_asgi_task"):  # the one hook this module overrides
    raise ImportError("uvicorn without HttpToolsProtocol._start_asgi_task: install uvicorn>=0.54")


class SheddingHttpProtocol(HttpToolsProtocol):
    """Answers a request the shedder refuses within the turn that parsed it."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        shedder = self.app_state.get(STATE_KEY)
        if shedder is None or self.flow.write_paused or not shedder.refuses(cycle.scope):
            super()._start_asgi_task(cycle, app)
            return
        context = contextvars.Context()  # a fresh one, as uvicorn gives a task with reset_contextvars
        coro = cycle.run_asgi(app)
        try:
            awaited = context.run(coro.send, None)
        except StopIteration:
            return  # answered in this turn
        task = self.loop.create_task(_resumed(coro, awaited), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


@types.coroutine
def _resumed(coro: Coroutine, awaited: Any):
    """``coro``, which has run until it yielded ``awaited`` (what its await waits on), run on to
    its end: what a task of it would have done after that first step."""
    message = awaited
    while True:
        try:
            value = yield message
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as err:  # a cancellation, thrown in by the task: pass it on
            try:
                message = coro.throw(err)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                message = coro.send(value)
            except StopIteration as stop:
                return stop.value
