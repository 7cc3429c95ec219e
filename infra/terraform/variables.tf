# ---------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Google Cloud project to deploy into."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL, the queue and the scheduler job."
  default     = "europe-west1"
}

variable "gateway_region" {
  type        = string
  description = "Region of the API Gateway and its serverless NEG; null means var.region. API Gateway runs in fewer regions than Cloud Functions."
  default     = null
  nullable    = true
}

variable "name_prefix" {
  type        = string
  description = "Prefix of resource and service-account names; keep it short (service-account ids are at most 30 characters)."
  default     = "clinic"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-12 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels put on every resource that takes labels (app and managed-by are always set)."
  default     = {}
}

# ---------------------------------------------------------------------------
# Edge: load balancer, Cloud Armor
# ---------------------------------------------------------------------------

variable "domains" {
  type        = list(string)
  description = "Host names clients use (e.g. [\"api.clinic.example\"]); the managed certificate covers them once their DNS points at the load balancer."

  validation {
    condition     = length(var.domains) >= 1 && alltrue([for d in var.domains : can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", d))])
    error_message = "domains must hold at least one lowercase fully qualified host name."
  }
}

variable "load_balancing_scheme" {
  type        = string
  description = "EXTERNAL_MANAGED (global external Application Load Balancer) or EXTERNAL (classic)."
  default     = "EXTERNAL_MANAGED"

  validation {
    condition     = contains(["EXTERNAL_MANAGED", "EXTERNAL"], var.load_balancing_scheme)
    error_message = "load_balancing_scheme must be EXTERNAL_MANAGED or EXTERNAL."
  }
}

variable "waf_sensitivity" {
  type        = number
  description = "Sensitivity of the Cloud Armor preconfigured WAF rules, 1 (fewest false positives) to 4."
  default     = 1

  validation {
    condition     = var.waf_sensitivity >= 1 && var.waf_sensitivity <= 4
    error_message = "waf_sensitivity must be between 1 and 4."
  }
}

variable "rate_limit_requests_per_minute" {
  type        = number
  description = "Requests per minute one client IP may send before Cloud Armor answers 429; three times that over 5 minutes bans it."
  default     = 300

  validation {
    # The ban threshold is three times this, and Cloud Armor refuses a threshold count over 10,000.
    condition     = var.rate_limit_requests_per_minute >= 10 && var.rate_limit_requests_per_minute * 3 <= 10000 && floor(var.rate_limit_requests_per_minute) == var.rate_limit_requests_per_minute
    error_message = "rate_limit_requests_per_minute must be a whole number from 10 to 3333: the ban threshold, three times it, may not pass Cloud Armor's cap of 10,000."
  }
}

variable "rate_limit_ban_seconds" {
  type        = number
  description = "How long a client IP that keeps exceeding the limit stays banned."
  default     = 600

  validation {
    condition     = var.rate_limit_ban_seconds >= 60 && var.rate_limit_ban_seconds <= 86400
    error_message = "rate_limit_ban_seconds must be between 60 and 86400."
  }
}

variable "problem_error_responses" {
  type        = bool
  description = "Have the load balancer answer API Gateway's and Cloud Armor's own 401, 429, 500, 502 and 504 with problem+json bodies (and a CORS header) from a small public bucket. Needs load_balancing_scheme EXTERNAL_MANAGED; turn off where an organization policy forbids public buckets."
  default     = true
}

# ---------------------------------------------------------------------------
# Web app (module.web)
# ---------------------------------------------------------------------------

variable "web_api_key" {
  type        = string
  description = "The project's Web API key, which the web app's /config.json carries to sign in with Identity Platform (Identity Platform > Application setup details). Public by design; restrict it to the Identity Toolkit and Token Service APIs and to the domains (docs/deploy.md)."

  validation {
    condition     = can(regex("^AIza[0-9A-Za-z_-]{35}$", var.web_api_key))
    error_message = "web_api_key must be a Google API key (AIza followed by 35 characters)."
  }
}

variable "web_blocked_ip_ranges" {
  type        = list(string)
  description = "Client IP ranges (CIDR) the web app's Cloud Armor edge policy refuses (403), cached files included."
  default     = []

  validation {
    condition     = alltrue([for r in var.web_blocked_ip_ranges : can(cidrhost(r, 0))])
    error_message = "Each entry of web_blocked_ip_ranges must be a CIDR range."
  }
}

variable "web_noncurrent_version_days" {
  type        = number
  description = "Days the app's bucket keeps a replaced or deleted file (for a rollback by hand)."
  default     = 30

  validation {
    condition     = var.web_noncurrent_version_days >= 1
    error_message = "web_noncurrent_version_days must be at least 1."
  }
}

# ---------------------------------------------------------------------------
# Identity provider (API Gateway's JWT check)
# ---------------------------------------------------------------------------

variable "jwt_issuer" {
  type        = string
  description = "Issuer of the users' tokens; null means Firebase / Identity Platform's https://securetoken.google.com/<project_id>."
  default     = null
  nullable    = true
}

variable "jwks_uri" {
  type        = string
  description = "Signing keys of the issuer (Firebase / Identity Platform's by default)."
  default     = "https://www.googleapis.com/service_accounts/v1/metadata/x509/securetoken@system.gserviceaccount.com"

  validation {
    condition     = startswith(var.jwks_uri, "https://")
    error_message = "jwks_uri must be an https URL."
  }
}

variable "jwt_audience" {
  type        = string
  description = "Audience the users' tokens carry; null means the project id (Firebase / Identity Platform)."
  default     = null
  nullable    = true
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "functions_subnet_cidr" {
  type        = string
  description = "Subnet for the functions' Direct VPC egress; holds about 2 IPs per function instance."
  default     = "10.8.0.0/24"

  validation {
    condition     = can(cidrhost(var.functions_subnet_cidr, 0))
    error_message = "functions_subnet_cidr must be an IPv4 CIDR."
  }
}

variable "private_services_prefix_length" {
  type        = number
  description = "Size of the range reserved for Cloud SQL and the migrations pool (private services access)."
  default     = 20

  validation {
    condition     = var.private_services_prefix_length >= 16 && var.private_services_prefix_length <= 24
    error_message = "private_services_prefix_length must be between 16 and 24."
  }
}

# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

variable "db_instance_name" {
  type        = string
  description = "Cloud SQL instance name; null means \"<name_prefix>-pg\". After a point-in-time restore into a new instance, its name (docs/deploy.md, restore): the functions' INSTANCE_CONNECTION_NAME and IAM conditions follow it."
  default     = null
  nullable    = true

  validation {
    condition     = var.db_instance_name == null || can(regex("^[a-z][a-z0-9-]{0,96}$", var.db_instance_name))
    error_message = "db_instance_name must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "db_version" {
  type        = string
  description = "Cloud SQL PostgreSQL version; the same major as the local embedded PostgreSQL."
  default     = "POSTGRES_18"

  validation {
    condition     = can(regex("^POSTGRES_1[6-9]$", var.db_version))
    error_message = "db_version must be POSTGRES_16 or newer."
  }
}

variable "db_tier" {
  type        = string
  description = "Cloud SQL machine tier (Enterprise edition): db-custom-<vCPUs>-<MiB>."
  default     = "db-custom-2-7680"

  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|g1-small|f1-micro)$", var.db_tier))
    error_message = "db_tier must be an Enterprise edition tier such as db-custom-2-7680."
  }
}

variable "db_availability_type" {
  type        = string
  description = "REGIONAL (standby in a second zone, automatic failover) or ZONAL."
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.db_availability_type)
    error_message = "db_availability_type must be REGIONAL or ZONAL."
  }
}

