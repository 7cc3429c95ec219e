# The private network the functions and Cloud SQL share.
#
# Cloud SQL has no public IP (see modules/database): it lives in Google's
# service producer network, reached from our VPC through private services
# access (a reserved range + a peering made by Service Networking). The
# functions reach that range through Direct VPC egress on the subnet below
# (no Serverless VPC Access connector VMs to pay for or size).

resource "google_compute_network" "vpc" {
  name                    = "${var.name_prefix}-vpc"
  project                 = var.project_id
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

# Direct VPC egress takes one IP per function instance (plus headroom during
# revision rollouts), so the subnet must hold about twice the sum of every
# function's max_instance_count. A /24 leaves room for ~250.
resource "google_compute_subnetwork" "functions" {
  name          = "${var.name_prefix}-functions"
  project       = var.project_id
  region        = var.region
  network       = google_compute_network.vpc.id
  ip_cidr_range = var.functions_subnet_cidr

  # Lets resources without external IPs reach Google APIs over internal routes.
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# The range Google allocates Cloud SQL (and the Cloud Build private pool used
# for migrations) from. /20 is enough for several instances and a pool.
resource "google_compute_global_address" "private_services" {
  name          = "${var.name_prefix}-private-services"
  project       = var.project_id
  network       = google_compute_network.vpc.id
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_services_prefix_length
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]

  # Deleting the peering fails while a Cloud SQL instance still uses it; on
  # destroy Terraform forgets it and Google removes it with the network.
  deletion_policy = "ABANDON"
}

# Nothing in this VPC accepts inbound connections: the functions only send
# (Direct VPC egress) and Cloud SQL sits in the peered producer network. The
# implied deny-ingress rule already says so; this explicit rule makes it
# visible, logged, and robust to an "allow" added by hand at a lower priority.
resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${var.name_prefix}-deny-all-ingress"
  project   = var.project_id
  network   = google_compute_network.vpc.id
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
