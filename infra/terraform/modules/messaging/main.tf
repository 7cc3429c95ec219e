# Messaging: the Cloud Tasks queue that carries notifications to the notify
# function, the appointment-events Pub/Sub topic (domain events, with a
# dead-letter topic for its subscriptions), the SMTP secrets, and the Cloud
# Scheduler job that runs the outbox sweep every minute.
#
# The grants that let the function accounts use these (enqueue, publish, read
# a secret) live in modules/functions, beside the accounts they are for.

# ---------------------------------------------------------------------------
# Cloud Tasks
# ---------------------------------------------------------------------------

# The identity Cloud Tasks puts in the OIDC token it sends to notify. The
# book, cancel and notify accounts get iam.serviceAccountUser on it so that
# they may name it when they create a task.
resource "google_service_account" "tasks_invoker" {
  account_id   = "${var.name_prefix}-tasks-invoker"
  project      = var.project_id
  display_name = "Clinic Cloud Tasks -> notify"
  description  = "Identity of the OIDC token Cloud Tasks presents to the notify function."
}

resource "google_cloud_tasks_queue" "notifications" {
  name     = "${var.name_prefix}-notifications"
  project  = var.project_id
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.max_dispatches_per_second
    # Never more requests in flight than notify can take at once
    # (its max instances x per-instance concurrency): beyond that Cloud Tasks
    # would only collect 429s and burn attempts.
    max_concurrent_dispatches = var.max_concurrent_dispatches
  }

  # The notify function records a message as permanently FAILED on the last
  # attempt; it knows which attempt is the last one from TASKS_MAX_ATTEMPTS,
  # which the root module feeds from the same variable as max_attempts here.
  retry_config {
    max_attempts       = var.max_attempts
    min_backoff        = var.min_backoff
    max_backoff        = var.max_backoff
    max_doublings      = 5
    max_retry_duration = "0s" # attempts, not age, end a task
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }
}

# ---------------------------------------------------------------------------
# Pub/Sub domain events
# ---------------------------------------------------------------------------

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "appointment_events" {
  # checkov:skip=CKV_GCP_83:Events carry ids and status only, no personal data; Google-managed encryption at rest is accepted and a CMEK key ring would be a second lifecycle to run.
  name    = "appointment-events"
  project = var.project_id

  # Subscribers that fall behind (an EHR sync down for a weekend) can seek back.
  message_retention_duration = "604800s" # 7 days
}

resource "google_pubsub_topic" "appointment_events_dead_letter" {
  # checkov:skip=CKV_GCP_83:Holds the same id-only events as appointment-events; Google-managed encryption at rest is accepted.
  name    = "appointment-events-dead-letter"
  project = var.project_id

  message_retention_duration = "604800s"
}

# Dead letters are only useful if something keeps them until a person looks.
resource "google_pubsub_subscription" "dead_letter_inbox" {
  name    = "appointment-events-dead-letter-inbox"
  project = var.project_id
  topic   = google_pubsub_topic.appointment_events_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = "" # never expires for lack of readers
  }
}

# One pull subscription per integration (EHR sync, analytics, calendars).
resource "google_pubsub_subscription" "integrations" {
  for_each = toset(var.event_subscriptions)

  name    = "appointment-events-${each.value}"
  project = var.project_id
  topic   = google_pubsub_topic.appointment_events.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  # Events are published with the appointment id as ordering key, so that a
  # subscriber sees booked before cancelled for the same appointment.
  enable_message_ordering = true

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.appointment_events_dead_letter.id
    max_delivery_attempts = var.dead_letter_max_delivery_attempts
  }
}

# Pub/Sub's service agent forwards undeliverable messages: it must be able to
# publish to the dead-letter topic and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.appointment_events_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = google_pubsub_subscription.integrations

  project      = var.project_id
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# ---------------------------------------------------------------------------
# Secret Manager: SMTP relay credentials, read by notify only.
# Terraform creates the secrets, never their values (values in state would be
# readable by anyone with the state bucket); the operator adds a version:
#   printf %s "$SMTP_PASSWORD" | gcloud secrets versions add NAME --data-file=-
# ---------------------------------------------------------------------------

resource "google_secret_manager_secret" "smtp" {
  for_each = toset(["smtp-username", "smtp-password"])

  secret_id = "${var.name_prefix}-${each.value}"
  project   = var.project_id

  replication {
    auto {}
  }
}

# ---------------------------------------------------------------------------
# Cloud Scheduler: the outbox sweep
# ---------------------------------------------------------------------------

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  project      = var.project_id
  display_name = "Clinic Cloud Scheduler -> notify sweep"
  description  = "Identity of the OIDC token Cloud Scheduler presents to notify's /tasks/sweep."
}

resource "google_cloud_scheduler_job" "outbox_sweep" {
  name        = "${var.name_prefix}-outbox-sweep"
  project     = var.project_id
  region      = var.region
  description = "Dispatch outbox rows left behind (failed dispatch, reminders beyond Cloud Tasks' 30-day horizon)."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  # The notify function's own timeout; a sweep that takes longer is cut there.
  attempt_deadline = "${var.notify_timeout_seconds}s"

  # No retries: the next run, a minute later, is the retry.
  retry_config {
    retry_count = 0
  }

  http_target {
    # Notify's run.app URL: Cloud Scheduler in the same project counts as
    # internal traffic only when it calls the default run.app URL.
    uri         = "${var.notify_url}/tasks/sweep"
    http_method = "POST"
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = var.notify_url
    }
  }
}
