# The four Cloud Functions (2nd gen), each from its own source bundle, each
# with its own service account holding only the roles that function needs.
#
#   slots, book, cancel  ingress ALLOW_ALL + IAM: only the API Gateway's account
#                        may invoke them (API Gateway calls the function URL from
#                        outside any VPC, so an internal ingress would refuse it).
#   notify               ingress ALLOW_INTERNAL_ONLY + IAM: only the Cloud Tasks
#                        and Cloud Scheduler accounts may invoke it. Cloud Tasks
#                        and Cloud Scheduler in the same project count as internal
#                        traffic when they call the default run.app URL.
#
# Sizing (see variables.tf and docs/decisions/0003-connection-budget.md):
#   max_instance_request_concurrency > 1 lets one instance serve several
#   requests on threads (functions-framework's ASGI mode, each request's work
#   on a thread of THREADS: shared/asgi.py); this needs a whole vCPU
#   (available_cpu = "1"). Each instance keeps a DB pool of db_pool_size
#   connections, so max_instances x db_pool_size summed over the functions is
#   what Cloud SQL's max_connections must hold; the root module refuses a plan
#   that breaks that budget.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  api_functions = toset(["slots", "book", "cancel"])
  # The functions that write appointments and therefore dispatch the outbox
  # (Cloud Tasks for notify, Pub/Sub for events). notify runs the sweep.
  dispatchers = toset(["book", "cancel", "notify"])

  function_names = { for name in keys(var.functions) : name => "${var.name_prefix}-${name}" }

  # The deterministic run.app URL of notify's Cloud Run service
  # (https://SERVICE-PROJECT_NUMBER.REGION.run.app). Computed rather than read
  # from the resource because notify needs its own URL (NOTIFY_URL: the sweep
  # enqueues tasks for itself) and a resource cannot refer to itself. The
  # check block at the end verifies the URL once the service exists.
  notify_url = "https://${local.function_names["notify"]}-${data.google_project.this.number}.${var.region}.run.app"

  # Cloud SQL IAM user name of each function = its account email without
  # ".gserviceaccount.com" (what modules/database creates).
  db_env = {
    for name, cfg in var.functions : name => {
      INSTANCE_CONNECTION_NAME = var.instance_connection_name
      DB_USER                  = trimsuffix(google_service_account.functions[name].email, ".gserviceaccount.com")
      DB_NAME                  = var.db_name
      DB_IP_TYPE               = "PRIVATE"
      DB_POOL_SIZE             = tostring(cfg.db_pool_size)
    }
  }

  # How each instance runs, and where its logs point.
  runtime_env = {
    for name, cfg in var.functions : name => {
      # An instance runs THREADS requests at once (shared/asgi.py; else 8): one thread
      # per request Cloud Run may send, or the rest queue for a thread.
      THREADS = tostring(cfg.concurrency)
      # Not set by the runtime; the logs need it to link each line to its request's
      # trace (logging.googleapis.com/trace = projects/PROJECT/traces/ID).
      GOOGLE_CLOUD_PROJECT = var.project_id
    }
  }

  dispatch_env = {
    TASKS_QUEUE           = var.queue_id
    NOTIFY_URL            = "${local.notify_url}/tasks/notify"
    OIDC_AUDIENCE         = local.notify_url
    TASKS_SERVICE_ACCOUNT = var.tasks_invoker_email
    # Same variable as the queue's retry_config.max_attempts (root module).
    TASKS_MAX_ATTEMPTS = tostring(var.tasks_max_attempts)
    # A task attempt may last as long as notify may run, and no longer.
    TASKS_DISPATCH_DEADLINE_S = tostring(var.functions["notify"].timeout_seconds)
    PUBSUB_TOPIC              = var.topic_id
    REMINDER_OFFSETS          = var.reminder_offsets
  }

  # What only the book function reads.
  booking_env = {
    MAX_UPCOMING_APPOINTMENTS = tostring(var.max_upcoming_appointments)
  }

  # What book (bookings) and cancel (moves) read: a patient's own changes per hour.
  changes_env = {
    MAX_CHANGES_PER_HOUR = tostring(var.max_changes_per_hour)
  }

  # The waitlist (decision 0013): every function that frees a slot (slots publishes,
  # cancel cancels and moves, notify expires offers) holds it; book joins and accepts.
  waitlist_env = {
    WAITLIST_MAX_ENTRIES  = tostring(var.waitlist_max_entries)
    WAITLIST_LEAD_MINUTES = tostring(var.waitlist_lead_minutes)
    HOLD_MINUTES          = tostring(var.hold_minutes)
  }

  notify_env = {
    VERIFY_OIDC     = "true"
    OIDC_AUDIENCE   = local.notify_url
    NOTIFY_INVOKERS = join(",", [var.tasks_invoker_email, var.scheduler_email])
    # Notify requires IAM (only the two invokers above hold run.invoker, never allUsers):
    # Cloud Run checks each token and forwards it without its signature, so notify
    # checks the claims of such a token instead of a signature that is no longer there.
    OIDC_CHECKED_BY_CLOUD_RUN = "true"
    SMTP_HOST                 = var.smtp_host
    SMTP_PORT                 = tostring(var.smtp_port)
    SMTP_STARTTLS             = tostring(var.smtp_starttls)
    MAIL_FROM                 = var.mail_from
    # Every email links to the appointment in the web app: PUBLIC_URL/#/appointments/ID.
    PUBLIC_URL = var.public_url
  }
}

