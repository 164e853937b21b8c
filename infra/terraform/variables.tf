variable "name" {
  description = "Prefix of the IAM names"
  type        = string
  default     = "feedlake"
}

variable "region" {
  description = "AWS region of the bucket"
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Name of the lake's bucket"
  type        = string
}

variable "lake_prefix" {
  description = "Prefix of the lake inside the bucket (the lake URL is s3://<bucket>/<prefix>)"
  type        = string
  default     = "lake"
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; null for SSE-S3 (AES256)"
  type        = string
  default     = null
}

variable "validation_report_days" {
  description = "Days per-run validation reports are kept"
  type        = number
  default     = 180
}

variable "noncurrent_version_days" {
  description = "Days old versions of replaced or deleted objects are kept"
  type        = number
  default     = 30
}

variable "trusted_services" {
  description = "Services allowed to assume the pipeline role (ECS tasks, EC2, ...)"
  type        = list(string)
  default     = ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]
}
