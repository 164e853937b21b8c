output "lake_url" {
  description = "The --lake / FEEDLAKE_LAKE value"
  value       = "s3://${aws_s3_bucket.lake.id}/${var.lake_prefix}"
}

output "pipeline_role_arn" {
  description = "Role the pipeline runs as"
  value       = aws_iam_role.pipeline.arn
}
