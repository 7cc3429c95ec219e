terraform {
  # 1.9: variable validations may refer to other variables (connection budget).
  required_version = ">= 1.9"

  required_providers {
    # 7.21 is the first release with Direct VPC egress on google_cloudfunctions2_function
    # (7.17 brought google_sql_user.database_roles).
    google = {
      source  = "hashicorp/google"
      version = "~> 7.21"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.21"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State lives in a GCS bucket made once by hand (docs/deploy.md); the bucket
  # and prefix come from environments/<env>/backend.hcl at `terraform init`.
  backend "gcs" {}
}
