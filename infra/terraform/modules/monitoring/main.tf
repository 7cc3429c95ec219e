# What an operator is told, and sees on one screen: alert policies, the log-based metrics
# they need, an uptime check through the load balancer, one dashboard and the booking
# availability SLO with its burn-rate alerts. Each alert has its runbook line in
# docs/operations.md (a test holds the two together); why it is built this way:
# docs/decisions/0011-monitoring.md.
#
# Route classes (slots / book / cancel) are told apart in the load balancer's own request
# logs (the backend service logs every request): its built-in metrics have no HTTP method,
# and PATCH /appointments/{id} (cancel) shares its path with GET (book).

locals {
  database_id = "${var.project_id}:${var.db_instance_name}"
  channels    = concat(google_monitoring_notification_channel.email[*].name, var.notification_channels)

  # Logs of the four functions: the Cloud Run services behind the 2nd-gen functions.
  services_regex = join("|", values(var.function_names))
  functions_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^(${local.services_regex})$\""
  notify_logs    = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.function_names["notify"]}\""

  # Monitoring filters of the log-based metrics below.
  api_requests          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.api_requests.name}\""
  api_latencies         = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.api_latencies.name}\""
  outbox_oldest_due_age = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.outbox_oldest_due_age.name}\""
  notification_outcomes = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.notification_outcomes.name}\""
  waitlist_overdue_hold = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.waitlist_oldest_overdue_hold.name}\""

  # Which requests make up each route class, by the labels of api_requests and api_latencies.
  route_classes = {
    slots  = "metric.labels.resource=\"doctors\""
    book   = "metric.labels.resource=monitoring.regex.full_match(\"appointments|patients|waitlist\") AND metric.labels.method=monitoring.regex.full_match(\"GET|HEAD|POST|DELETE\")"
    cancel = "metric.labels.resource=\"appointments\" AND metric.labels.method=\"PATCH\""
  }
  # The SLO's requests: POST /appointments (book) and PATCH /appointments/{id} (cancel, move).
  booking_changes = "metric.labels.resource=\"appointments\" AND metric.labels.method=monitoring.regex.full_match(\"POST|PATCH\")"
  server_error    = "metric.labels.status_class=\"5\""

  cloud_run_5xx = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND metric.labels.response_code_class=\"5xx\""
  api_services  = join("|", [for f in ["slots", "book", "cancel"] : var.function_names[f]])
  cloud_sql     = "resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${local.database_id}\""

  # More connections than the functions may ever hold, plus half the reserve: something
  # outside the budget (a leak, a forgotten psql, a new function) is eating the reserve.
  db_connection_threshold = var.db_connection_budget + floor((var.db_max_connections - var.db_connection_budget) / 2)

  runbook = "Runbook: docs/operations.md, section Alerts, the row of this alert."

  # The dashboard's title and filters (dashboard.json.tftpl).
  dashboard = {
    title             = "${var.name_prefix} operations"
    bookings          = "${local.api_requests} AND metric.labels.resource=\"appointments\" AND metric.labels.method=\"POST\" AND metric.labels.status_class=\"2\""
    api_requests      = local.api_requests
    api_5xx           = "${local.api_requests} AND ${local.server_error}"
    api_latencies     = local.api_latencies
    functions_5xx     = "${local.cloud_run_5xx} AND resource.labels.service_name=monitoring.regex.full_match(\"${local.services_regex}\")"
    outcomes          = local.notification_outcomes
    outbox_age        = local.outbox_oldest_due_age
    outbox_due        = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.outbox_due.name}\""
    db_cpu            = "metric.type=\"cloudsql.googleapis.com/database/cpu/utilization\" AND ${local.cloud_sql}"
    db_connections    = "metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\" AND ${local.cloud_sql}"
    db_disk           = "metric.type=\"cloudsql.googleapis.com/database/disk/utilization\" AND ${local.cloud_sql}"
    connection_budget = var.db_connection_budget
    max_connections   = var.db_max_connections
  }
}

