"""infra/terraform/modules/monitoring against what it watches: every alert has its runbook
row in docs/operations.md, every log-based metric reads fields the code really logs (the
lines are rendered here by the code itself), the route classes split the API exactly as
openapi.yaml routes it to the functions, the dashboard is JSON, the SLO and its burn-rate
alerts exist. Filters and aggregations were checked by hand against the provider's
documentation (decision 0011); terraform validate cannot run without the provider."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared import dispatch, notify, waitlist
from tests.log_lines import captured
from tests.unit.test_terraform import (
    OPENAPI,
    ROOT,
    TF,
    _render,
    locals_,
    module_calls,
    module_dir,
    one,
    outputs,
    resources,
    variables,
)

MON = module_dir("monitoring")
OPERATIONS = ROOT / "docs" / "operations.md"
NOTIFY_SOURCE = ROOT / "shared" / "notify.py"
ROUTE_CLASSES = {"slots", "book", "cancel"}


def policies() -> dict[str, dict[str, Any]]:
    return resources(MON, "google_monitoring_alert_policy")


def log_metrics() -> dict[str, dict[str, Any]]:
    return resources(MON, "google_logging_metric")


def interpolated(text: str) -> str:
    """A filter with the module's locals put in (one level deep, as they are written)."""
    names = locals_(MON)
    for _ in range(3):
        text = re.sub(
            r"\$\{local\.([a-z0-9_]+)\}",
            lambda m: (
                str(names[m.group(1)]).removeprefix("${").removesuffix("}")
                if str(names[m.group(1)]).startswith("${local.")
                else str(names[m.group(1)])
            ),
            text,
        )
    return text


# ---------------------------------------------------------------------------
# Runbook
# ---------------------------------------------------------------------------


def runbook_rows() -> dict[str, str]:
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## Alerts", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        found = re.match(r"\| `([a-z0-9_]+)`[^|]*\|(.+)", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def test_every_alert_has_a_runbook_row_and_every_row_an_alert() -> None:
    rows = runbook_rows()
    assert set(rows) == set(policies()), f"runbook {set(rows) ^ set(policies())}"
    for name, row in rows.items():
        cells = [c.strip() for c in row.split("|")]
        # What it means, first thing to check, how to fix: three filled cells.
        assert len([c for c in cells if len(c) > 20]) >= 3, f"{name}: a runbook row needs all three columns"


def test_every_alert_notifies_the_channels_and_points_at_its_runbook() -> None:
    assert "docs/operations.md" in locals_(MON)["runbook"]
    for name, policy in policies().items():
        assert policy["notification_channels"] == "${local.channels}", name
        assert policy["severity"] in {"CRITICAL", "ERROR", "WARNING"}, name
        doc = one(policy["documentation"])
        assert doc["mime_type"] == "text/markdown" and "${local.runbook}" in doc["content"], name
        assert 1 <= len(policy["conditions"]) <= 6, name
    channels = locals_(MON)["channels"]
    assert "google_monitoring_notification_channel.email[*].name" in channels
    assert "var.notification_channels" in channels
    email = resources(MON, "google_monitoring_notification_channel")["email"]
    assert email["type"] == "email" and email["labels"] == {"email_address": "${var.notification_email}"}
    assert email["count"] == "${var.notification_email == null ? 0 : 1}"
    assert variables(MON)["notification_email"]["default"] is None
    assert module_calls()["monitoring"]["notification_email"] == "${var.alert_email}"


# ---------------------------------------------------------------------------
# Log-based metrics read what the code logs
# ---------------------------------------------------------------------------


