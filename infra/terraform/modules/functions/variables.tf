variable "project_id" {
  type        = string
  description = "Google Cloud project of the functions."
}

variable "region" {
  type        = string
  description = "Region the functions run in."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"clinic\"."
}

variable "bundles_dir" {
  type        = string
  description = "Absolute path of build/functions, where `make package` puts one folder per function."
}

variable "functions" {
  type = map(object({
    min_instances   = number
    max_instances   = number
    concurrency     = number
    cpu             = string
    memory          = string
    timeout_seconds = number
    db_pool_size    = number
  }))
  description = "Sizing of slots, book, cancel and notify (see the root module's variable of the same name)."

  validation {
    condition     = toset(keys(var.functions)) == toset(["slots", "book", "cancel", "notify"])
    error_message = "functions must configure exactly slots, book, cancel and notify."
  }
}

variable "network_name" {
  type        = string
  description = "VPC the functions' Direct VPC egress attaches to."
}

variable "subnetwork_name" {
  type        = string
  description = "Subnet the functions' Direct VPC egress takes addresses from."
}

variable "instance_connection_name" {
  type        = string
  description = "Cloud SQL PROJECT:REGION:INSTANCE (INSTANCE_CONNECTION_NAME)."
}

variable "db_name" {
  type        = string
  description = "Application database name (DB_NAME)."
}

variable "queue_id" {
  type        = string
  description = "Full Cloud Tasks queue path (TASKS_QUEUE)."
}

variable "queue_name" {
  type        = string
  description = "Short name of the Cloud Tasks queue (for IAM)."
}

variable "queue_location" {
  type        = string
  description = "Location of the Cloud Tasks queue (for IAM)."
}

variable "tasks_max_attempts" {
  type        = number
  description = "TASKS_MAX_ATTEMPTS; must equal the queue's retry_config.max_attempts (the root module feeds both from one variable)."
}

variable "tasks_invoker_email" {
  type        = string
  description = "Email of the account Cloud Tasks signs notify's OIDC token as (TASKS_SERVICE_ACCOUNT)."
}

variable "tasks_invoker_id" {
  type        = string
  description = "Resource id (projects/P/serviceAccounts/E) of the tasks invoker account."
}

variable "scheduler_email" {
  type        = string
  description = "Email of the account Cloud Scheduler signs the sweep's OIDC token as."
}

variable "topic_id" {
  type        = string
  description = "projects/P/topics/appointment-events (PUBSUB_TOPIC)."
}

variable "topic_name" {
  type        = string
  description = "Short name of the events topic (for IAM)."
}

variable "smtp_username_secret_id" {
  type        = string
  description = "Secret Manager secret id holding the SMTP user name."
}

variable "smtp_password_secret_id" {
  type        = string
  description = "Secret Manager secret id holding the SMTP password."
}

variable "smtp_secret_version" {
  type        = string
  description = "Version of the SMTP secrets notify reads: a number, or \"latest\"."

  validation {
    condition     = can(regex("^([0-9]+|latest)$", var.smtp_secret_version))
    error_message = "smtp_secret_version must be a version number or \"latest\"."
  }
}

variable "smtp_host" {
  type        = string
  description = "SMTP relay host (SMTP_HOST)."
}

variable "smtp_port" {
  type        = number
  description = "SMTP relay port (SMTP_PORT)."
}

variable "smtp_starttls" {
  type        = bool
  description = "Whether notify upgrades the SMTP connection with STARTTLS (SMTP_STARTTLS)."
}

variable "mail_from" {
  type        = string
  description = "From header of every message (MAIL_FROM)."
}

variable "public_url" {
  type        = string
  description = "The web app's address (PUBLIC_URL): every email links to PUBLIC_URL/#/appointments/ID."

  validation {
    condition     = can(regex("^https://[^/\\s]+$", var.public_url))
    error_message = "public_url is https://host, without a path or a trailing slash."
  }
}

variable "reminder_offsets" {
  type        = string
  description = "REMINDER_OFFSETS, e.g. \"24h,2h\"."
}

variable "max_upcoming_appointments" {
  type        = number
  description = "MAX_UPCOMING_APPOINTMENTS of the book function."
}

variable "max_changes_per_hour" {
  type        = number
  description = "MAX_CHANGES_PER_HOUR of the book and cancel functions."
}

variable "waitlist_max_entries" {
  type        = number
  description = "WAITLIST_MAX_ENTRIES of every function."
}

variable "waitlist_lead_minutes" {
  type        = number
  description = "WAITLIST_LEAD_MINUTES of every function."
}

variable "hold_minutes" {
  type        = number
  description = "HOLD_MINUTES of every function."
}

variable "cors_allowed_origins" {
  type        = list(string)
  description = "Browser origins slots, book and cancel answer CORS requests from; [\"*\"] for any."
}

variable "gateway_service_account_email" {
  type        = string
  description = "The API Gateway's account: the only principal allowed to invoke slots, book and cancel."
}

variable "edge_token" {
  type        = string
  description = "The X-Clinic-Edge value the load balancer adds; slots, book and cancel refuse requests without it."
  sensitive   = true
}
