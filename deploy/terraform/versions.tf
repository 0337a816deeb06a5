# Providers of the root module. Versions are lower bounds of the majors the module was written
# against; `terraform init` picks the newest allowed and records it in .terraform.lock.hcl
# (commit that file in the configuration that applies this module).
terraform {
  required_version = ">= 1.6.0"

  # One state per environment: terraform init -backend-config="bucket=..." \
  #   -backend-config="key=kafka-pipeline/<environment>" -backend-config="region=..."
  # (.github/workflows/release.yml does). To try the module without a bucket, delete this block.
  backend "s3" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    kafka = {
      source  = "Mongey/kafka"
      version = ">= 0.13, < 1.0"
    }
    kustomization = {
      source  = "kbst/kustomization"
      version = ">= 0.9, < 1.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
  }
}