# ---------------------------------------------------------------------------
# Where alerts go
# ---------------------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  count = var.notification_email == null ? 0 : 1

  project      = var.project_id
  display_name = "${var.name_prefix} operators (email)"
  type         = "email"
  labels = {
    email_address = var.notification_email
  }
}

# ---------------------------------------------------------------------------
# Log-based metrics
# ---------------------------------------------------------------------------

# Every request the load balancer passed to (or answered for) API Gateway, by method, first
# path segment (doctors, patients, appointments) and status class (the first digit).
resource "google_logging_metric" "api_requests" {
  project     = var.project_id
  name        = "${var.name_prefix}/api_requests"
  description = "Requests at the load balancer's API backend, by method, resource and status class."
  filter      = "resource.type=\"http_load_balancer\" AND resource.labels.backend_service_name=\"${var.backend_service_name}\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "API requests at the load balancer"

    labels {
      key         = "method"
      value_type  = "STRING"
      description = "HTTP method."
    }
    labels {
      key         = "resource"
      value_type  = "STRING"
      description = "First path segment: doctors, patients or appointments."
    }
    labels {
      key         = "status_class"
      value_type  = "STRING"
      description = "First digit of the HTTP status: 2, 3, 4 or 5."
    }
  }

  label_extractors = {
    "method"       = "EXTRACT(httpRequest.requestMethod)"
    "resource"     = "REGEXP_EXTRACT(httpRequest.requestUrl, \"^(?:https?://[^/]+)?/([a-z]+)\")"
    "status_class" = "REGEXP_EXTRACT(httpRequest.status, \"^([1-5])[0-9][0-9]$\")"
  }
}

# The same requests' latency as the load balancer measured it (first byte in to last out).
resource "google_logging_metric" "api_latencies" {
  project         = var.project_id
  name            = "${var.name_prefix}/api_latencies"
  description     = "Latency of requests at the load balancer's API backend, by method and resource."
  filter          = "resource.type=\"http_load_balancer\" AND resource.labels.backend_service_name=\"${var.backend_service_name}\""
  value_extractor = "EXTRACT(httpRequest.latency)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "API latency at the load balancer"

    labels {
      key         = "method"
      value_type  = "STRING"
      description = "HTTP method."
    }
    labels {
      key         = "resource"
      value_type  = "STRING"
      description = "First path segment: doctors, patients or appointments."
    }
  }

  label_extractors = {
    "method"   = "EXTRACT(httpRequest.requestMethod)"
    "resource" = "REGEXP_EXTRACT(httpRequest.requestUrl, \"^(?:https?://[^/]+)?/([a-z]+)\")"
  }

  # 5 ms to about 4 minutes, 25% apart: fine enough for a p95 against a second or two.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 48
      growth_factor      = 1.25
      scale              = 0.005
    }
  }
}

# The outbox sweep's line (shared/dispatch.py, report_sweep): how long the oldest due row
# has waited undispatched, in seconds; 0 when none waits.
resource "google_logging_metric" "outbox_oldest_due_age" {
  project         = var.project_id
  name            = "${var.name_prefix}/outbox_oldest_due_age"
  description     = "Seconds the oldest due, undispatched outbox row has waited, as each sweep saw it."
  filter          = "${local.notify_logs} AND jsonPayload.logger=\"clinic.dispatch\" AND jsonPayload.message=\"outbox swept\""
  value_extractor = "EXTRACT(jsonPayload.oldest_due_age_s)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Outbox: age of the oldest due row"
  }

  bucket_options {
    explicit_buckets {
      bounds = [1, 5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 86400]
    }
  }
}

# The same line's count of rows due and not yet sent.
resource "google_logging_metric" "outbox_due" {
  project         = var.project_id
  name            = "${var.name_prefix}/outbox_due"
  description     = "Due, undispatched outbox rows, as each sweep saw them."
  filter          = "${local.notify_logs} AND jsonPayload.logger=\"clinic.dispatch\" AND jsonPayload.message=\"outbox swept\""
  value_extractor = "EXTRACT(jsonPayload.due)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Outbox: due rows"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 1
    }
  }
}

