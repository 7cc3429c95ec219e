output "load_balancer_ip" {
  description = "Static IPv4 of the load balancer: create an A record for each domain pointing here."
  value       = module.edge.ip_address
}

output "api_base_urls" {
  description = "Where clients call the API (HTTPS works once DNS points at load_balancer_ip and the certificate is ACTIVE)."
  value       = [for d in var.domains : "https://${d}"]
}

output "certificate" {
  description = "Name of the managed certificate (its status: gcloud compute ssl-certificates describe NAME --global)."
  value       = module.edge.certificate
}

output "gateway_default_hostname" {
  description = "API Gateway's own host name, for diagnostics only: the functions refuse (403) what does not come through the load balancer."
  value       = module.gateway.default_hostname
}

output "api_config_id" {
  description = "The API config the gateway serves now."
  value       = module.gateway.api_config_id
}

output "function_names" {
  description = "Function => deployed Cloud Functions name (also its Cloud Run service name)."
  value       = module.functions.function_names
}

output "function_service_accounts" {
  description = "Function => runtime service account email."
  value       = module.functions.service_account_emails
}

output "notify_url" {
  description = "notify's run.app base URL (tasks, sweep, OIDC audience)."
  value       = module.functions.notify_url
}

output "instance_connection_name" {
  description = "Cloud SQL instance connection name (INSTANCE_CONNECTION_NAME)."
  value       = module.database.instance_connection_name
}

output "db_name" {
  description = "Application database name."
  value       = module.database.db_name
}

output "db_users" {
  description = "Function => IAM database user (DB_USER); grant these the app role (docs/deploy.md)."
  value       = module.database.db_users
}

output "migrations_service_account" {
  description = "Account `clinic migrate` runs as (Cloud Build)."
  value       = module.database.migrations_service_account
}

output "migrations_db_user" {
  description = "DB_USER for `clinic migrate`."
  value       = module.database.migrations_db_user
}

output "migrations_worker_pool" {
  description = "Cloud Build private pool for infra/cloudbuild/migrate.yaml."
  value       = module.database.migrations_worker_pool
}

output "migrations_staging_bucket" {
  description = "Bucket for `gcloud builds submit --gcs-source-staging-dir`."
  value       = module.database.migrations_staging_bucket
}

output "tasks_queue" {
  description = "Full Cloud Tasks queue path (TASKS_QUEUE)."
  value       = module.messaging.queue_id
}

output "tasks_max_attempts" {
  description = "The queue's max_attempts (equal to the functions' TASKS_MAX_ATTEMPTS)."
  value       = module.messaging.max_attempts
}

output "pubsub_topic" {
  description = "Domain events topic (PUBSUB_TOPIC)."
  value       = module.messaging.topic_id
}

output "smtp_secrets" {
  description = "Secret ids to add the SMTP username and password versions to."
  value       = [module.messaging.smtp_username_secret_id, module.messaging.smtp_password_secret_id]
}

output "source_bucket" {
  description = "Bucket of the uploaded function bundles."
  value       = module.functions.source_bucket
}

output "monitoring_dashboard" {
  description = "The operations dashboard (Cloud Monitoring > Dashboards); the alerts' runbook is docs/operations.md."
  value       = module.monitoring.dashboard_id
}

output "booking_slo" {
  description = "Full name of the booking availability SLO."
  value       = module.monitoring.booking_slo
}

output "edge_token_secret" {
  description = "Secret Manager secret the API functions read EDGE_TOKEN from."
  value       = module.functions.edge_token_secret_id
}