def code_lines() -> list[dict[str, Any]]:
    """Lines the code writes, rendered by the code: the sweep's report and notify's outcomes
    (a waitlist offer's too) that need no database (the others, failed and lost, are read
    from the source below and proven by tests/integration/test_notify.py and
    test_waitlist_offers.py)."""
    fields = {"message_key": "k-1", "appointment_id": "a", "kind": "REMINDER", "attempt": 1}
    with (
        captured("clinic.dispatch") as sweep,
        captured("clinic.notify") as deliveries,
        captured("clinic.waitlist") as waitlist_sweep,
    ):
        dispatch.report_sweep(dispatch.Counts(), {"tasks": 1, "events": 0, "due": 1, "oldest_due_age_s": 42})
        notify.skipped("the appointment was cancelled", dict(fields))
        notify.duplicate(dict(fields))
        # The waitlist's offer email logs the same lines, with the offer for the appointment.
        waitlist._not_to_send(
            None, {"message_key": "offer-o-email", "offer_id": "o", "kind": "WAITLIST_OFFER", "attempt": 1}
        )
        waitlist.report_sweep({"offers_expired": 0, "entries_passed_over": 0}, {"overdue": 1, "oldest_overdue_s": 200})
    return [*sweep, *deliveries, *waitlist_sweep]


def outcomes_in_source() -> set[str]:
    return set(re.findall(r'"outcome": "([a-z]+)"', NOTIFY_SOURCE.read_text(encoding="utf-8")))


def json_fields(text: str) -> set[str]:
    return set(re.findall(r"jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)", text))


def metric_texts(metric: dict[str, Any]) -> str:
    parts = [interpolated(metric["filter"]), metric.get("value_extractor", "")]
    parts += list(metric.get("label_extractors", {}).values())
    return "\n".join(parts)


def test_every_jsonpayload_field_a_metric_reads_is_in_a_line_the_code_writes() -> None:
    lines = code_lines()
    assert {line["message"] for line in lines} >= {
        "outbox swept",
        "already sent; duplicate delivery ignored",
        "waitlist swept",
    }
    read = 0
    for name, metric in log_metrics().items():
        text = metric_texts(metric)
        wanted = json_fields(text)
        if not wanted:
            continue  # a platform log: the load balancer's httpRequest, Cloud Run's severity
        read += 1
        # The lines this metric selects: those that carry each value its filter asks for.
        equal = dict(re.findall(r'jsonPayload\.([a-z_]+)="([^"]*)"', interpolated(metric["filter"])))
        selected = [line for line in lines if all(line.get(k) == v for k, v in equal.items())]
        assert selected, f"{name}: no line of the code matches {equal}"
        negated = set(re.findall(r"NOT jsonPayload\.([a-z_]+):\*", text))
        for field in wanted - negated:
            assert all(field in line for line in selected), f"{name} reads jsonPayload.{field}: not logged"
        for extractor in [metric.get("value_extractor", ""), *metric.get("label_extractors", {}).values()]:
            for field in json_fields(extractor):
                assert all(line[field] is not None for line in selected), (name, field)
    assert read >= 4, "the outbox and notify metrics read no code field"


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ("outbox swept", "outbox_oldest_due_age"),
        ("outbox swept", "outbox_due"),
        ("waitlist swept", "waitlist_oldest_overdue_hold"),
    ],
)
def test_the_sweep_metrics_read_numbers(message: str, name: str) -> None:
    # A distribution's value extractor must yield a number.
    [line] = [line for line in code_lines() if line["message"] == message]
    field = one(sorted(json_fields(log_metrics()[name]["value_extractor"])))
    assert isinstance(line[field], int), (name, field)
    assert one(log_metrics()[name]["metric_descriptor"])["value_type"] == "DISTRIBUTION"


def test_the_outcomes_the_alerts_name_are_outcomes_notify_logs() -> None:
    logged = outcomes_in_source()
    assert {"sent", "skipped", "duplicate", "retry", "failed", "lost"} <= logged
    failed = policies()["notifications_failed"]
    condition = one(one(failed["conditions"])["condition_threshold"])
    found = re.search(r'outcome=monitoring\.regex\.full_match\(\\?"([a-z|]+)\\?"\)', condition["filter"])
    assert found
    named = set(found[1].split("|"))
    assert named == {"failed", "lost"} <= logged
    # The excluded outcome lines of function_errors are notify's (they have their own alert).
    assert "NOT jsonPayload.outcome:*" in log_metrics()["function_errors"]["filter"]