# The waitlist's sweep line (shared/waitlist.py, report_sweep): how long the oldest offer
# still open past its hold time has been overdue, in seconds; 0 when none is.
resource "google_logging_metric" "waitlist_oldest_overdue_hold" {
  project         = var.project_id
  name            = "${var.name_prefix}/waitlist_oldest_overdue_hold"
  description     = "Seconds the oldest waitlist offer still open past its hold time is overdue, as each sweep saw it."
  filter          = "${local.notify_logs} AND jsonPayload.logger=\"clinic.waitlist\" AND jsonPayload.message=\"waitlist swept\""
  value_extractor = "EXTRACT(jsonPayload.oldest_overdue_hold_s)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Waitlist: oldest overdue hold"
  }

  bucket_options {
    explicit_buckets {
      bounds = [1, 30, 60, 120, 180, 300, 600, 1800, 3600, 21600, 86400]
    }
  }
}

# notify's line for each delivery attempt (shared/notify.py, and shared/waitlist.py's offer
# email): its outcome (sent, skipped, duplicate, retry, failed, lost) and the message kind.
resource "google_logging_metric" "notification_outcomes" {
  project     = var.project_id
  name        = "${var.name_prefix}/notification_outcomes"
  description = "Notification delivery attempts by outcome and kind."
  filter      = "${local.notify_logs} AND jsonPayload.logger=\"clinic.notify\" AND jsonPayload.outcome:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Notification outcomes"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "sent, skipped, duplicate, retry, failed or lost."
    }
    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "CONFIRMATION, REMINDER, CANCELLATION, RESCHEDULED or WAITLIST_OFFER."
    }
  }

  label_extractors = {
    "outcome" = "EXTRACT(jsonPayload.outcome)"
    "kind"    = "EXTRACT(jsonPayload.kind)"
  }
}

# Lines at ERROR or worse from the functions' own code (our JSON lines on stdout, a traceback
# on stderr), except notify's delivery outcomes, which have their own alert. Cloud Run's
# request log is left out: the 5xx condition counts those.
resource "google_logging_metric" "function_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}/function_errors"
  description = "ERROR log lines of the four functions, per Cloud Run service (delivery outcomes excluded)."
  filter      = "${local.functions_logs} AND (log_id(\"run.googleapis.com/stdout\") OR log_id(\"run.googleapis.com/stderr\")) AND severity>=ERROR AND NOT jsonPayload.outcome:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Function errors"
  }
}

# Cloud Run's own lines about an instance: a crash, an exit, memory exhausted, a failed
# startup probe (its system log; instance starts are INFO and not counted).
resource "google_logging_metric" "function_crashes" {
  project     = var.project_id
  name        = "${var.name_prefix}/function_crashes"
  description = "Cloud Run system log lines at WARNING or worse about the functions' instances."
  filter      = "${local.functions_logs} AND log_id(\"run.googleapis.com/varlog/system\") AND severity>=WARNING"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Function instance crashes"
  }
}