# ---------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------

resource "google_service_account" "functions" {
  for_each = var.functions

  account_id   = "${var.name_prefix}-fn-${each.key}"
  project      = var.project_id
  display_name = "Clinic function ${each.key}"
  description  = "Runtime identity of the ${each.key} function; nothing else runs as it."
}

# Builds the functions' container images. A dedicated account instead of the
# Compute Engine default one, which new projects no longer let Cloud Build use.
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-fn-build"
  project      = var.project_id
  display_name = "Clinic functions build"
  description  = "Cloud Build identity that turns the source bundles into images."
}

# The narrow set a function build needs (instead of roles/cloudbuild.builds.builder,
# which also lets the holder act as other accounts): write build logs, push the
# image to Artifact Registry (gcf-artifacts), read the source bundle.
resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Cloud Functions copies each bundle into its own gcf-v2-sources-<number>-<region>
# bucket and the build reads it from there; that bucket appears with the first
# deploy, so the grant is on the project, narrowed by name to those buckets. The
# build service account page lists Storage Object Admin for this.
resource "google_project_iam_member" "build_reads_staged_sources" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.build.member

  condition {
    title       = "gcf-v2-sources buckets only"
    description = "The buckets Cloud Functions stages function sources in."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\")"
  }
}

# ---------------------------------------------------------------------------
# Source bundles: `make package` assembles build/functions/<name>/ (main.py,
# shared/, requirements.txt); Terraform zips each one and uploads it under its
# MD5, so a changed bundle is a new object and the function redeploys, and an
# unchanged one is left alone.
# ---------------------------------------------------------------------------

resource "google_storage_bucket" "sources" {
  # checkov:skip=CKV_GCP_62:Only Terraform and Cloud Build touch this bucket; Cloud Audit Logs record every access, a separate access-log bucket adds nothing.
  name     = "${var.project_id}-${var.name_prefix}-function-sources"
  project  = var.project_id
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Replaced bundles stay as noncurrent versions for rollbacks (docs/deploy.md).
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }
}

data "archive_file" "bundle" {
  for_each = var.functions

  type        = "zip"
  source_dir  = "${var.bundles_dir}/${each.key}"
  output_path = "${var.bundles_dir}/../zips/${each.key}.zip"
  # The provider already zeroes timestamps; fixing the mode too makes the MD5
  # (and so the object name) the same on every machine whatever its umask.
  output_file_mode = "0644"
}

