variable "project_id" {
  type        = string
  description = "Google Cloud project of the queue, topics, secrets and scheduler job."
}

variable "region" {
  type        = string
  description = "Location of the Cloud Tasks queue and the Cloud Scheduler job."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"clinic\"."
}

variable "max_attempts" {
  type        = number
  description = "Cloud Tasks retry_config.max_attempts; the notify function's TASKS_MAX_ATTEMPTS must be the same number."

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 100
    error_message = "max_attempts must be between 1 and 100 (unlimited attempts would never record FAILED)."
  }
}

variable "min_backoff" {
  type        = string
  description = "Shortest wait before a task is retried, e.g. \"10s\"."

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?s$", var.min_backoff))
    error_message = "min_backoff must be a duration in seconds such as \"10s\"."
  }
}

variable "max_backoff" {
  type        = string
  description = "Longest wait between two attempts of a task, e.g. \"600s\"."

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?s$", var.max_backoff))
    error_message = "max_backoff must be a duration in seconds such as \"600s\"."
  }
}

variable "max_dispatches_per_second" {
  type        = number
  description = "Highest rate at which the queue sends tasks to notify (the SMTP relay's rate limit is the usual ceiling)."

  validation {
    condition     = var.max_dispatches_per_second > 0 && var.max_dispatches_per_second <= 500
    error_message = "max_dispatches_per_second must be in (0, 500]."
  }
}

variable "max_concurrent_dispatches" {
  type        = number
  description = "Most tasks in flight at once; set to notify's max instances times its concurrency."

  validation {
    condition     = var.max_concurrent_dispatches >= 1 && var.max_concurrent_dispatches <= 5000
    error_message = "max_concurrent_dispatches must be between 1 and 5000."
  }
}

variable "event_subscriptions" {
  type        = list(string)
  description = "Names of the pull subscriptions on appointment-events, one per integration."

  validation {
    condition     = alltrue([for s in var.event_subscriptions : can(regex("^[a-z][a-z0-9-]{0,40}$", s))])
    error_message = "Subscription names must be lowercase letters, digits and dashes."
  }
}

variable "dead_letter_max_delivery_attempts" {
  type        = number
  description = "Deliveries of an event to a subscription before it moves to the dead-letter topic (5-100)."

  validation {
    condition     = var.dead_letter_max_delivery_attempts >= 5 && var.dead_letter_max_delivery_attempts <= 100
    error_message = "dead_letter_max_delivery_attempts must be between 5 and 100."
  }
}

variable "sweep_schedule" {
  type        = string
  description = "Cron schedule of the outbox sweep (UTC)."
}

variable "notify_url" {
  type        = string
  description = "The notify function's run.app base URL (also the OIDC audience)."
}

variable "notify_timeout_seconds" {
  type        = number
  description = "The notify function's timeout; the sweep job's attempt deadline."
}
