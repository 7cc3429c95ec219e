# The web app: static files in a Cloud Storage bucket behind the load balancer, on the
# API's origin (module.edge's URL map sends the app's paths here, everything else to
# API Gateway).
#
#   client --HTTPS--> URL map: /, /index.html, /config.json, /assets/*
#          --> backend bucket [Cloud Armor edge policy, Cloud CDN, security headers]
#          --> bucket (the build of web/, and config.json from variables)
#
# Caching follows each object's Cache-Control: hashed assets are immutable for a year,
# index.html and config.json are revalidated on every load, so a deploy shows at once.
# The local gateway serves the same files with the same headers (local/webapp.py;
# tests/unit/test_web_terraform.py holds the two together).

locals {
  app_paths = ["/", "/index.html", "/config.json", "/assets/*"]

  # config.json is written below from variables, never taken from the build; hidden
  # files (the build's .built stamp) are not the app's.
  files = toset([for f in fileset(var.dist_dir, "**") : f if f != "config.json" && length(regexall("(^|/)[.]", f)) == 0])

  immutable  = "public, max-age=31536000, immutable"
  revalidate = "no-cache"

  content_types = {
    ".html"        = "text/html; charset=utf-8"
    ".js"          = "text/javascript; charset=utf-8"
    ".mjs"         = "text/javascript; charset=utf-8"
    ".css"         = "text/css; charset=utf-8"
    ".json"        = "application/json"
    ".map"         = "application/json"
    ".webmanifest" = "application/manifest+json"
    ".txt"         = "text/plain; charset=utf-8"
    ".svg"         = "image/svg+xml"
    ".png"         = "image/png"
    ".jpg"         = "image/jpeg"
    ".jpeg"        = "image/jpeg"
    ".webp"        = "image/webp"
    ".avif"        = "image/avif"
    ".ico"         = "image/x-icon"
    ".woff"        = "font/woff"
    ".woff2"       = "font/woff2"
  }

  # Each file's object metadata: Content-Type by extension, Cache-Control by folder.
  objects = {
    for f in local.files : f => {
      content_type  = lookup(local.content_types, lower(try(regex("\\.[^./]+$", f), "")), "application/octet-stream")
      cache_control = startswith(f, "assets/") ? local.immutable : local.revalidate
    }
  }

  identity_origins = ["https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"]

  # Scripts, styles and fetches from the app's own origin only, and sign-in calls to
  # Identity Platform. No inline script or style, no framing.
  content_security_policy = join("; ", [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src ${join(" ", concat(["'self'"], local.identity_origins))}",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ])

  security_headers = [
    "Content-Security-Policy: ${local.content_security_policy}",
    "X-Content-Type-Options: nosniff",
    "Referrer-Policy: strict-origin",
  ]

  config = {
    auth = {
      apiKey             = var.web_api_key
      identityToolkitUrl = local.identity_origins[0]
      secureTokenUrl     = local.identity_origins[1]
    }
  }
}

resource "google_storage_bucket" "web" {
  # checkov:skip=CKV_GCP_62:Holds the app's public static files; the load balancer's request logs already record who fetched what.
  # checkov:skip=CKV_GCP_114:A backend bucket is read anonymously by the load balancer, so this bucket cannot enforce public access prevention; it holds only the built app and its public config.
  name     = "${var.project_id}-${var.name_prefix}-web"
  project  = var.project_id
  location = var.location

  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"

  # "/" is index.html (the load balancer's backend bucket follows the bucket's website
  # configuration for the root).
  website {
    main_page_suffix = "index.html"
  }

  # A deploy overwrites index.html and deletes assets no build refers to any more: the
  # versions before it stay a while for a rollback by hand.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "web_public" {
  # checkov:skip=CKV_GCP_28:Public on purpose: the load balancer reads a backend bucket anonymously, and these are the files every browser loads. Nothing private is ever written here.
  bucket = google_storage_bucket.web.name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}

resource "google_storage_bucket_object" "file" {
  for_each = local.objects

  bucket        = google_storage_bucket.web.name
  name          = each.key
  source        = "${var.dist_dir}/${each.key}"
  content_type  = each.value.content_type
  cache_control = each.value.cache_control
}

resource "google_storage_bucket_object" "config" {
  bucket        = google_storage_bucket.web.name
  name          = "config.json"
  content       = jsonencode(local.config)
  content_type  = "application/json"
  cache_control = local.revalidate

  # Checked here, as the file objects above are none at all without a build.
  lifecycle {
    precondition {
      condition     = contains(local.files, "index.html")
      error_message = "The web app is not built (no index.html in dist_dir): run `make web` before terraform apply."
    }
  }
}

# ---------------------------------------------------------------------------
# Cloud Armor at the edge: a backend bucket takes only an edge security policy,
# evaluated before the cache. Edge policies match client IPs and regions (no WAF
# expressions or rate limits: those guard the API, module.edge); the app is static.
# ---------------------------------------------------------------------------

resource "google_compute_security_policy" "web_edge" {
  # checkov:skip=CKV_GCP_73:An edge security policy cannot evaluate preconfigured expressions such as cve-canary; the bucket serves static files and runs no Java. The API's policy (module.edge) has the Log4j rule.
  name        = "${var.name_prefix}-web-edge"
  project     = var.project_id
  description = "Edge policy of the web app's backend bucket: refuses the blocked client ranges, before the cache."
  type        = "CLOUD_ARMOR_EDGE"

  dynamic "rule" {
    for_each = length(var.blocked_ip_ranges) > 0 ? [var.blocked_ip_ranges] : []
    content {
      description = "Blocked client ranges"
      action      = "deny(403)"
      priority    = 1000
      match {
        versioned_expr = "SRC_IPS_V1"
        config {
          src_ip_ranges = rule.value
        }
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

resource "google_compute_backend_bucket" "web" {
  name                 = "${var.name_prefix}-web"
  project              = var.project_id
  description          = "The clinic's web app (static files)."
  bucket_name          = google_storage_bucket.web.name
  edge_security_policy = google_compute_security_policy.web_edge.id

  # Production's security headers on every file (the local gateway sends the same).
  custom_response_headers = local.security_headers

  enable_cdn       = true
  compression_mode = "AUTOMATIC"

  cdn_policy {
    # Each object's own Cache-Control decides (set above per object): hashed assets
    # are cached for a year, index.html and config.json are revalidated.
    cache_mode         = "USE_ORIGIN_HEADERS"
    request_coalescing = true
    # A missing file is not remembered: the next deploy may add it.
    negative_caching = false
  }
}
