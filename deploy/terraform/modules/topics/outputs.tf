output "topic_names" {
  description = "Topic names by role (input, output, dlq, insights)."
  value       = { for role, t in local.topics : role => t.name }
}

output "partitions" {
  description = "Partitions of each topic: the most instances that can share the input."
  value       = var.partitions
}

output "min_insync_replicas" {
  description = "min.insync.replicas of every topic."
  value       = local.min_insync_replicas
}
