output "ip_address" {
  description = "The load balancer's static IPv4 address (the DNS A record of every domain)."
  value       = google_compute_global_address.lb.address
}

output "security_policy" {
  description = "Name of the Cloud Armor policy."
  value       = google_compute_security_policy.edge.name
}

output "certificate" {
  description = "Name of the managed certificate (status: gcloud compute ssl-certificates describe)."
  value       = google_compute_managed_ssl_certificate.api.name
}

output "backend_service" {
  description = "Name of the backend service (its request logs are in Cloud Logging)."
  value       = google_compute_backend_service.gateway.name
}

output "problem_codes" {
  description = "Status codes the load balancer answers with its own problem+json body (empty when turned off or on the classic load balancer)."
  value       = local.problem_codes
}
