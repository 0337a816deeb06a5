# The pipeline's topics and ACLs, on any Kafka cluster the Kafka provider reaches (MSK from
# ../msk, Confluent Cloud, a self-managed cluster). The same settings `kafka-pipeline topics`
# would create, so `kafka-pipeline topics --check --partitions N --replication-factor R`
# passes afterwards.

locals {
  # The rule of `kafka-pipeline topics` (required_min_insync_replicas in
  # src/commands/topics.rs): min(2, rf - 1), at least 1.
  min_insync_replicas = max(1, min(2, var.replication_factor - 1))

  topics = {
    for role, t in var.topics : role => {
      name               = t.name
      partitions         = var.partitions
      replication_factor = var.replication_factor
      config = {
        "min.insync.replicas" = tostring(local.min_insync_replicas)
        "max.message.bytes"   = tostring(t.max_message_bytes)
        "retention.ms"        = tostring(var.retention_ms)
        "cleanup.policy"      = "delete"
      }
    }
  }

  # What the pipeline does with each resource: it reads the input and commits the group's
  # offsets, writes the other three topics (the producer is idempotent: Write implies
  # IdempotentWrite since Kafka 3.0), and with exactly-once registers transactional ids
  # kafka-pipeline-<group>-<instance> (src/kafka/client.rs). Describe everywhere: metadata,
  # and KEDA's scaler reads the group's offsets and the input's end offsets.
  grants = concat(
    [for op in ["Read", "Describe"] : { type = "Topic", name = var.topics.input.name, pattern = "Literal", op = op }],
    flatten([
      for role in ["output", "dlq", "insights"] : [
        for op in ["Write", "Describe"] : { type = "Topic", name = var.topics[role].name, pattern = "Literal", op = op }
      ]
    ]),
    [for op in ["Read", "Describe"] : { type = "Group", name = var.group_id, pattern = "Literal", op = op }],
    var.exactly_once ? [
      for op in ["Write", "Describe"] : { type = "TransactionalID", name = "kafka-pipeline-${var.group_id}-", pattern = "Prefixed", op = op }
    ] : [],
  )
  acls = { for g in local.grants : "${g.type}:${g.name}:${g.op}" => g }
}

resource "kafka_topic" "pipeline" {
  for_each = local.topics

  name               = each.value.name
  partitions         = each.value.partitions
  replication_factor = each.value.replication_factor
  config             = each.value.config
}

resource "kafka_acl" "pipeline" {
  for_each = var.create_acls ? local.acls : {}

  resource_name                = each.value.name
  resource_type                = each.value.type
  resource_pattern_type_filter = each.value.pattern
  acl_principal                = var.principal
  acl_host                     = "*"
  acl_operation                = each.value.op
  acl_permission_type          = "Allow"
}
