"""Called only by Cloud Tasks and Cloud Scheduler: POST /tasks/notify, POST /tasks/sweep
(the outbox sweep, and the pruning of what is kept only for a while)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import dispatch, retention
from shared import notify as rules
from shared.asgi import serve
from shared.web import ApiRequest, Reply, Router

router = Router("notify")


@router.route("POST", "/tasks/notify")
def notify_task(req: ApiRequest) -> Reply:
    rules.verify_caller(req.headers)
    retry = rules.retry_count(req.header("X-CloudTasks-TaskRetryCount"))
    if b'"offer_id"' in req.raw.get_data():
        from shared import waitlist  # on first use: see sweep_outbox

        return 200, waitlist.run_task(req.body(waitlist.WaitlistTask), retry)
    message = req.body(rules.TaskMessage)
    return 200, rules.deliver(message, retry).as_dict()


@router.route("POST", "/tasks/sweep")
def sweep_outbox(req: ApiRequest) -> Reply:
    rules.verify_caller(req.headers)
    # Imported on first use: the waitlist brings the API's models, ~12 ms of a new instance's
    # start that a confirmation or a reminder never needs (docs/benchmarks.md, cold import).
    from shared import waitlist

    result = dispatch.sweep()
    # The safety nets of the offers' expiry tasks (decision 0013).
    result.update(waitlist.sweep())
    result.update(retention.prune())
    return 200, result


@functions_framework.aio.http
async def notify(request: Request) -> Response:
    return await serve(router, request)
