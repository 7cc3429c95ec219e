output "network_id" {
  description = "Id of the VPC (projects/P/global/networks/N)."
  value       = google_compute_network.vpc.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.vpc.name
}

output "subnetwork_name" {
  description = "Name of the subnet used for the functions' Direct VPC egress."
  value       = google_compute_subnetwork.functions.name
}

output "private_services_range_name" {
  description = "Name of the range reserved for private services access."
  value       = google_compute_global_address.private_services.name
}

output "private_services_connection" {
  description = "The Service Networking peering; Cloud SQL must be created after it."
  value       = google_service_networking_connection.private_services.id
}
