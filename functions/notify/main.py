"""Called only by Cloud Tasks and Cloud Scheduler: POST /tasks/notify, POST /tasks/sweep."""

import functions_framework

from shared.web import Router

router = Router("notify")


@functions_framework.http
def notify(request):  # type: ignore[no-untyped-def]
    return router(request)