def test_label_extractors_split_load_balancer_lines_as_the_filters_expect() -> None:
    extractors = log_metrics()["api_requests"]["label_extractors"]
    resource = re.search(r'REGEXP_EXTRACT\(httpRequest\.requestUrl, "(.+)"\)', extractors["resource"])
    status = re.search(r'REGEXP_EXTRACT\(httpRequest\.status, "(.+)"\)', extractors["status_class"])
    assert resource and status
    # RE2 and Python's re agree on these patterns (no backreferences or lookarounds).
    for url, first in [
        ("https://api.clinic.example/appointments/3f0c?x=1", "appointments"),
        ("https://api.clinic.example/doctors", "doctors"),
        ("/patients", "patients"),
    ]:
        assert one(re.findall(resource[1], url)) == first
    assert one(re.findall(status[1], "503")) == "5" and not re.findall(status[1], "0")
    assert extractors["method"] == "EXTRACT(httpRequest.requestMethod)"
    assert log_metrics()["api_latencies"]["label_extractors"] == {
        "method": extractors["method"],
        "resource": extractors["resource"],
    }
    assert log_metrics()["api_latencies"]["value_extractor"] == "EXTRACT(httpRequest.latency)"
    assert "${var.backend_service_name}" in log_metrics()["api_requests"]["filter"]
    assert module_calls()["monitoring"]["backend_service_name"] == "${module.edge.backend_service}"


# ---------------------------------------------------------------------------
# Route classes: each operation of the API falls in the class of the function serving it
# ---------------------------------------------------------------------------


def matches(selector: str, labels: dict[str, str]) -> bool:
    """A Monitoring filter made of label terms joined by AND: equality or regex full match."""
    for term in selector.split(" AND "):
        found = re.fullmatch(
            r'metric\.labels\.([a-z_]+)=(?:"([^"]*)"|monitoring\.regex\.full_match\("([^"]*)"\))', term
        )
        assert found, f"unexpected term {term}"
        key, value, pattern = found.groups()
        if value is not None and labels.get(key) != value:
            return False
        if pattern is not None and not re.fullmatch(pattern, labels.get(key, "")):
            return False
    return True


def test_route_classes_split_the_api_as_the_gateway_routes_it() -> None:
    classes = locals_(MON)["route_classes"]
    assert set(classes) == ROUTE_CLASSES
    resource_pattern = re.search(
        r'"(.+)"\)$', log_metrics()["api_requests"]["label_extractors"]["resource"].split(", ", 1)[1]
    )
    assert resource_pattern
    document = _render(OPENAPI.read_text(encoding="utf-8"))
    backends = {"slots-abc": "slots", "book-abc": "book", "cancel-abc": "cancel"}
    seen = 0
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in {"get", "head", "post", "patch", "put", "delete"}:
                continue
            address = (op.get("x-google-backend") or document["x-google-backend"])["address"]
            function = next(f for key, f in backends.items() if key in address)
            concrete = re.sub(r"\{[^}]+\}", "3f0c", path)
            labels = {"method": method.upper(), "resource": one(re.findall(resource_pattern[1], concrete))}
            hits = {name for name, selector in classes.items() if matches(selector, labels)}
            assert hits == {function}, f"{method.upper()} {path}: in {hits}, served by {function}"
            seen += 1
    assert seen >= 10
    # The SLO's requests are exactly bookings and changes.
    slo = locals_(MON)["booking_changes"]
    assert matches(slo, {"method": "POST", "resource": "appointments"})
    assert matches(slo, {"method": "PATCH", "resource": "appointments"})
    assert not matches(slo, {"method": "GET", "resource": "appointments"})
    assert not matches(slo, {"method": "POST", "resource": "patients"})