# ---------------------------------------------------------------------------
# The API at the load balancer, per route class
# ---------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "api_5xx" {
  for_each = local.route_classes

  project               = var.project_id
  display_name          = "${var.name_prefix} API ${each.key}: 5xx answers"
  combiner              = "AND"
  severity              = "CRITICAL"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: ${each.key} requests fail with 5xx"
    content   = "More than ${var.api_error_ratio * 100}% of the ${each.key} requests (and at least ${var.api_error_min_count}) got a 5xx at the load balancer in 5 minutes. ${local.runbook}"
  }

  conditions {
    display_name = "5xx share of ${each.key} requests above ${var.api_error_ratio * 100}% over 5 min"
    condition_threshold {
      filter             = "${local.api_requests} AND ${each.value} AND ${local.server_error}"
      denominator_filter = "${local.api_requests} AND ${each.value}"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.api_error_ratio
      duration           = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "at least ${var.api_error_min_count} ${each.key} 5xx answers in 5 min"
    condition_threshold {
      filter          = "${local.api_requests} AND ${each.value} AND ${local.server_error}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.api_error_min_count - 1
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "api_latency" {
  for_each = local.route_classes

  project               = var.project_id
  display_name          = "${var.name_prefix} API ${each.key}: p95 latency"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: ${each.key} requests are slow"
    content   = "The p95 latency of ${each.key} requests at the load balancer stayed above ${var.api_latency_p95_seconds[each.key]} s for 10 minutes. ${local.runbook}"
  }

  conditions {
    display_name = "p95 of ${each.key} above ${var.api_latency_p95_seconds[each.key]} s"
    condition_threshold {
      filter          = "${local.api_latencies} AND ${each.value}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.api_latency_p95_seconds[each.key]
      duration        = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
      }
    }
  }
}

# ---------------------------------------------------------------------------
# The functions
# ---------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  display_name          = "${var.name_prefix} function errors"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: a function is erroring"
    content   = "A function logged more than ${var.function_error_count} ERROR lines, or slots, book or cancel answered more than ${var.function_error_count} 5xx, in 10 minutes. ${local.runbook}"
  }

  conditions {
    display_name = "more than ${var.function_error_count} ERROR lines of one function in 10 min"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.function_error_count
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  conditions {
    display_name = "more than ${var.function_error_count} 5xx answers of one API function in 10 min"
    condition_threshold {
      filter          = "${local.cloud_run_5xx} AND resource.labels.service_name=monitoring.regex.full_match(\"${local.api_services}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.function_error_count
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
}

resource "google_monitoring_alert_policy" "function_crashes" {
  project               = var.project_id
  display_name          = "${var.name_prefix} function instances crashing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: a function's instances keep crashing"
    content   = "Cloud Run logged more than ${var.function_crash_count} crashes, exits, out-of-memory kills or failed startups of one function's instances in 15 minutes. ${local.runbook}"
  }

  conditions {
    display_name = "more than ${var.function_crash_count} instance failures of one function in 15 min"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_crashes.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.function_crash_count
      duration        = "0s"

      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
}

# ---------------------------------------------------------------------------
# Notifications and the queues
# ---------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "notifications_failed" {
  project               = var.project_id
  display_name          = "${var.name_prefix} notifications FAILED"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: messages to patients failed for good"
    content   = "notify recorded a message FAILED (its last attempt) or logged one LOST (the database was unreachable on its last attempt). ${local.runbook}"
  }

  conditions {
    display_name = "a delivery ended failed or lost"
    condition_threshold {
      filter          = "${local.notification_outcomes} AND metric.labels.outcome=monitoring.regex.full_match(\"failed|lost\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "${var.name_prefix} domain events dead-lettered"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: events wait in the dead-letter subscription"
    content   = "Messages wait in ${var.dead_letter_subscription}: an integration could not take an event after every delivery attempt. ${local.runbook}"
  }

  conditions {
    display_name = "undelivered messages in ${var.dead_letter_subscription}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.dead_letter_subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

# notify answers 5xx exactly when it wants Cloud Tasks to try again (mail relay or database
# unavailable), so its 5xx answers count the retries being queued.
resource "google_monitoring_alert_policy" "tasks_retries" {
  project               = var.project_id
  display_name          = "${var.name_prefix} Cloud Tasks retries piling up"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: notification tasks are being retried"
    content   = "notify answered more than ${var.notify_retry_count} task attempts with 5xx in 15 minutes; Cloud Tasks retries each with backoff. ${local.runbook}"
  }

  conditions {
    display_name = "more than ${var.notify_retry_count} notify 5xx answers in 15 min"
    condition_threshold {
      filter          = "${local.cloud_run_5xx} AND resource.labels.service_name=\"${var.function_names["notify"]}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.notify_retry_count
      duration        = "0s"

      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "outbox_stuck" {
  project               = var.project_id
  display_name          = "${var.name_prefix} outbox rows not dispatched"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: the outbox is not being emptied"
    content   = "A due outbox row waited more than ${var.outbox_max_age_seconds} s without reaching Cloud Tasks or Pub/Sub, or the sweep logged nothing for 15 minutes. ${local.runbook}"
  }

  conditions {
    display_name = "oldest due row older than ${var.outbox_max_age_seconds} s"
    condition_threshold {
      filter          = local.outbox_oldest_due_age
      comparison      = "COMPARISON_GT"
      threshold_value = var.outbox_max_age_seconds
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
      }
    }
  }

  conditions {
    display_name = "no sweep for 15 min"
    condition_absent {
      filter   = local.outbox_oldest_due_age
      duration = "900s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_DELTA"
      }
    }
  }
}

# A hold past its time blocks its slot: nobody else can book it and its patient can no
# longer accept. The expiry task ends it on time and the sweep within a minute after.
resource "google_monitoring_alert_policy" "waitlist_holds_overdue" {
  project               = var.project_id
  display_name          = "${var.name_prefix} waitlist holds past their time"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: freed slots stay held after their offers ended"
    content   = "A waitlist offer stayed open more than ${var.waitlist_hold_overdue_seconds} s past its hold time: neither its expiry task nor the sweep ended it, so its slot can be booked by nobody. ${local.runbook}"
  }

  conditions {
    display_name = "a hold overdue by more than ${var.waitlist_hold_overdue_seconds} s"
    condition_threshold {
      filter          = local.waitlist_overdue_hold
      comparison      = "COMPARISON_GT"
      threshold_value = var.waitlist_hold_overdue_seconds
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
      }
    }
  }
}

