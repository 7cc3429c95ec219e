# ---------------------------------------------------------------------------
# Where, and who is told
# ---------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Project whose metrics, logs and alert policies these are."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the log-based metric names, the dashboard, the SLO service and the uptime check."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-12 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "notification_email" {
  type        = string
  description = "Address an email notification channel sends every alert to; null for none (the alerts still open incidents in the console)."
  default     = null
  nullable    = true

  validation {
    condition     = var.notification_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "notification_email must be an email address, or null."
  }
}

variable "notification_channels" {
  type        = list(string)
  description = "Further notification channels made outside this configuration (PagerDuty, Slack, SMS), by full name: projects/PROJECT/notificationChannels/ID."
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each notification channel is projects/PROJECT/notificationChannels/ID."
  }
}

# ---------------------------------------------------------------------------
# What is watched (names from the other modules)
# ---------------------------------------------------------------------------

variable "public_host" {
  type        = string
  description = "Host name the uptime check calls through the load balancer (the first of var.domains)."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.public_host))
    error_message = "public_host must be a lowercase fully qualified host name."
  }
}

variable "uptime_path" {
  type        = string
  description = "Path the uptime check GETs: public, cheap, and through the whole chain (load balancer, Cloud Armor, API Gateway, slots, Cloud SQL)."
  default     = "/doctors"

  validation {
    condition     = startswith(var.uptime_path, "/")
    error_message = "uptime_path must start with /."
  }
}

variable "backend_service_name" {
  type        = string
  description = "The load balancer's backend service in front of API Gateway: its request logs (resource.labels.backend_service_name) feed the per-route metrics."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]*[a-z0-9])?$", var.backend_service_name))
    error_message = "backend_service_name must be a Compute Engine resource name."
  }
}

variable "function_names" {
  type        = map(string)
  description = "Function (slots, book, cancel, notify) => deployed name, which is also its Cloud Run service name (resource.labels.service_name)."

  validation {
    condition     = toset(keys(var.function_names)) == toset(["slots", "book", "cancel", "notify"])
    error_message = "function_names must name exactly slots, book, cancel and notify."
  }
}

variable "dead_letter_subscription" {
  type        = string
  description = "Short name of the subscription that keeps dead-lettered domain events until a person looks."

  validation {
    condition     = length(var.dead_letter_subscription) > 2
    error_message = "dead_letter_subscription must be a subscription name."
  }
}

variable "db_instance_name" {
  type        = string
  description = "Cloud SQL instance name; its metrics carry resource.labels.database_id = PROJECT:INSTANCE."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.db_instance_name))
    error_message = "db_instance_name must be a Cloud SQL instance name."
  }
}

variable "db_max_connections" {
  type        = number
  description = "PostgreSQL max_connections (decision 0003)."

  validation {
    condition     = var.db_max_connections >= 25
    error_message = "db_max_connections must be at least 25."
  }
}

variable "db_connection_budget" {
  type        = number
  description = "Connections the functions may hold at most: the sum of max_instances x db_pool_size (decision 0003). The alert fires when the database holds more than this plus half the reserve, i.e. something outside the budget is eating the reserve."

  validation {
    condition     = var.db_connection_budget >= 1
    error_message = "db_connection_budget must be at least 1."
  }
}

# ---------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------

variable "api_error_ratio" {
  type        = number
  description = "Share of a route class's requests answered 5xx at the load balancer over 5 minutes above which it alerts (with at least api_error_min_count such answers)."
  default     = 0.02

  validation {
    condition     = var.api_error_ratio > 0 && var.api_error_ratio < 1
    error_message = "api_error_ratio is a fraction between 0 and 1."
  }
}

variable "api_error_min_count" {
  type        = number
  description = "5xx answers a route class must also have had in those 5 minutes: on a quiet night one failed request out of three is no incident."
  default     = 5

  validation {
    condition     = var.api_error_min_count >= 1 && floor(var.api_error_min_count) == var.api_error_min_count
    error_message = "api_error_min_count is a whole number, at least 1."
  }
}

