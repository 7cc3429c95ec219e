variable "project_id" {
  type        = string
  description = "Google Cloud project of the API, its configs and the gateway."
}

variable "region" {
  type        = string
  description = "Region of the gateway (one where API Gateway is offered, e.g. europe-west1, us-central1)."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"clinic\"."
}

variable "openapi_path" {
  type        = string
  description = "Path of the OpenAPI 2.0 template (infra/terraform/openapi.yaml, the file the local gateway reads too)."
}

variable "backend_urls" {
  type        = map(string)
  description = "slots/book/cancel => function run.app URL: x-google-backend address and jwt_audience."

  validation {
    condition     = alltrue([for k in ["slots", "book", "cancel"] : contains(keys(var.backend_urls), k)])
    error_message = "backend_urls needs slots, book and cancel."
  }
}

variable "jwt_issuer" {
  type        = string
  description = "Issuer of the users' tokens (https://securetoken.google.com/PROJECT for Firebase / Identity Platform)."
}

variable "jwks_uri" {
  type        = string
  description = "Where the gateway fetches the issuer's signing keys."
}

variable "jwt_audience" {
  type        = string
  description = "Audience the users' tokens must carry (the project id for Firebase / Identity Platform)."
}