variable "db_max_connections" {
  type        = number
  description = "PostgreSQL max_connections. Must hold every function's db_pool_size x max_instances plus db_reserved_connections."
  default     = 200

  validation {
    condition     = var.db_max_connections >= 25 && var.db_max_connections <= 4000
    error_message = "db_max_connections must be between 25 and 4000."
  }
}

variable "db_reserved_connections" {
  type        = number
  description = "Connections kept free for migrations, an operator's psql and Cloud SQL's own superuser slots."
  default     = 20

  validation {
    condition     = var.db_reserved_connections >= 5
    error_message = "Keep at least 5 connections in reserve."
  }
}

variable "db_name" {
  type        = string
  description = "Name of the application database (DB_NAME)."
  default     = "clinic"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lowercase PostgreSQL identifier."
  }
}

variable "db_backup_retained_count" {
  type        = number
  description = "Daily automated backups kept."
  default     = 30

  validation {
    condition     = var.db_backup_retained_count >= 7 && var.db_backup_retained_count <= 365
    error_message = "db_backup_retained_count must be between 7 and 365."
  }
}

variable "db_pitr_days" {
  type        = number
  description = "Days of point-in-time recovery (write-ahead log retention), 1-7."
  default     = 7

  validation {
    condition     = var.db_pitr_days >= 1 && var.db_pitr_days <= 7
    error_message = "db_pitr_days must be between 1 and 7."
  }
}

# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------

variable "functions" {
  type = map(object({
    # Instances kept warm. 1 on the user-facing read path avoids a cold start
    # (interpreter + imports + first Cloud SQL handshake, ~1-2 s) on the first
    # request after a quiet spell; 0 where latency does not matter.
    min_instances = number
    # Upper bound on scale-out: protects Cloud SQL (see db_pool_size) and the bill.
    max_instances = number
    # Requests one instance serves at once, on threads. The work is I/O-bound
    # (database, Cloud Tasks), so one vCPU can overlap several requests.
    concurrency = number
    # "1": a whole vCPU, required for concurrency > 1.
    cpu = string
    # Python + grpc + pydantic use ~150 MiB; 512Mi leaves room for bursts.
    memory = string
    # Wall-clock limit of one request. API calls finish in well under a second;
    # the limit only cuts a stuck one. For notify it is also the Cloud Tasks
    # dispatch deadline and the sweep job's attempt deadline.
    timeout_seconds = number
    # Database connections per instance (DB_POOL_SIZE). Fewer than concurrency
    # is fine: a request holds a connection only for its transaction.
    db_pool_size = number
  }))
  description = "Sizing of slots, book, cancel and notify; see the comments on each field."
  default = {
    slots  = { min_instances = 1, max_instances = 10, concurrency = 20, cpu = "1", memory = "512Mi", timeout_seconds = 30, db_pool_size = 5 }
    book   = { min_instances = 1, max_instances = 6, concurrency = 10, cpu = "1", memory = "512Mi", timeout_seconds = 30, db_pool_size = 5 }
    cancel = { min_instances = 0, max_instances = 4, concurrency = 10, cpu = "1", memory = "512Mi", timeout_seconds = 30, db_pool_size = 4 }
    notify = { min_instances = 0, max_instances = 3, concurrency = 5, cpu = "1", memory = "512Mi", timeout_seconds = 60, db_pool_size = 3 }
  }

  validation {
    condition     = toset(keys(var.functions)) == toset(["slots", "book", "cancel", "notify"])
    error_message = "functions must configure exactly slots, book, cancel and notify."
  }

  validation {
    condition = alltrue([for f in values(var.functions) :
      f.min_instances >= 0 && f.max_instances >= 1 && f.min_instances <= f.max_instances
      && f.concurrency >= 1 && f.concurrency <= 1000 && f.db_pool_size >= 1 && f.db_pool_size <= 100
      && f.timeout_seconds >= 15 && f.timeout_seconds <= 3600
      && (f.concurrency == 1 || tonumber(f.cpu) >= 1)
    ])
    error_message = "Each function needs 0 <= min_instances <= max_instances, concurrency 1-1000 (and cpu >= 1 when concurrency > 1), db_pool_size 1-100, timeout_seconds 15-3600."
  }

  # notify's timeout is also the Cloud Tasks dispatch deadline and Cloud Scheduler's
  # attempt deadline, each at most 30 minutes (TASKS_DISPATCH_DEADLINE_S in shared/settings.py).
  validation {
    condition     = try(var.functions["notify"].timeout_seconds, 0) <= 1800
    error_message = "functions.notify.timeout_seconds is also the Cloud Tasks dispatch deadline and the scheduler's attempt deadline: at most 1800."
  }

  # The connection budget: every instance of every function at full pool must
  # fit in max_connections with the reserve left over.
  validation {
    condition     = sum([for f in values(var.functions) : f.max_instances * f.db_pool_size]) + var.db_reserved_connections <= var.db_max_connections
    error_message = "Sum of max_instances x db_pool_size over the functions, plus db_reserved_connections, exceeds db_max_connections: lower the pools or instances, or raise db_max_connections (and the tier)."
  }
}

# ---------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------

