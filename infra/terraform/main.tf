# The lake's bucket and the pipeline's least-privilege role policy.
#   terraform init && terraform apply -var bucket_name=my-feedlake-lake
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

resource "aws_s3_bucket" "lake" {
  bucket = var.bucket_name
}

# Versioning: an overwritten or deleted state object can be recovered.
resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  # No rule expires objects under a Delta table's folder (articles/, _quarantine/,
  # _validation_results/): deleting a data file or log entry behind the log's back breaks the
  # table. Replaced files leave through `feedlake vacuum` (run by the compaction deployment).
  rule {
    id     = "expire-validation-reports"
    status = "Enabled"
    filter {
      prefix = "${var.lake_prefix}/_validation/"
    }
    expiration {
      days = var.validation_report_days
    }
  }

  # Vacuum deletes replaced files: drop their old versions after a grace period.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {
      prefix = "${var.lake_prefix}/"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

# What a feedlake run does to its lake, and nothing more: read, write and delete objects under
# the lake prefix, and list only that prefix. No bucket administration, no other prefix.
resource "aws_iam_policy" "pipeline" {
  name   = "${var.name}-pipeline"
  policy = templatefile("${path.module}/pipeline-policy.json.tftpl", { bucket = aws_s3_bucket.lake.id, prefix = var.lake_prefix, kms_key_arn = var.kms_key_arn })
}

resource "aws_iam_role" "pipeline" {
  name = "${var.name}-pipeline"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = var.trusted_services }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "pipeline" {
  role       = aws_iam_role.pipeline.name
  policy_arn = aws_iam_policy.pipeline.arn
}