# ---------------------------------------------------------------------------
# Cloud SQL
# ---------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "db_cpu" {
  project               = var.project_id
  display_name          = "${var.name_prefix} Cloud SQL CPU"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: the database's CPU is near its limit"
    content   = "Cloud SQL CPU utilization stayed above ${var.db_cpu_utilization * 100}% for 10 minutes. ${local.runbook}"
  }

  conditions {
    display_name = "CPU above ${var.db_cpu_utilization * 100}% for 10 min"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/cpu/utilization\" AND ${local.cloud_sql}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.db_cpu_utilization
      duration        = "600s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "db_connections" {
  project               = var.project_id
  display_name          = "${var.name_prefix} Cloud SQL connections beyond the budget"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: the database holds more connections than the functions may"
    content   = "PostgreSQL held more than ${local.db_connection_threshold} connections for 5 minutes: the functions' budget is ${var.db_connection_budget} of max_connections ${var.db_max_connections} (decision 0003), so half the reserve is in use by something else. ${local.runbook}"
  }

  conditions {
    display_name = "more than ${local.db_connection_threshold} backends for 5 min"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\" AND ${local.cloud_sql}"
      comparison      = "COMPARISON_GT"
      threshold_value = local.db_connection_threshold
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.database_id"]
      }
    }
  }
}

resource "google_monitoring_alert_policy" "db_disk" {
  project               = var.project_id
  display_name          = "${var.name_prefix} Cloud SQL disk"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: the database's disk is filling"
    content   = "Cloud SQL disk utilization is above ${var.db_disk_utilization * 100}%. ${local.runbook}"
  }

  conditions {
    display_name = "disk above ${var.db_disk_utilization * 100}%"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/disk/utilization\" AND ${local.cloud_sql}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.db_disk_utilization
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

# ---------------------------------------------------------------------------
# The public host, from outside
# ---------------------------------------------------------------------------

resource "google_monitoring_uptime_check_config" "api" {
  project      = var.project_id
  display_name = "${var.name_prefix} GET https://${var.public_host}${var.uptime_path}"
  timeout      = "10s"
  period       = "60s"

  http_check {
    request_method = "GET"
    path           = var.uptime_path
    port           = 443
    use_ssl        = true
    validate_ssl   = true

    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  # A list answer, not some page that happens to be 200.
  content_matchers {
    content = "\"items\""
    matcher = "CONTAINS_STRING"
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.public_host
    }
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  project               = var.project_id
  display_name          = "${var.name_prefix} public host down"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: https://${var.public_host}${var.uptime_path} does not answer"
    content   = "The uptime check failed from more than one region. ${local.runbook}"
  }

  conditions {
    display_name = "uptime check failing from more than one region"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.labels.check_id=\"${google_monitoring_uptime_check_config.api.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "60s"

      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.host"]
      }
    }
  }
}

