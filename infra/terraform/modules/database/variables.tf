variable "project_id" {
  type        = string
  description = "Google Cloud project of the instance."
}

variable "region" {
  type        = string
  description = "Region of the instance, the migrations pool and its staging bucket."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"clinic\"."
}

variable "instance_name" {
  type        = string
  description = "Name of the Cloud SQL instance; null means \"<name_prefix>-pg\". Set to a clone's name after a point-in-time restore (docs/deploy.md, restore)."
  default     = null
  nullable    = true

  validation {
    condition     = var.instance_name == null || can(regex("^[a-z][a-z0-9-]{0,96}$", var.instance_name))
    error_message = "instance_name must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "network_id" {
  type        = string
  description = "VPC (projects/P/global/networks/N) with private services access, the instance's only network path."
}

variable "database_version" {
  type        = string
  description = "Cloud SQL PostgreSQL major version, e.g. POSTGRES_18 (match the local embedded PostgreSQL)."

  validation {
    condition     = can(regex("^POSTGRES_1[6-9]$", var.database_version))
    error_message = "database_version must be POSTGRES_16 or newer."
  }
}

variable "tier" {
  type        = string
  description = "Machine tier (Enterprise edition), e.g. db-custom-2-7680."
}

variable "availability_type" {
  type        = string
  description = "REGIONAL (high availability, failover replica in a second zone) or ZONAL."

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.availability_type)
    error_message = "availability_type must be REGIONAL or ZONAL."
  }
}

variable "max_connections" {
  type        = number
  description = "PostgreSQL max_connections; must exceed the sum of every function's pool size times its max instances."

  validation {
    condition     = var.max_connections >= 25 && var.max_connections <= 4000
    error_message = "max_connections must be between 25 and 4000."
  }
}

variable "db_name" {
  type        = string
  description = "Name of the application database."
}

variable "backup_retained_count" {
  type        = number
  description = "Number of daily automated backups kept."

  validation {
    condition     = var.backup_retained_count >= 7 && var.backup_retained_count <= 365
    error_message = "backup_retained_count must be between 7 and 365."
  }
}

variable "pitr_days" {
  type        = number
  description = "Days of write-ahead log kept for point-in-time recovery (1-7 on Enterprise edition)."

  validation {
    condition     = var.pitr_days >= 1 && var.pitr_days <= 7
    error_message = "pitr_days must be between 1 and 7."
  }
}

variable "iam_users" {
  type        = map(string)
  description = "Function name => service account email; each becomes a Cloud SQL IAM database user with client and instanceUser roles."
}
