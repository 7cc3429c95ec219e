# Cloud SQL for PostgreSQL: private IP only, IAM database authentication,
# backups with point-in-time recovery, deletion protection on two levels.
#
# Every database login is an IAM principal (the four function service
# accounts and the migrations account): no passwords exist to leak or rotate.
# The functions connect through cloud-sql-python-connector (pg8000, IAM auth,
# private IP), which is why connector_enforcement can be REQUIRED and why
# ssl_mode can demand client certificates (the connector presents one).

locals {
  # Cloud SQL names an IAM service-account user by its email without the
  # ".gserviceaccount.com" suffix; DB_USER in the functions must match it.
  iam_users = { for name, email in var.iam_users : name => trimsuffix(email, ".gserviceaccount.com") }

  # IAM conditions keep roles/cloudsql.client and roles/cloudsql.instanceUser
  # scoped to this one instance rather than every instance in the project.
  instance_condition = "resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.main.name}' && resource.type == 'sqladmin.googleapis.com/Instance'"
}

resource "google_sql_database_instance" "main" {
  # Another name only after a point-in-time restore into a new instance (docs/deploy.md).
  name             = coalesce(var.instance_name, "${var.name_prefix}-pg")
  project          = var.project_id
  region           = var.region
  database_version = var.database_version

  # Terraform refuses to destroy the instance; deletion_protection_enabled
  # below also stops the console, gcloud and the API.
  deletion_protection = true

  settings {
    tier              = var.tier
    edition           = "ENTERPRISE"
    availability_type = var.availability_type
    disk_type         = "PD_SSD"
    disk_autoresize   = true

    deletion_protection_enabled = true

    # Only the Cloud SQL connectors (Python connector, Auth Proxy) may connect.
    connector_enforcement = "REQUIRED"

    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network_id
      ssl_mode        = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "02:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.pitr_days

      backup_retention_settings {
        retained_backups = var.backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7 # Sunday
      hour         = 3 # UTC; clinics are closed
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
      # Client addresses and application tags are personal or noisy; the query
      # shapes are what we tune with.
      record_client_address   = false
      record_application_tags = false
    }

    # IAM database authentication: the function accounts log in with OAuth
    # tokens minted by the connector.
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }

    # Sized against the functions' pools: see the connection budget check in
    # the root module and docs/decisions/0003-connection-budget.md.
    database_flags {
      name  = "max_connections"
      value = tostring(var.max_connections)
    }

    # Logging flags (CIS benchmark, checked by checkov).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    # -1 = do not log statements by duration: statements carry patients' data.
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    # DDL only: schema changes are audited, row data never reaches the logs.
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    # pgAudit audits nothing until the extension exists: db/migrations/0004_pgaudit.sql.
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }
}

resource "google_sql_database" "app" {
  name     = var.db_name
  project  = var.project_id
  instance = google_sql_database_instance.main.name

  # Dropping the database is never something an apply should do.
  deletion_policy = "ABANDON"
}

# One IAM database user per function service account.
resource "google_sql_user" "functions" {
  for_each = var.iam_users

  name     = local.iam_users[each.key]
  project  = var.project_id
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"

  # Postgres refuses to drop a role that owns or was granted anything.
  deletion_policy = "ABANDON"
}

resource "google_project_iam_member" "functions_sql_client" {
  for_each = var.iam_users

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${each.value}"

  condition {
    title      = "only-${google_sql_database_instance.main.name}"
    expression = local.instance_condition
  }
}

resource "google_project_iam_member" "functions_sql_instance_user" {
  for_each = var.iam_users

  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = "serviceAccount:${each.value}"

  condition {
    title      = "only-${google_sql_database_instance.main.name}"
    expression = local.instance_condition
  }
}

# ---------------------------------------------------------------------------
# Migrations: `clinic migrate` runs as this account, from a Cloud Build private
# pool peered into the VPC (Cloud SQL has no public IP). The account owns the
# schema: cloudsqlsuperuser lets it create the tables, the extensions the
# schema needs (btree_gist) and grant the function users their privileges.
# See docs/deploy.md and infra/cloudbuild/migrate.yaml.
# ---------------------------------------------------------------------------

resource "google_service_account" "migrations" {
  account_id   = "${var.name_prefix}-migrate"
  project      = var.project_id
  display_name = "Clinic database migrations"
  description  = "Runs `clinic migrate` from Cloud Build; owns the database schema."
}

resource "google_sql_user" "migrations" {
  name     = trimsuffix(google_service_account.migrations.email, ".gserviceaccount.com")
  project  = var.project_id
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"

  database_roles = ["cloudsqlsuperuser"]

  deletion_policy = "ABANDON"
}

resource "google_project_iam_member" "migrations_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.migrations.member

  condition {
    title      = "only-${google_sql_database_instance.main.name}"
    expression = local.instance_condition
  }
}

resource "google_project_iam_member" "migrations_sql_instance_user" {
  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = google_service_account.migrations.member

  condition {
    title      = "only-${google_sql_database_instance.main.name}"
    expression = local.instance_condition
  }
}

# A build that runs as a user-managed account must write its own logs.
resource "google_project_iam_member" "migrations_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.migrations.member
}

# Where `gcloud builds submit` uploads the repository for the migration build.
resource "google_storage_bucket" "migrations_staging" {
  # checkov:skip=CKV_GCP_62:Holds short-lived build source uploads only; reads and writes are recorded by Cloud Audit Logs (data access), a second access-log bucket adds nothing.
  name     = "${var.project_id}-${var.name_prefix}-migrations-src"
  project  = var.project_id
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Uploaded sources are only needed while the build runs.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "migrations_staging_reader" {
  bucket = google_storage_bucket.migrations_staging.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.migrations.member
}

resource "google_cloudbuild_worker_pool" "migrations" {
  # checkov:skip=CKV_GCP_86:The migration build installs the locked wheels from the Python package index, which needs egress to the internet; workers take no inbound traffic, and the pool runs nothing but infra/cloudbuild/migrate.yaml.
  name     = "${var.name_prefix}-migrations"
  project  = var.project_id
  location = var.region

  worker_config {
    machine_type = "e2-standard-2"
    disk_size_gb = 100
    # The build installs the lock file's wheels from the package index.
    no_external_ip = false
  }

  network_config {
    peered_network          = var.network_id
    peered_network_ip_range = "/29"
  }
}
