output "gateway_id" {
  description = "Id of the gateway (the serverless NEG's resource)."
  value       = google_api_gateway_gateway.clinic.gateway_id
}

output "default_hostname" {
  description = "The gateway's own *.gateway.dev host name (clients use the load balancer instead)."
  value       = google_api_gateway_gateway.clinic.default_hostname
}

output "api_config_id" {
  description = "Full name of the API config the gateway serves now (for rollbacks)."
  value       = google_api_gateway_api_config.clinic.id
}

output "managed_service" {
  description = "The Service Management service behind the API (enable it for API keys/quotas if ever needed)."
  value       = google_api_gateway_api.clinic.managed_service
}

output "service_account_email" {
  description = "The gateway's account, the only invoker of slots, book and cancel."
  value       = google_service_account.gateway.email
}