variable "tasks_max_attempts" {
  type        = number
  description = "Attempts per notification task: the queue's retry_config.max_attempts AND notify's TASKS_MAX_ATTEMPTS (one variable feeds both). A message still undelivered after the last is recorded FAILED, so the attempts should outlast a mail relay outage."
  default     = 30

  validation {
    condition     = var.tasks_max_attempts >= 1 && var.tasks_max_attempts <= 100
    error_message = "tasks_max_attempts must be between 1 and 100."
  }
}

variable "tasks_min_backoff" {
  type        = string
  description = "Shortest wait before a failed notification is retried."
  default     = "10s"
}

variable "tasks_max_backoff" {
  type        = string
  description = "Longest wait between retries of a notification (with 30 attempts, 10s doubling to 600s spans about 4 hours)."
  default     = "600s"
}

variable "tasks_max_dispatches_per_second" {
  type        = number
  description = "Highest rate at which the queue calls notify; keep it under the SMTP relay's limit."
  default     = 5
}

variable "reminder_offsets" {
  type        = string
  description = "REMINDER_OFFSETS: when reminders go out before an appointment, e.g. \"24h,2h\"."
  default     = "24h"

  validation {
    condition     = can(regex("^\\s*[0-9]+[smhd](\\s*,\\s*[0-9]+[smhd])*\\s*$", var.reminder_offsets))
    error_message = "reminder_offsets is a comma-separated list such as \"24h,2h\" (units s, m, h, d)."
  }
}

variable "max_upcoming_appointments" {
  type        = number
  description = "MAX_UPCOMING_APPOINTMENTS: upcoming appointments (whoever booked them) a patient may hold and still book themself; beyond it only an admin books for them. So that a few accounts cannot take every slot."
  default     = 10

  validation {
    condition     = var.max_upcoming_appointments >= 1 && floor(var.max_upcoming_appointments) == var.max_upcoming_appointments
    error_message = "max_upcoming_appointments is a whole number, at least 1."
  }
}

variable "max_changes_per_hour" {
  type        = number
  description = "MAX_CHANGES_PER_HOUR: bookings, cancellations and moves a patient may make of their own appointments in any hour; past it their bookings and moves are 409 too-many-changes with Retry-After (cancelling never is). So that a script looping book-cancel cannot flood the clinic's mail and its audit trail, whatever addresses it comes from (Cloud Armor limits per IP only)."
  default     = 20

  validation {
    condition     = var.max_changes_per_hour >= 1 && floor(var.max_changes_per_hour) == var.max_changes_per_hour
    error_message = "max_changes_per_hour is a whole number, at least 1."
  }
}

variable "waitlist_max_entries" {
  type        = number
  description = "WAITLIST_MAX_ENTRIES: active waitlist entries a patient may hold; past it joining is 409 (decision 0013)."
  default     = 3

  validation {
    condition     = var.waitlist_max_entries >= 1 && var.waitlist_max_entries <= 50 && floor(var.waitlist_max_entries) == var.waitlist_max_entries
    error_message = "waitlist_max_entries is a whole number from 1 to 50."
  }
}

variable "waitlist_lead_minutes" {
  type        = number
  description = "WAITLIST_LEAD_MINUTES: a freed slot is offered to the waitlist only if it starts at least this many minutes ahead."
  default     = 120

  validation {
    condition     = var.waitlist_lead_minutes >= 0 && var.waitlist_lead_minutes <= 10080 && floor(var.waitlist_lead_minutes) == var.waitlist_lead_minutes
    error_message = "waitlist_lead_minutes is a whole number from 0 to 10080 (a week)."
  }
}

variable "hold_minutes" {
  type        = number
  description = "HOLD_MINUTES: how long an offer holds a freed slot for the waiting patient before it goes to the next entry."
  default     = 15

  validation {
    condition     = var.hold_minutes > 0 && var.hold_minutes <= 1440
    error_message = "hold_minutes is more than 0 and at most 1440 (a day)."
  }
}

variable "cors_allowed_origins" {
  type        = list(string)
  description = "Browser origins allowed to call the API (e.g. [\"https://app.clinic.example\"]), or [\"*\"] for any; empty for none (mobile apps need none)."
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_allowed_origins : o == "*" || can(regex("^https?://[^/,\\s]+$", o))])
    error_message = "Each origin is \"*\" or scheme://host[:port], without a path or comma."
  }
}

