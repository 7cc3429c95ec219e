# API Gateway: verifies the caller's JWT (Firebase / Identity Platform) and
# forwards the verified claims to slots, book and cancel, calling them with an
# OIDC token of its own service account (the only account allowed to invoke
# them). The config is built from the same OpenAPI document the local gateway
# reads, infra/terraform/openapi.yaml, with the function URLs and the identity
# provider filled in by templatefile().

resource "google_service_account" "gateway" {
  account_id   = "${var.name_prefix}-gateway"
  project      = var.project_id
  display_name = "Clinic API Gateway"
  description  = "API Gateway's identity towards the slots, book and cancel functions."
}

resource "google_api_gateway_api" "clinic" {
  provider = google-beta

  api_id       = "${var.name_prefix}-api"
  project      = var.project_id
  display_name = "Clinic appointments API"
}

locals {
  openapi = templatefile(var.openapi_path, {
    slots_url    = var.backend_urls["slots"]
    book_url     = var.backend_urls["book"]
    cancel_url   = var.backend_urls["cancel"]
    jwt_issuer   = var.jwt_issuer
    jwks_uri     = var.jwks_uri
    jwt_audience = var.jwt_audience
  })
}

# An API config is immutable: any change to the document makes a new config
# (new name from the prefix), the gateway moves to it, then the old one goes.
resource "google_api_gateway_api_config" "clinic" {
  provider = google-beta

  api                  = google_api_gateway_api.clinic.api_id
  api_config_id_prefix = "${var.name_prefix}-"
  project              = var.project_id
  display_name         = "Clinic API (${substr(sha256(local.openapi), 0, 12)})"

  openapi_documents {
    document {
      path     = "openapi.yaml"
      contents = base64encode(local.openapi)
    }
  }

  gateway_config {
    backend_config {
      google_service_account = google_service_account.gateway.email
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_api_gateway_gateway" "clinic" {
  provider = google-beta

  gateway_id   = "${var.name_prefix}-gateway"
  api_config   = google_api_gateway_api_config.clinic.id
  project      = var.project_id
  region       = var.region
  display_name = "Clinic API gateway"
}
