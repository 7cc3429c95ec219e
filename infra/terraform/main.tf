# The clinic's production deployment on Google Cloud.
#
#   Internet -> HTTPS load balancer + Cloud Armor (module.edge)
#            -> the web app's files: bucket + Cloud CDN + edge policy (module.web)
#            -> API Gateway, JWT check (module.gateway)
#            -> slots / book / cancel functions (module.functions)
#            -> Cloud SQL, private IP + IAM auth (module.database, module.network)
#   book/cancel/notify -> Cloud Tasks -> notify -> SMTP; Pub/Sub events;
#   Cloud Scheduler -> notify /tasks/sweep (module.messaging)
#   alerts, log-based metrics, uptime check, dashboard, SLO (module.monitoring)
#
# Apply order is derived from the references; the modules only pass values.

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge(var.labels, { app = "clinic", managed-by = "terraform" })
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = merge(var.labels, { app = "clinic", managed-by = "terraform" })
}

locals {
  gateway_region = coalesce(var.gateway_region, var.region)

  # Firebase / Identity Platform: tokens are issued by securetoken.google.com
  # for the project and carry the project id as audience.
  jwt_issuer   = coalesce(var.jwt_issuer, "https://securetoken.google.com/${var.project_id}")
  jwt_audience = coalesce(var.jwt_audience, var.project_id)

  services = toset([
    "apigateway.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    # Identity Platform: the web app's sign-in (docs/deploy.md).
    "identitytoolkit.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value

  # Turning an API off on destroy would break anything else in the project
  # that uses it.
  disable_on_destroy = false
}

# The load balancer adds this value as a header to every request it passes on, and
# slots, book and cancel refuse requests without it: the gateway's own *.gateway.dev
# host name stays reachable, and this is what keeps callers from going round Cloud
# Armor through it. Regenerate with `terraform apply -replace=random_password.edge_token`.
resource "random_password" "edge_token" {
  length  = 48
  special = false
}

module "network" {
  source = "./modules/network"

  project_id                     = var.project_id
  region                         = var.region
  name_prefix                    = var.name_prefix
  functions_subnet_cidr          = var.functions_subnet_cidr
  private_services_prefix_length = var.private_services_prefix_length

  depends_on = [google_project_service.enabled]
}

module "database" {
  source = "./modules/database"

  project_id            = var.project_id
  region                = var.region
  name_prefix           = var.name_prefix
  instance_name         = var.db_instance_name
  network_id            = module.network.network_id
  database_version      = var.db_version
  tier                  = var.db_tier
  availability_type     = var.db_availability_type
  max_connections       = var.db_max_connections
  db_name               = var.db_name
  backup_retained_count = var.db_backup_retained_count
  pitr_days             = var.db_pitr_days
  iam_users             = module.functions.service_account_emails

  # Private IP needs the Service Networking peering in place first.
  depends_on = [google_project_service.enabled, module.network]
}

module "messaging" {
  source = "./modules/messaging"

  project_id  = var.project_id
  region      = var.region
  name_prefix = var.name_prefix

  # ONE variable for both ends of the retry contract: the queue's
  # retry_config.max_attempts here and TASKS_MAX_ATTEMPTS in module.functions.
  max_attempts = var.tasks_max_attempts

  min_backoff                       = var.tasks_min_backoff
  max_backoff                       = var.tasks_max_backoff
  max_dispatches_per_second         = var.tasks_max_dispatches_per_second
  max_concurrent_dispatches         = var.functions["notify"].max_instances * var.functions["notify"].concurrency
  event_subscriptions               = var.event_subscriptions
  dead_letter_max_delivery_attempts = var.events_max_delivery_attempts
  sweep_schedule                    = var.sweep_schedule
  notify_url                        = module.functions.notify_url
  notify_timeout_seconds            = var.functions["notify"].timeout_seconds

  depends_on = [google_project_service.enabled]
}

module "functions" {
  source = "./modules/functions"

  project_id  = var.project_id
  region      = var.region
  name_prefix = var.name_prefix
  bundles_dir = abspath("${path.root}/../../build/functions")
  functions   = var.functions

  network_name    = module.network.network_name
  subnetwork_name = module.network.subnetwork_name

  instance_connection_name = module.database.instance_connection_name
  db_name                  = module.database.db_name

  queue_id            = module.messaging.queue_id
  queue_name          = module.messaging.queue_name
  queue_location      = module.messaging.queue_location
  tasks_max_attempts  = var.tasks_max_attempts
  tasks_invoker_email = module.messaging.tasks_invoker_email
  tasks_invoker_id    = module.messaging.tasks_invoker_id
  scheduler_email     = module.messaging.scheduler_email
  topic_id            = module.messaging.topic_id
  topic_name          = module.messaging.topic_name

  smtp_username_secret_id = module.messaging.smtp_username_secret_id
  smtp_password_secret_id = module.messaging.smtp_password_secret_id
  smtp_secret_version     = var.smtp_secret_version
  smtp_host               = var.smtp_host
  smtp_port               = var.smtp_port
  smtp_starttls           = var.smtp_starttls
  mail_from               = var.mail_from
  # The web app is served at the first domain's root (module.web).
  public_url       = "https://${var.domains[0]}"
  reminder_offsets = var.reminder_offsets

  max_upcoming_appointments = var.max_upcoming_appointments
  max_changes_per_hour      = var.max_changes_per_hour
  waitlist_max_entries      = var.waitlist_max_entries
  waitlist_lead_minutes     = var.waitlist_lead_minutes
  hold_minutes              = var.hold_minutes

  gateway_service_account_email = module.gateway.service_account_email
  edge_token                    = random_password.edge_token.result
  cors_allowed_origins          = var.cors_allowed_origins

  depends_on = [google_project_service.enabled]
}

module "gateway" {
  source = "./modules/gateway"

  project_id  = var.project_id
  region      = local.gateway_region
  name_prefix = var.name_prefix

  # The same file the local gateway reads.
  openapi_path = "${path.root}/openapi.yaml"
  backend_urls = module.functions.api_function_uris
  jwt_issuer   = local.jwt_issuer
  jwks_uri     = var.jwks_uri
  jwt_audience = local.jwt_audience

  depends_on = [google_project_service.enabled]
}

module "edge" {
  source = "./modules/edge"

  project_id                     = var.project_id
  name_prefix                    = var.name_prefix
  domains                        = var.domains
  gateway_id                     = module.gateway.gateway_id
  gateway_region                 = local.gateway_region
  load_balancing_scheme          = var.load_balancing_scheme
  waf_sensitivity                = var.waf_sensitivity
  rate_limit_requests_per_minute = var.rate_limit_requests_per_minute
  rate_limit_ban_seconds         = var.rate_limit_ban_seconds
  edge_token                     = random_password.edge_token.result
  problem_error_responses        = var.problem_error_responses
  problems_location              = var.region
  web_backend_bucket_id          = module.web.backend_bucket_id
  web_paths                      = module.web.app_paths

  depends_on = [google_project_service.enabled]
}

module "web" {
  source = "./modules/web"

  project_id  = var.project_id
  name_prefix = var.name_prefix
  location    = var.region
  # Built by `make web` before `terraform apply` (docs/deploy.md).
  dist_dir                = abspath("${path.root}/../../web/dist")
  web_api_key             = var.web_api_key
  blocked_ip_ranges       = var.web_blocked_ip_ranges
  noncurrent_version_days = var.web_noncurrent_version_days

  depends_on = [google_project_service.enabled]
}

module "monitoring" {
  source = "./modules/monitoring"

  project_id            = var.project_id
  name_prefix           = var.name_prefix
  notification_email    = var.alert_email
  notification_channels = var.alert_notification_channels

  # What is watched, by the names the other modules gave it.
  public_host              = var.domains[0]
  backend_service_name     = module.edge.backend_service
  function_names           = module.functions.function_names
  dead_letter_subscription = module.messaging.dead_letter_subscription
  db_instance_name         = module.database.instance_name
  db_max_connections       = var.db_max_connections
  # The functions' side of the connection budget (decision 0003).
  db_connection_budget = sum([for f in values(var.functions) : f.max_instances * f.db_pool_size])

  api_latency_p95_seconds       = var.api_latency_p95_seconds
  outbox_max_age_seconds        = var.outbox_max_age_seconds
  waitlist_hold_overdue_seconds = var.waitlist_hold_overdue_seconds
  slo_goal                      = var.booking_slo_goal

  depends_on = [google_project_service.enabled]
}