variable "sweep_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the outbox sweep."
  default     = "* * * * *"
}

variable "smtp_host" {
  type        = string
  description = "SMTP relay host name."
}

variable "smtp_port" {
  type        = number
  description = "SMTP relay port (587 with STARTTLS)."
  default     = 587

  validation {
    condition     = var.smtp_port > 0 && var.smtp_port < 65536
    error_message = "smtp_port must be a TCP port."
  }
}

variable "smtp_starttls" {
  type        = bool
  description = "Upgrade the SMTP connection with STARTTLS (keep true for any relay outside Google)."
  default     = true
}

variable "smtp_secret_version" {
  type        = string
  description = "Version of the SMTP username/password secrets notify reads: pin a number in production, \"latest\" to follow."
  default     = "latest"

  validation {
    condition     = can(regex("^([0-9]+|latest)$", var.smtp_secret_version))
    error_message = "smtp_secret_version must be a version number or \"latest\"."
  }
}

variable "mail_from" {
  type        = string
  description = "From header of every message, e.g. \"Clinic <no-reply@clinic.example>\"."
}

# ---------------------------------------------------------------------------
# Domain events
# ---------------------------------------------------------------------------

variable "event_subscriptions" {
  type        = list(string)
  description = "Pull subscriptions on appointment-events, one per integration (each with the dead-letter policy)."
  default     = ["integrations"]
}

variable "events_max_delivery_attempts" {
  type        = number
  description = "Deliveries of one event to a subscription before it goes to the dead-letter topic (5-100)."
  default     = 10

  validation {
    condition     = var.events_max_delivery_attempts >= 5 && var.events_max_delivery_attempts <= 100
    error_message = "events_max_delivery_attempts must be between 5 and 100."
  }
}

# ---------------------------------------------------------------------------
# Monitoring (module.monitoring; runbook: docs/operations.md)
# ---------------------------------------------------------------------------

variable "alert_email" {
  type        = string
  description = "Where every alert is emailed (an email notification channel); null for none: incidents still open in the console."
  default     = null
  nullable    = true

  validation {
    condition     = var.alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address, or null."
  }
}

variable "alert_notification_channels" {
  type        = list(string)
  description = "Further notification channels made outside Terraform (PagerDuty, Slack, SMS), by full name projects/PROJECT/notificationChannels/ID."
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each channel is projects/PROJECT/notificationChannels/ID."
  }
}

variable "api_latency_p95_seconds" {
  type        = map(number)
  description = "Per route class (slots, book, cancel): p95 latency at the load balancer, in seconds, held for 10 minutes, above which an alert fires."
  default     = { slots = 1.0, book = 2.0, cancel = 2.0 }

  validation {
    condition     = toset(keys(var.api_latency_p95_seconds)) == toset(["slots", "book", "cancel"]) && alltrue([for s in values(var.api_latency_p95_seconds) : s > 0 && s <= 60])
    error_message = "api_latency_p95_seconds needs slots, book and cancel, each above 0 and at most 60 seconds."
  }
}

variable "outbox_max_age_seconds" {
  type        = number
  description = "How long a due outbox row may wait undispatched before an alert fires (the sweep runs every minute)."
  default     = 300

  validation {
    condition     = var.outbox_max_age_seconds >= 60 && var.outbox_max_age_seconds <= 86400
    error_message = "outbox_max_age_seconds must be between 60 and 86400."
  }
}

variable "waitlist_hold_overdue_seconds" {
  type        = number
  description = "How long a waitlist offer may stay open past its hold time before an alert fires (its slot can be booked by nobody meanwhile)."
  default     = 180

  validation {
    condition     = var.waitlist_hold_overdue_seconds >= 60 && var.waitlist_hold_overdue_seconds <= 3600
    error_message = "waitlist_hold_overdue_seconds must be between 60 and 3600."
  }
}

variable "booking_slo_goal" {
  type        = number
  description = "Booking availability SLO over 28 days: the share of POST /appointments and PATCH /appointments/{id} not answered 5xx at the load balancer."
  default     = 0.999

  validation {
    condition     = var.booking_slo_goal >= 0.9 && var.booking_slo_goal <= 0.999
    error_message = "booking_slo_goal must be between 0.9 and 0.999."
  }
}
