output "service_account_emails" {
  description = "Function name => its runtime service account email."
  value       = { for name, sa in google_service_account.functions : name => sa.email }
}

output "api_function_uris" {
  description = "slots/book/cancel => run.app URI (API Gateway backend address and JWT audience)."
  value       = { for name, fn in google_cloudfunctions2_function.api : name => fn.service_config[0].uri }
}

output "notify_url" {
  description = "Base run.app URL of notify (OIDC audience; tasks go to /tasks/notify, the sweep to /tasks/sweep)."
  value       = local.notify_url
}

output "function_names" {
  description = "Function name => deployed Cloud Functions name."
  value       = local.function_names
}

output "source_bucket" {
  description = "Bucket holding every uploaded source bundle (noncurrent versions kept 90 days)."
  value       = google_storage_bucket.sources.name
}

output "bundle_objects" {
  description = "Function name => object of the bundle deployed now (for rollbacks)."
  value       = { for name, obj in google_storage_bucket_object.bundle : name => obj.name }
}

output "edge_token_secret_id" {
  description = "Secret id (short name) of the edge token the API functions read as EDGE_TOKEN."
  value       = google_secret_manager_secret.edge_token.secret_id
}