# ---------------------------------------------------------------------------
# Booking availability SLO and its burn-rate alerts
# ---------------------------------------------------------------------------

resource "google_monitoring_custom_service" "booking" {
  project      = var.project_id
  service_id   = "${var.name_prefix}-booking"
  display_name = "${var.name_prefix} booking (POST /appointments, PATCH /appointments/{id})"
}

resource "google_monitoring_slo" "booking_availability" {
  project             = var.project_id
  service             = google_monitoring_custom_service.booking.service_id
  slo_id              = "booking-availability"
  display_name        = "${var.slo_goal * 100}% of bookings and changes not 5xx, ${var.slo_rolling_period_days} days"
  goal                = var.slo_goal
  rolling_period_days = var.slo_rolling_period_days

  request_based_sli {
    good_total_ratio {
      bad_service_filter   = "${local.api_requests} AND ${local.booking_changes} AND ${local.server_error}"
      total_service_filter = "${local.api_requests} AND ${local.booking_changes}"
    }
  }
}

# Multi-window burn rates (the SRE workbook's): fast spends 2% of the budget in an hour,
# slow 5% in six hours; the short window lets the alert close soon after a fix.
resource "google_monitoring_alert_policy" "slo_fast_burn" {
  project               = var.project_id
  display_name          = "${var.name_prefix} booking SLO: fast burn"
  combiner              = "AND"
  severity              = "CRITICAL"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: bookings fail fast enough to spend the month's error budget in two days"
    content   = "The booking availability SLO's error budget burns 14.4 times faster than it may (over 1 hour and 5 minutes). ${local.runbook}"
  }

  conditions {
    display_name = "burn rate above 14.4 over 1 h"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${google_monitoring_slo.booking_availability.name}\", \"60m\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 14.4
      duration        = "0s"
    }
  }

  conditions {
    display_name = "burn rate above 14.4 over 5 min"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${google_monitoring_slo.booking_availability.name}\", \"5m\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 14.4
      duration        = "0s"
    }
  }
}

resource "google_monitoring_alert_policy" "slo_slow_burn" {
  project               = var.project_id
  display_name          = "${var.name_prefix} booking SLO: slow burn"
  combiner              = "AND"
  severity              = "WARNING"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: bookings fail often enough to miss the SLO within a week"
    content   = "The booking availability SLO's error budget burns 6 times faster than it may (over 6 hours and 30 minutes). ${local.runbook}"
  }

  conditions {
    display_name = "burn rate above 6 over 6 h"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${google_monitoring_slo.booking_availability.name}\", \"360m\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 6
      duration        = "0s"
    }
  }

  conditions {
    display_name = "burn rate above 6 over 30 min"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${google_monitoring_slo.booking_availability.name}\", \"30m\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 6
      duration        = "0s"
    }
  }
}

# ---------------------------------------------------------------------------
# One screen
# ---------------------------------------------------------------------------

resource "google_monitoring_dashboard" "operations" {
  project = var.project_id
  # Each value is a whole JSON string literal, so the template holds no logic and parses as
  # JSON once they are in (tests/unit/test_monitoring.py renders it).
  dashboard_json = templatefile("${path.module}/dashboard.json.tftpl", {
    for name, value in local.dashboard : name => jsonencode(value)
  })
}
