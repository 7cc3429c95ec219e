"""Called only by Cloud Tasks and Cloud Scheduler: POST /tasks/notify, POST /tasks/sweep."""

import functions_framework

from shared import dispatch
from shared import notify as rules
from shared.web import ApiRequest, Reply, Router

router = Router("notify")


@router.route("POST", "/tasks/notify")
def notify_task(req: ApiRequest) -> Reply:
    rules.verify_caller(req.headers)
    message = req.body(rules.TaskMessage)
    retry = rules.retry_count(req.header("X-CloudTasks-TaskRetryCount"))
    return 200, rules.deliver(message, retry).as_dict()


@router.route("POST", "/tasks/sweep")
def sweep_outbox(req: ApiRequest) -> Reply:
    rules.verify_caller(req.headers)
    return 200, dispatch.sweep()


@functions_framework.http
def notify(request):  # type: ignore[no-untyped-def]
    return router(request)
