output "cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = aws_msk_cluster.this.arn
}

output "bootstrap_brokers_sasl_scram" {
  description = "Bootstrap servers for SASL/SCRAM over TLS (port 9096): the pipeline's KAFKA_PIPELINE_BROKERS."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "bootstrap_brokers_sasl_iam" {
  description = "Bootstrap servers for IAM over TLS (port 9098), empty without iam_enabled."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.this.id
}

output "scram_secret_arn" {
  description = "Secrets Manager secret with the pipeline's SCRAM username and password."
  value       = aws_secretsmanager_secret.scram.arn
}

output "scram_username" {
  description = "The pipeline's SCRAM user (Kafka principal User:<name>)."
  value       = var.scram_username
}

output "scram_password" {
  description = "The pipeline's SCRAM password."
  value       = random_password.scram.result
  sensitive   = true
}