def test_each_route_class_has_its_5xx_and_latency_alerts() -> None:
    for name in ("api_5xx", "api_latency"):
        assert policies()[name]["for_each"] == "${local.route_classes}"
    ratio, count = (one(c["condition_threshold"]) for c in policies()["api_5xx"]["conditions"])
    assert policies()["api_5xx"]["combiner"] == "AND"
    assert ratio["denominator_filter"] == "${local.api_requests} AND ${each.value}"
    assert ratio["filter"] == "${local.api_requests} AND ${each.value} AND ${local.server_error}"
    assert count["filter"] == ratio["filter"]
    assert ratio["threshold_value"] == "${var.api_error_ratio}"
    latency = one(one(policies()["api_latency"]["conditions"])["condition_threshold"])
    assert one(latency["aggregations"])["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    assert latency["threshold_value"] == "${var.api_latency_p95_seconds[each.key]}"
    assert set(variables(MON)["api_latency_p95_seconds"]["default"]) == ROUTE_CLASSES
    assert set(variables(TF)["api_latency_p95_seconds"]["default"]) == ROUTE_CLASSES


# ---------------------------------------------------------------------------
# Dashboard, SLO, uptime, database
# ---------------------------------------------------------------------------


def test_the_dashboard_renders_to_json_with_every_panel() -> None:
    dashboard = resources(MON, "google_monitoring_dashboard")["operations"]
    assert 'templatefile("${path.module}/dashboard.json.tftpl"' in dashboard["dashboard_json"]
    assert "jsonencode(value)" in dashboard["dashboard_json"]
    values = locals_(MON)["dashboard"]
    template = (MON / "dashboard.json.tftpl").read_text(encoding="utf-8")
    placeholders = set(re.findall(r"\$\{([a-z0-9_]+)\}", template))
    assert placeholders == set(values), placeholders ^ set(values)
    # Each placeholder becomes a JSON literal (jsonencode): a string, or a number for the budget lines.
    samples = {k: json.dumps(105 if k in {"connection_budget", "max_connections"} else f"filter {k}") for k in values}
    board = json.loads(re.sub(r"\$\{([a-z0-9_]+)\}", lambda m: samples[m.group(1)], template))
    widgets = board["gridLayout"]["widgets"]
    titles = " | ".join(w["title"] for w in widgets).lower()
    panels = ("bookings per minute", "5xx", "latency", "notification outcomes", "outbox", "cloud sql cpu")
    for panel in (*panels, "connections", "disk"):
        assert panel in titles, panel
    for widget in widgets:
        for data in widget["xyChart"]["dataSets"]:
            query = data["timeSeriesQuery"]
            assert "timeSeriesFilter" in query or "timeSeriesFilterRatio" in query, widget["title"]


def test_the_booking_slo_and_its_burn_rate_alerts() -> None:
    service = resources(MON, "google_monitoring_custom_service")["booking"]
    slo = resources(MON, "google_monitoring_slo")["booking_availability"]
    assert slo["service"] == "${google_monitoring_custom_service.booking.service_id}"
    assert service["service_id"] == "${var.name_prefix}-booking"
    assert slo["goal"] == "${var.slo_goal}" and variables(MON)["slo_goal"]["default"] == 0.999
    assert slo["rolling_period_days"] == "${var.slo_rolling_period_days}"
    assert variables(MON)["slo_rolling_period_days"]["default"] == 28
    ratio = one(one(slo["request_based_sli"])["good_total_ratio"])
    assert ratio["total_service_filter"] == "${local.api_requests} AND ${local.booking_changes}"
    assert ratio["bad_service_filter"] == "${local.api_requests} AND ${local.booking_changes} AND ${local.server_error}"
    assert "good_service_filter" not in ratio  # exactly two of the three
    windows = {}
    for name in ("slo_fast_burn", "slo_slow_burn"):
        policy = policies()[name]
        assert policy["combiner"] == "AND"
        for condition in policy["conditions"]:
            threshold = one(condition["condition_threshold"])
            found = re.fullmatch(
                r'select_slo_burn_rate\("\$\{google_monitoring_slo\.booking_availability\.name\}", "(\d+)m"\)',
                threshold["filter"],
            )
            assert found, threshold["filter"]
            windows.setdefault(name, []).append((int(found[1]), threshold["threshold_value"]))
    assert sorted(windows["slo_fast_burn"]) == [(5, 14.4), (60, 14.4)]
    assert sorted(windows["slo_slow_burn"]) == [(30, 6), (360, 6)]
    assert module_calls()["monitoring"]["slo_goal"] == "${var.booking_slo_goal}"


def test_the_uptime_check_goes_through_the_load_balancer_to_a_public_list() -> None:
    check = resources(MON, "google_monitoring_uptime_check_config")["api"]
    http = one(check["http_check"])
    assert http["use_ssl"] is True and http["validate_ssl"] is True and http["port"] == 443
    assert http["path"] == "${var.uptime_path}" and variables(MON)["uptime_path"]["default"] == "/doctors"
    resource = one(check["monitored_resource"])
    assert resource["type"] == "uptime_url" and resource["labels"]["host"] == "${var.public_host}"
    assert module_calls()["monitoring"]["public_host"] == "${var.domains[0]}"
    # /doctors is public (no security requirement) and answers a list with "items".
    document = _render(OPENAPI.read_text(encoding="utf-8"))
    assert "security" not in document["paths"]["/doctors"]["get"]
    assert one(check["content_matchers"])["content"] == '"items"'
    alert = one(one(policies()["uptime"]["conditions"])["condition_threshold"])
    assert "${google_monitoring_uptime_check_config.api.uptime_check_id}" in alert["filter"]
    assert one(alert["aggregations"])["cross_series_reducer"] == "REDUCE_COUNT_FALSE"


def test_the_connection_alert_stands_on_the_budget_of_decision_0003() -> None:
    call = module_calls()["monitoring"]
    assert call["db_connection_budget"] == "${sum([for f in values(var.functions) : f.max_instances * f.db_pool_size])}"
    assert call["db_max_connections"] == "${var.db_max_connections}"
    threshold = locals_(MON)["db_connection_threshold"]
    assert "var.db_connection_budget" in threshold and "var.db_max_connections" in threshold
    # With the defaults: 105 held at most by the functions, 200 allowed, alert above 152.
    functions = variables(TF)["functions"]["default"]
    budget = sum(f["max_instances"] * f["db_pool_size"] for f in functions.values())
    limit = variables(TF)["db_max_connections"]["default"]
    assert budget < budget + (limit - budget) // 2 < limit
    condition = one(one(policies()["db_connections"]["conditions"])["condition_threshold"])
    assert condition["threshold_value"] == "${local.db_connection_threshold}"
    assert "postgresql/num_backends" in condition["filter"]


def test_every_google_metric_filter_names_a_known_metric_and_resource() -> None:
    """The built-in metrics and monitored resources used, each checked by hand against
    Google's lists (decision 0011); a new one must be added here after the same check."""
    known = {
        "run.googleapis.com/request_count": "cloud_run_revision",
        "pubsub.googleapis.com/subscription/num_undelivered_messages": "pubsub_subscription",
        "cloudsql.googleapis.com/database/cpu/utilization": "cloudsql_database",
        "cloudsql.googleapis.com/database/postgresql/num_backends": "cloudsql_database",
        "cloudsql.googleapis.com/database/disk/utilization": "cloudsql_database",
        "monitoring.googleapis.com/uptime_check/check_passed": "uptime_url",
    }
    text = interpolated(json.dumps([policies(), locals_(MON)["dashboard"]]))
    used = set(re.findall(r'metric\.type=\\*"([a-z.]+googleapis\.com/[a-z_/]+)\\*"', text))
    assert used <= set(known) | {"logging.googleapis.com/user"}, used - set(known)
    assert used >= set(known)


def test_monitoring_is_enabled_and_outputs_are_wired() -> None:
    assert '"monitoring.googleapis.com"' in (TF / "main.tf").read_text()
    assert {"dashboard_id", "booking_slo", "uptime_check_id"} <= set(outputs(MON))
    assert module_calls()["monitoring"]["dead_letter_subscription"] == "${module.messaging.dead_letter_subscription}"
    assert resources(module_dir("messaging"), "google_pubsub_subscription")["dead_letter_inbox"]


@pytest.mark.parametrize("name", sorted(log_metrics()))
def test_log_metrics_are_named_under_the_prefix(name: str) -> None:
    assert log_metrics()[name]["name"] == f"${{var.name_prefix}}/{name}"


def test_every_monitoring_variable_is_validated() -> None:
    for name, spec in variables(MON).items():
        assert spec.get("validation"), f"variable {name} has no validation"
    for name in ("alert_email", "alert_notification_channels", "api_latency_p95_seconds", "booking_slo_goal"):
        assert variables(TF)[name].get("validation"), name
