output "dashboard_id" {
  description = "The operations dashboard (Cloud Monitoring > Dashboards)."
  value       = google_monitoring_dashboard.operations.id
}

output "uptime_check_id" {
  description = "Id of the uptime check on the public host."
  value       = google_monitoring_uptime_check_config.api.uptime_check_id
}

output "booking_slo" {
  description = "Full name of the booking availability SLO (select_slo_burn_rate and the console read it)."
  value       = google_monitoring_slo.booking_availability.name
}

output "log_metric_types" {
  description = "Log-based metric => its Cloud Monitoring metric type."
  value = { for m in [
    google_logging_metric.api_requests,
    google_logging_metric.api_latencies,
    google_logging_metric.outbox_oldest_due_age,
    google_logging_metric.outbox_due,
    google_logging_metric.notification_outcomes,
    google_logging_metric.function_errors,
    google_logging_metric.function_crashes,
  ] : m.name => "logging.googleapis.com/user/${m.name}" }
}

output "notification_channels" {
  description = "Channels every alert notifies (the email one, when notification_email is set, and the ones passed in)."
  value       = local.channels
}
