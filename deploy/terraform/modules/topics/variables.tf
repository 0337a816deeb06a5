variable "topics" {
  description = <<-EOT
    The pipeline's four topics by role. Names are the binary's defaults (--input-topic,
    --output-topic, --dlq-topic, --insights-topic). max.message.bytes: the input takes what
    upstream producers may write (Kafka's default), the dead-letter topic takes any input
    record whole plus its error headers.
  EOT
  type = map(object({
    name              = string
    max_message_bytes = number
  }))
  nullable = false
  default = {
    input = {
      name              = "user-login"
      max_message_bytes = 1048588
    }
    output = {
      name              = "processed_data"
      max_message_bytes = 1048588
    }
    dlq = {
      name              = "user-login-dlq"
      max_message_bytes = 2097152
    }
    insights = {
      name              = "insights"
      max_message_bytes = 1048588
    }
  }

  validation {
    condition     = sort(keys(var.topics)) == sort(["input", "output", "dlq", "insights"])
    error_message = "topics has exactly the roles input, output, dlq and insights."
  }

  validation {
    condition     = var.topics.dlq.max_message_bytes > var.topics.input.max_message_bytes
    error_message = "The dead-letter topic must take any input record whole plus its headers: its max_message_bytes must exceed the input's."
  }
}

variable "partitions" {
  description = "Partitions of each of the four topics, as `kafka-pipeline topics --partitions N` creates and checks them. The input's count bounds how many instances share the work (KEDA's maxReplicaCount in deploy/k8s); adding partitions later moves keys between them."
  type        = number
  default     = 6

  validation {
    condition     = var.partitions >= 1
    error_message = "partitions is at least 1."
  }
}

variable "replication_factor" {
  description = "Replicas of each partition: 3 in production (three brokers in three zones)."
  type        = number
  default     = 3

  validation {
    condition     = var.replication_factor >= 1
    error_message = "replication_factor is at least 1."
  }
}

variable "retention_ms" {
  description = "retention.ms of every topic (default 7 days)."
  type        = number
  default     = 604800000
}

variable "principal" {
  description = "Kafka principal of the pipeline and of KEDA's scaler (they share one Secret in deploy/k8s): User:<SCRAM username>, or a Confluent Cloud service account (User:sa-...)."
  type        = string
  default     = "User:kafka-pipeline"
}

variable "group_id" {
  description = "Consumer group of the pipeline (--group-id)."
  type        = string
  default     = "kafka-pipeline"
}

variable "exactly_once" {
  description = "Grant the transactional ids of --guarantee exactly-once (prefix kafka-pipeline-<group>-)."
  type        = bool
  default     = false
}

variable "create_acls" {
  description = "Create the ACLs (false on clusters without an authorizer)."
  type        = bool
  default     = true
}
