variable "project_id" {
  type        = string
  description = "Google Cloud project of the bucket, the backend bucket and the edge security policy."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the resource names."
}

variable "location" {
  type        = string
  description = "Location of the bucket holding the built app (a region, or a multi-region such as EU)."
}

variable "dist_dir" {
  type        = string
  description = "The app's build output (web/dist, made by `make web`): index.html and assets/*; every file in it is uploaded."
}

variable "web_api_key" {
  type        = string
  description = "The project's Web API key (Identity Platform > Application setup details, or Firebase console > Project settings): public by design, it goes into /config.json and names the project to Identity Toolkit. Restrict it to the Identity Toolkit and Token Service APIs and to the app's domains."

  validation {
    condition     = can(regex("^AIza[0-9A-Za-z_-]{35}$", var.web_api_key))
    error_message = "web_api_key must be a Google API key (AIza followed by 35 characters)."
  }
}

variable "blocked_ip_ranges" {
  type        = list(string)
  description = "Client IP ranges (CIDR) the edge security policy refuses (403) before anything is served, cached or not."
  default     = []
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days an overwritten or deleted object of the app is kept as a noncurrent version (to roll back by hand) before it is deleted."
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}
