# The public edge: a global external Application Load Balancer with a Google-
# managed certificate, HTTP->HTTPS redirect and a Cloud Armor policy, in front
# of API Gateway through a serverless NEG.
#
#   client --HTTPS--> forwarding rule (static IP) --> HTTPS proxy (TLS 1.2+)
#          --> URL map --> backend service [Cloud Armor, request logs]
#          --> serverless NEG (apigateway.googleapis.com) --> API Gateway
#          --> slots / book / cancel
#                      \-> the web app's paths: backend bucket (module.web)
#
# Why the gateway sits behind a load balancer: docs/decisions/0002-*.md.

resource "google_compute_global_address" "lb" {
  name    = "${var.name_prefix}-lb"
  project = var.project_id
}

resource "google_compute_managed_ssl_certificate" "api" {
  # The name follows the domains: a certificate in use cannot be deleted, so a
  # change of domains makes a new certificate (new name), attaches it, and only
  # then deletes the old one.
  name    = "${var.name_prefix}-api-${substr(sha256(join(",", var.domains)), 0, 8)}"
  project = var.project_id

  managed {
    domains = var.domains
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "modern" {
  name            = "${var.name_prefix}-tls12-modern"
  project         = var.project_id
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

# ---------------------------------------------------------------------------
# Cloud Armor
# Priorities: WAF rules 1000-1999, rate limiting 2000, default 2147483647.
# Sensitivity 1 keeps only high-confidence signatures (few false positives on
# JSON bodies); raise it after watching the logs in preview mode.
# methodenforcement is left out on purpose: its default method list lacks
# PATCH, which the API uses.
# ---------------------------------------------------------------------------

resource "google_compute_security_policy" "edge" {
  name        = "${var.name_prefix}-edge"
  project     = var.project_id
  description = "WAF, per-client rate limit and ban for the clinic API."
  type        = "CLOUD_ARMOR"

  advanced_options_config {
    # Let the WAF rules see inside JSON request bodies.
    json_parsing = "STANDARD"
    log_level    = "NORMAL"
  }

  adaptive_protection_config {
    layer_7_ddos_defense_config {
      enable = true
    }
  }

  rule {
    description = "SQL injection"
    action      = "deny(403)"
    priority    = 1000
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('sqli-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Cross-site scripting"
    action      = "deny(403)"
    priority    = 1010
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('xss-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Local file inclusion"
    action      = "deny(403)"
    priority    = 1020
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('lfi-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Remote code execution"
    action      = "deny(403)"
    priority    = 1030
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('rce-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Remote file inclusion"
    action      = "deny(403)"
    priority    = 1040
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('rfi-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Scanner detection"
    action      = "deny(403)"
    priority    = 1050
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('scannerdetection-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Protocol attacks (request smuggling, header injection)"
    action      = "deny(403)"
    priority    = 1060
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('protocolattack-v33-stable', {'sensitivity': ${var.waf_sensitivity}})"
      }
    }
  }

  rule {
    description = "Log4j JNDI lookups (CVE-2021-44228)"
    action      = "deny(403)"
    priority    = 1070
    preview     = false
    match {
      expr {
        expression = "evaluatePreconfiguredExpr('cve-canary')"
      }
    }
  }

  # Per client IP: over the threshold requests get 429; a client that keeps
  # going past the ban threshold is shut out for ban_duration_sec.
  rule {
    description = "Per-client rate limit with ban"
    action      = "rate_based_ban"
    priority    = 2000
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action   = "allow"
      exceed_action    = "deny(429)"
      enforce_on_key   = "IP"
      ban_duration_sec = var.rate_limit_ban_seconds

      rate_limit_threshold {
        count        = var.rate_limit_requests_per_minute
        interval_sec = 60
      }

      ban_threshold {
        count        = var.rate_limit_requests_per_minute * 3
        interval_sec = 300
      }
    }
  }

  rule {
    description = "Default: allow what no rule above stopped"
    action      = "allow"
    priority    = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}

# ---------------------------------------------------------------------------
# Backend: API Gateway through a serverless NEG
# ---------------------------------------------------------------------------

resource "google_compute_region_network_endpoint_group" "gateway" {
  provider = google-beta

  name                  = "${var.name_prefix}-gateway-neg"
  project               = var.project_id
  region                = var.gateway_region
  network_endpoint_type = "SERVERLESS"

  serverless_deployment {
    platform = "apigateway.googleapis.com"
    resource = var.gateway_id
  }
}

# Serverless NEG backends take no health check, port name or timeout.
resource "google_compute_backend_service" "gateway" {
  name                  = "${var.name_prefix}-gateway-backend"
  project               = var.project_id
  load_balancing_scheme = var.load_balancing_scheme
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.edge.id

  # Proof that a request came through here (and so through Cloud Armor): API Gateway
  # passes it on, and the API functions check it.
  custom_request_headers = ["X-Clinic-Edge: ${var.edge_token}"]

  backend {
    group = google_compute_region_network_endpoint_group.gateway.id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

# The web app's paths go to its backend bucket (module.web); every other path is the API.
resource "google_compute_url_map" "https" {
  name            = "${var.name_prefix}-https"
  project         = var.project_id
  default_service = google_compute_backend_service.gateway.id

  host_rule {
    hosts        = ["*"]
    path_matcher = "clinic"
  }

  path_matcher {
    name            = "clinic"
    default_service = google_compute_backend_service.gateway.id

    path_rule {
      paths   = var.web_paths
      service = var.web_backend_bucket_id
    }
  }

  dynamic "default_custom_error_response_policy" {
    for_each = google_compute_backend_bucket.problems
    content {
      error_service = default_custom_error_response_policy.value.id

      dynamic "error_response_rule" {
        for_each = local.problem_codes
        content {
          match_response_codes   = [error_response_rule.value]
          path                   = "/${local.problem_prefix}${error_response_rule.value}.json"
          override_response_code = tonumber(error_response_rule.value)
        }
      }
    }
  }
}

# ---------------------------------------------------------------------------
# Errors answered before our code runs
# API Gateway answers a missing or expired JWT (401) and its own failures (500,
# 502, 504), Cloud Armor its rate limit (429), each in its own format and with no
# CORS headers, so a browser app would see a network error. The load balancer
# replaces those bodies with the problem+json documents in problems/, served
# from a backend bucket that adds a CORS header. Only codes whose answers from
# slots, book and cancel say nothing more specific are replaced: their 400, 403,
# 404, 409, 413, 415, 422 and 503 (with Retry-After) pass through untouched. Their
# own 401 (a token without 'sub' or 'email') becomes the generic 401, which names
# both claims. Global external Application Load Balancers only (EXTERNAL_MANAGED).
# ---------------------------------------------------------------------------

locals {
  problem_prefix = "problems/"
  problem_files  = var.problem_error_responses && var.load_balancing_scheme == "EXTERNAL_MANAGED" ? fileset("${path.module}/problems", "*.json") : toset([])
  problem_codes  = sort([for f in local.problem_files : trimsuffix(f, ".json")])
}

resource "google_storage_bucket" "problems" {
  # checkov:skip=CKV_GCP_62:Holds five static error bodies that anyone may read; an access log of them records nothing worth keeping.
  # checkov:skip=CKV_GCP_78:Terraform writes every object from the repository; a lost version is restored by the next apply.
  # checkov:skip=CKV_GCP_114:A backend bucket is read anonymously by the load balancer, so this bucket cannot enforce public access prevention; it holds only the static error bodies below.
  count = length(local.problem_files) > 0 ? 1 : 0

  name     = "${var.project_id}-${var.name_prefix}-problems"
  project  = var.project_id
  location = var.problems_location

  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"
}

resource "google_storage_bucket_iam_member" "problems_public" {
  # checkov:skip=CKV_GCP_28:Public on purpose: the load balancer reads a backend bucket anonymously. The bucket holds only the static problem+json bodies in problems/.
  count = length(google_storage_bucket.problems)

  bucket = google_storage_bucket.problems[0].name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}

resource "google_storage_bucket_object" "problem" {
  for_each = local.problem_files

  bucket        = google_storage_bucket.problems[0].name
  name          = "${local.problem_prefix}${each.value}"
  source        = "${path.module}/problems/${each.value}"
  content_type  = "application/problem+json"
  cache_control = "no-store"
}

resource "google_compute_backend_bucket" "problems" {
  count = length(google_storage_bucket.problems)

  name        = "${var.name_prefix}-problems"
  project     = var.project_id
  bucket_name = google_storage_bucket.problems[0].name
  enable_cdn  = false

  # Any origin may read these: a static error body says nothing about anyone.
  custom_response_headers = ["Access-Control-Allow-Origin: *"]
}

resource "google_compute_target_https_proxy" "api" {
  name             = "${var.name_prefix}-https"
  project          = var.project_id
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.api.id]
  ssl_policy       = google_compute_ssl_policy.modern.id
}

resource "google_compute_global_forwarding_rule" "https" {
  name                  = "${var.name_prefix}-https"
  project               = var.project_id
  load_balancing_scheme = var.load_balancing_scheme
  ip_address            = google_compute_global_address.lb.id
  port_range            = "443"
  target                = google_compute_target_https_proxy.api.id
}

# ---------------------------------------------------------------------------
# Port 80: permanent redirect to HTTPS, nothing else
# ---------------------------------------------------------------------------

resource "google_compute_url_map" "http_redirect" {
  name    = "${var.name_prefix}-http-redirect"
  project = var.project_id

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  name    = "${var.name_prefix}-http-redirect"
  project = var.project_id
  url_map = google_compute_url_map.http_redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  name                  = "${var.name_prefix}-http"
  project               = var.project_id
  load_balancing_scheme = var.load_balancing_scheme
  ip_address            = google_compute_global_address.lb.id
  port_range            = "80"
  target                = google_compute_target_http_proxy.redirect.id
}
