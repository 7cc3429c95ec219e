output "instance_name" {
  description = "Name of the Cloud SQL instance."
  value       = google_sql_database_instance.main.name
}

output "instance_connection_name" {
  description = "PROJECT:REGION:INSTANCE, the functions' INSTANCE_CONNECTION_NAME."
  value       = google_sql_database_instance.main.connection_name
}

output "private_ip_address" {
  description = "Private IP of the instance (for diagnostics; clients use the connector)."
  value       = google_sql_database_instance.main.private_ip_address
}

output "db_name" {
  description = "Name of the application database."
  value       = google_sql_database.app.name
}

output "db_users" {
  description = "Function name => IAM database user name (the functions' DB_USER)."
  value       = { for name, user in google_sql_user.functions : name => user.name }
}

output "migrations_service_account" {
  description = "Email of the account `clinic migrate` runs as."
  value       = google_service_account.migrations.email
}

output "migrations_db_user" {
  description = "IAM database user name of the migrations account (its DB_USER)."
  value       = google_sql_user.migrations.name
}

output "migrations_worker_pool" {
  description = "Full name of the Cloud Build private pool that can reach the instance."
  value       = google_cloudbuild_worker_pool.migrations.id
}

output "migrations_staging_bucket" {
  description = "Bucket `gcloud builds submit` uploads the migration build's source to."
  value       = google_storage_bucket.migrations_staging.name
}
