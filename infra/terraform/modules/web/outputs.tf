output "backend_bucket_id" {
  description = "The backend bucket serving the app, for the URL map's app paths."
  value       = google_compute_backend_bucket.web.id
}

output "bucket_name" {
  description = "The bucket holding the built app."
  value       = google_storage_bucket.web.name
}

output "app_paths" {
  description = "The URL paths that are the app's (everything else is the API)."
  value       = local.app_paths
}

output "edge_security_policy" {
  description = "Name of the Cloud Armor edge security policy in front of the app's files."
  value       = google_compute_security_policy.web_edge.name
}

output "files" {
  description = "Object names uploaded from dist_dir (config.json is written from variables)."
  value       = sort(tolist(local.files))
}
