variable "project_id" {
  type        = string
  description = "Google Cloud project that owns the network."
}

variable "region" {
  type        = string
  description = "Region of the functions' subnet (the region the functions run in)."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"clinic\"."
}

variable "functions_subnet_cidr" {
  type        = string
  description = "CIDR of the subnet the functions' Direct VPC egress takes addresses from (at least /26)."

  validation {
    condition     = can(cidrhost(var.functions_subnet_cidr, 0)) && tonumber(split("/", var.functions_subnet_cidr)[1]) <= 26
    error_message = "functions_subnet_cidr must be a valid IPv4 CIDR of size /26 or larger."
  }
}

variable "private_services_prefix_length" {
  type        = number
  description = "Prefix length of the range reserved for private services access (Cloud SQL, Cloud Build private pool)."

  validation {
    condition     = var.private_services_prefix_length >= 16 && var.private_services_prefix_length <= 24
    error_message = "private_services_prefix_length must be between 16 and 24."
  }
}
