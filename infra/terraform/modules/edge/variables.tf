variable "project_id" {
  type        = string
  description = "Google Cloud project of the load balancer."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"clinic\"."
}

variable "domains" {
  type        = list(string)
  description = "Host names the managed certificate covers; their DNS A records must point at the load balancer's IP."

  validation {
    condition     = length(var.domains) >= 1 && length(var.domains) <= 100
    error_message = "Give between 1 and 100 domains."
  }
}

variable "gateway_id" {
  type        = string
  description = "API Gateway gateway id the serverless NEG points at."
}

variable "gateway_region" {
  type        = string
  description = "Region of the gateway (the NEG must be in the same region)."
}

variable "load_balancing_scheme" {
  type        = string
  description = "EXTERNAL_MANAGED (global external Application LB) or EXTERNAL (classic)."

  validation {
    condition     = contains(["EXTERNAL_MANAGED", "EXTERNAL"], var.load_balancing_scheme)
    error_message = "load_balancing_scheme must be EXTERNAL_MANAGED or EXTERNAL."
  }
}

variable "waf_sensitivity" {
  type        = number
  description = "Sensitivity (OWASP paranoia level) of the preconfigured WAF rules, 1 (fewest false positives) to 4."

  validation {
    condition     = var.waf_sensitivity >= 1 && var.waf_sensitivity <= 4
    error_message = "waf_sensitivity must be between 1 and 4."
  }
}

variable "rate_limit_requests_per_minute" {
  type        = number
  description = "Requests per minute one client IP may send before it gets 429."

  validation {
    # The ban threshold is three times this, and Cloud Armor refuses a threshold count over 10,000.
    condition     = var.rate_limit_requests_per_minute >= 10 && var.rate_limit_requests_per_minute * 3 <= 10000 && floor(var.rate_limit_requests_per_minute) == var.rate_limit_requests_per_minute
    error_message = "rate_limit_requests_per_minute must be a whole number from 10 to 3333: the ban threshold, three times it, may not pass Cloud Armor's cap of 10,000."
  }
}

variable "rate_limit_ban_seconds" {
  type        = number
  description = "How long a client that keeps exceeding the limit stays banned."

  validation {
    condition     = var.rate_limit_ban_seconds >= 60 && var.rate_limit_ban_seconds <= 86400
    error_message = "rate_limit_ban_seconds must be between 60 and 86400."
  }
}

variable "edge_token" {
  type        = string
  description = "Value of the X-Clinic-Edge header the load balancer adds to every request; the API functions refuse requests without it."
  sensitive   = true
}

variable "problem_error_responses" {
  type        = bool
  description = "Serve the load balancer's, API Gateway's and Cloud Armor's own 401, 429, 500, 502 and 504 as problem+json from a public bucket (EXTERNAL_MANAGED only). Turn off where an organization policy forbids public buckets."
  default     = true
}

variable "problems_location" {
  type        = string
  description = "Location of the bucket holding those problem+json bodies."
}

variable "web_backend_bucket_id" {
  type        = string
  description = "The backend bucket of the web app (module.web), which the URL map sends web_paths to."
}

variable "web_paths" {
  type        = list(string)
  description = "URL paths that are the web app's (module.web's app_paths); every other path goes to API Gateway."

  validation {
    condition     = length(var.web_paths) > 0 && alltrue([for p in var.web_paths : startswith(p, "/")])
    error_message = "web_paths must be URL paths starting with /."
  }
}
