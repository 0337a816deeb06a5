output "bootstrap_servers" {
  description = "The pipeline's bootstrap servers (KAFKA_PIPELINE_BROKERS)."
  value       = local.pipeline_brokers
}

output "topic_names" {
  description = "Topic names by role."
  value       = module.topics.topic_names
}

output "min_insync_replicas" {
  description = "min.insync.replicas of the topics."
  value       = module.topics.min_insync_replicas
}

output "msk_cluster_arn" {
  description = "ARN of the MSK cluster (create_msk)."
  value       = var.create_msk ? module.msk[0].cluster_arn : null
}

output "scram_secret_arn" {
  description = "Secrets Manager secret of the pipeline's SCRAM credentials (create_msk)."
  value       = var.create_msk ? module.msk[0].scram_secret_arn : null
}

output "image" {
  description = "The image the pipeline runs."
  value       = var.deploy_workload ? module.workload[0].image : null
}