resource "google_storage_bucket_object" "bundle" {
  for_each = var.functions

  name   = "${each.key}/${data.archive_file.bundle[each.key].output_md5}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.bundle[each.key].output_path
}

# ---------------------------------------------------------------------------
# notify: called by Cloud Tasks (/tasks/notify) and Cloud Scheduler (/tasks/sweep)
# ---------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "notify" {
  name     = local.function_names["notify"]
  project  = var.project_id
  location = var.region

  description = "Sends confirmation, reminder and cancellation messages; sweeps the outbox."

  build_config {
    runtime         = "python312"
    entry_point     = "notify"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle["notify"].name
      }
    }

    # Take runtime security patches without waiting for our next deploy.
    automatic_update_policy {}
  }

  service_config {
    min_instance_count               = var.functions["notify"].min_instances
    max_instance_count               = var.functions["notify"].max_instances
    max_instance_request_concurrency = var.functions["notify"].concurrency
    available_cpu                    = var.functions["notify"].cpu
    available_memory                 = var.functions["notify"].memory
    timeout_seconds                  = var.functions["notify"].timeout_seconds

    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions["notify"].email

    # Private ranges (Cloud SQL's private IP) through the VPC; Google APIs and
    # the SMTP relay over the default path.
    direct_vpc_network_interface {
      network    = var.network_name
      subnetwork = var.subnetwork_name
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"

    environment_variables = merge(local.runtime_env["notify"], local.db_env["notify"], local.dispatch_env, local.notify_env, local.waitlist_env)

    # Read at instance start; pin a numeric version in production so that a
    # new secret version rolls out with a deploy, not with a random cold start.
    secret_environment_variables {
      key        = "SMTP_USERNAME"
      project_id = var.project_id
      secret     = var.smtp_username_secret_id
      version    = var.smtp_secret_version
    }
    secret_environment_variables {
      key        = "SMTP_PASSWORD"
      project_id = var.project_id
      secret     = var.smtp_password_secret_id
      version    = var.smtp_secret_version
    }
  }

  # The build account needs its roles before the build starts, and the secrets must be
  # readable before the first revision starts.
  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_sources,
    google_project_iam_member.build_reads_staged_sources,
    google_secret_manager_secret_iam_member.notify_smtp,
  ]
}

# ---------------------------------------------------------------------------
# slots, book, cancel: behind API Gateway
# ---------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "api" {
  for_each = local.api_functions

  name     = local.function_names[each.key]
  project  = var.project_id
  location = var.region

  description = "HTTP API function ${each.key}, invoked only by API Gateway."

  build_config {
    runtime         = "python312"
    entry_point     = each.key
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle[each.key].name
      }
    }

    automatic_update_policy {}
  }

  service_config {
    min_instance_count               = var.functions[each.key].min_instances
    max_instance_count               = var.functions[each.key].max_instances
    max_instance_request_concurrency = var.functions[each.key].concurrency
    available_cpu                    = var.functions[each.key].cpu
    available_memory                 = var.functions[each.key].memory
    timeout_seconds                  = var.functions[each.key].timeout_seconds

    # checkov:skip=CKV_GCP_124:API Gateway calls the function URL from Google's edge, which Cloud Run does not count as internal or as a load balancer; access is closed by IAM instead (only the gateway's account has roles/run.invoker).
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions[each.key].email

    direct_vpc_network_interface {
      network    = var.network_name
      subnetwork = var.subnetwork_name
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"

    environment_variables = merge(
      local.runtime_env[each.key],
      local.db_env[each.key],
      contains(local.dispatchers, each.key) ? local.dispatch_env : {},
      each.key == "book" ? local.booking_env : {},
      contains(["book", "cancel"], each.key) ? local.changes_env : {},
      local.waitlist_env,
      { CORS_ALLOWED_ORIGINS = join(",", var.cors_allowed_origins) },
    )

    # The load balancer's proof header, from Secret Manager rather than a plain variable
    # that anyone with Viewer on the project could read. The version is pinned, so a new
    # token (apply -replace=random_password.edge_token) redeploys the functions with it.
    secret_environment_variables {
      key        = "EDGE_TOKEN"
      project_id = var.project_id
      secret     = google_secret_manager_secret.edge_token.secret_id
      version    = google_secret_manager_secret_version.edge_token.version
    }
  }

  # The build account needs its roles before the build starts, and the secret must be
  # readable before the first revision starts.
  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_sources,
    google_project_iam_member.build_reads_staged_sources,
    google_secret_manager_secret_iam_member.edge_token,
  ]
}