variable "api_latency_p95_seconds" {
  type        = map(number)
  description = "Per route class (slots, book, cancel): the p95 latency at the load balancer, in seconds, over 5 minutes and held for 10, above which it alerts."
  default     = { slots = 1.0, book = 2.0, cancel = 2.0 }

  validation {
    condition     = toset(keys(var.api_latency_p95_seconds)) == toset(["slots", "book", "cancel"]) && alltrue([for s in values(var.api_latency_p95_seconds) : s > 0 && s <= 60])
    error_message = "api_latency_p95_seconds needs slots, book and cancel, each above 0 and at most 60 seconds."
  }
}

variable "function_error_count" {
  type        = number
  description = "ERROR log lines (uncaught exceptions and the like), or 5xx answers of slots, book and cancel, one function may produce in 10 minutes before it alerts."
  default     = 5

  validation {
    condition     = var.function_error_count >= 1
    error_message = "function_error_count must be at least 1."
  }
}

variable "function_crash_count" {
  type        = number
  description = "Instance crashes (Cloud Run system log lines at WARNING or worse: exits, out of memory, failed startup probes) one function may have in 15 minutes before it alerts."
  default     = 3

  validation {
    condition     = var.function_crash_count >= 1
    error_message = "function_crash_count must be at least 1."
  }
}

variable "notify_retry_count" {
  type        = number
  description = "notify answers of 5xx (each one a Cloud Tasks attempt that will be retried) in 15 minutes above which it alerts."
  default     = 20

  validation {
    condition     = var.notify_retry_count >= 1
    error_message = "notify_retry_count must be at least 1."
  }
}

variable "outbox_max_age_seconds" {
  type        = number
  description = "How long a due outbox row may wait undispatched (the sweep's oldest_due_age_s) before it alerts. The sweep runs every minute, so a healthy outbox stays under a minute or two."
  default     = 300

  validation {
    condition     = var.outbox_max_age_seconds >= 60 && var.outbox_max_age_seconds <= 86400
    error_message = "outbox_max_age_seconds must be between 60 and 86400."
  }
}

variable "waitlist_hold_overdue_seconds" {
  type        = number
  description = "How long a waitlist offer may stay open past its hold time (the sweep's oldest_overdue_hold_s) before it alerts. The expiry task ends it on time and the sweep, every minute, soon after."
  default     = 180

  validation {
    condition     = var.waitlist_hold_overdue_seconds >= 60 && var.waitlist_hold_overdue_seconds <= 3600
    error_message = "waitlist_hold_overdue_seconds must be between 60 and 3600."
  }
}

variable "db_cpu_utilization" {
  type        = number
  description = "Cloud SQL CPU utilization (0-1), held for 10 minutes, above which it alerts."
  default     = 0.8

  validation {
    condition     = var.db_cpu_utilization > 0 && var.db_cpu_utilization < 1
    error_message = "db_cpu_utilization is a fraction between 0 and 1."
  }
}

variable "db_disk_utilization" {
  type        = number
  description = "Cloud SQL disk utilization (0-1) above which it alerts (storage auto-resize grows the disk, but only so often and never back)."
  default     = 0.8

  validation {
    condition     = var.db_disk_utilization > 0 && var.db_disk_utilization < 1
    error_message = "db_disk_utilization is a fraction between 0 and 1."
  }
}

variable "slo_goal" {
  type        = number
  description = "Booking availability SLO: the share of POST /appointments and PATCH /appointments/{id} not answered 5xx at the load balancer."
  default     = 0.999

  validation {
    condition     = var.slo_goal >= 0.9 && var.slo_goal <= 0.999
    error_message = "slo_goal must be between 0.9 and 0.999 (Cloud Monitoring's highest)."
  }
}

variable "slo_rolling_period_days" {
  type        = number
  description = "The SLO's rolling window in days (1-30)."
  default     = 28

  validation {
    condition     = var.slo_rolling_period_days >= 1 && var.slo_rolling_period_days <= 30 && floor(var.slo_rolling_period_days) == var.slo_rolling_period_days
    error_message = "slo_rolling_period_days is a whole number from 1 to 30."
  }
}