# ---------------------------------------------------------------------------
# Who may invoke what (roles/run.invoker on the Cloud Run service behind each
# function; for kebab-case names the service has the function's name).
# ---------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "api_invoker" {
  for_each = google_cloudfunctions2_function.api

  project  = var.project_id
  location = var.region
  service  = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.gateway_service_account_email}"
}

# Direct VPC egress is authorised by the function's own account holding run.invoker on
# its service ("Configure Direct VPC egress for 2nd gen functions", IAM permissions).
# Calling itself gets it nothing: notify also checks the caller against NOTIFY_INVOKERS.
resource "google_cloud_run_service_iam_member" "self_invoker" {
  for_each = var.functions

  project  = var.project_id
  location = var.region
  service  = each.key == "notify" ? google_cloudfunctions2_function.notify.name : google_cloudfunctions2_function.api[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.functions[each.key].member
}

resource "google_cloud_run_service_iam_member" "notify_invoker" {
  for_each = {
    tasks     = var.tasks_invoker_email
    scheduler = var.scheduler_email
  }

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.notify.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}

# ---------------------------------------------------------------------------
# What each function may use
# ---------------------------------------------------------------------------

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.dispatchers

  project  = var.project_id
  location = var.queue_location
  name     = var.queue_name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.functions[each.key].member
}

# Creating a task with an OIDC token "as" the tasks-invoker account is an
# actAs on that account.
resource "google_service_account_iam_member" "act_as_tasks_invoker" {
  for_each = local.dispatchers

  service_account_id = var.tasks_invoker_id
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.functions[each.key].member
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.dispatchers

  project = var.project_id
  topic   = var.topic_name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.functions[each.key].member
}

resource "google_secret_manager_secret_iam_member" "notify_smtp" {
  # Static keys: for_each keys must be known at plan time, the ids may not be.
  for_each = {
    username = var.smtp_username_secret_id
    password = var.smtp_password_secret_id
  }

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.functions["notify"].member
}

# The edge token: the load balancer adds it to every request (module.edge) and slots, book
# and cancel refuse requests without it. Its value comes from random_password in the root
# module and is in the state already (the backend service's header holds it too), so the
# version takes it as secret_data. Only the three API functions may read it.
resource "google_secret_manager_secret" "edge_token" {
  secret_id = "${var.name_prefix}-edge-token"
  project   = var.project_id

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "edge_token" {
  secret      = google_secret_manager_secret.edge_token.id
  secret_data = var.edge_token
}

resource "google_secret_manager_secret_iam_member" "edge_token" {
  for_each = local.api_functions

  project   = var.project_id
  secret_id = google_secret_manager_secret.edge_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.functions[each.key].member
}

# After apply: warn if the URL we computed for notify is not one its service
# answers on (tasks and the sweep would then fail with 404).
check "notify_url_is_served" {
  data "google_cloud_run_v2_service" "notify" {
    project  = var.project_id
    location = var.region
    name     = google_cloudfunctions2_function.notify.name
  }

  assert {
    condition     = contains(data.google_cloud_run_v2_service.notify.urls, local.notify_url)
    error_message = "notify does not serve ${local.notify_url}; set NOTIFY_URL/OIDC_AUDIENCE to one of its URLs."
  }
}
