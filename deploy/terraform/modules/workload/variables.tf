variable "namespace" {
  description = "Namespace of the pipeline's objects (deploy/k8s is namespace-free)."
  type        = string
  default     = "kafka-pipeline"
}

variable "create_namespace" {
  description = "Create the namespace."
  type        = bool
  default     = true
}

variable "image_repository" {
  description = "Image repository of kafka-pipeline (the release workflow pushes it), e.g. ghcr.io/OWNER/kafka-pipeline."
  type        = string
}

variable "image_tag" {
  description = "Image tag to run, e.g. the release version 0.2.0 (.github/workflows/release.yml)."
  type        = string
}

variable "min_instances" {
  description = "KEDA's minReplicaCount: instances that run with no lag."
  type        = number
  default     = 1

  validation {
    condition     = var.min_instances >= 1
    error_message = "min_instances is at least 1 (KEDA scales a StatefulSet to zero only with activation settings this module does not set)."
  }
}

variable "max_instances" {
  description = "KEDA's maxReplicaCount: at most the input topic's partition count (a member beyond it gets no partition and sits idle)."
  type        = number
  default     = 6
}

variable "input_partitions" {
  description = "Partitions of the input topic (modules/topics output partitions); max_instances may not exceed it."
  type        = number
  default     = 6
}

variable "brokers" {
  description = "Bootstrap servers of the pipeline and of KEDA's scaler (MSK: the SASL/SCRAM list, port 9096)."
  type        = string
}

variable "topic_names" {
  description = "Topic names by role (modules/topics output topic_names)."
  type        = map(string)
  default = {
    input    = "user-login"
    output   = "processed_data"
    dlq      = "user-login-dlq"
    insights = "insights"
  }
}

variable "group_id" {
  description = "Consumer group of the pipeline (and the group KEDA's scaler watches)."
  type        = string
  default     = "kafka-pipeline"
}

variable "exactly_once" {
  description = "Run with --guarantee exactly-once (the Kafka user then needs the transactional-id ACLs: modules/topics exactly_once)."
  type        = bool
  default     = false
}

variable "create_secret" {
  description = "Create the Secret kafka-pipeline-kafka from sasl_username, sasl_password and ca_pem (they end up in the Terraform state). false: it exists already (external secrets operator, kubectl create secret)."
  type        = bool
  default     = true
}

variable "sasl_username" {
  description = "SASL/SCRAM-SHA-512 user (MSK: modules/msk output scram_username)."
  type        = string
  default     = ""
}

variable "sasl_password" {
  description = "SASL/SCRAM-SHA-512 password (MSK: modules/msk output scram_password)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "ca_pem" {
  description = "PEM of the CA(s) that signed the brokers' certificates, mounted as ssl.ca.location (MSK: Amazon's public root CAs, e.g. the system bundle)."
  type        = string
  default     = ""
}

variable "extra_config" {
  description = "More KAFKA_PIPELINE_* settings for the ConfigMap (environment twins of the run flags), e.g. { KAFKA_PIPELINE_WORKERS = \"4\" }. Never KAFKA_PIPELINE_INSTANCE_ID: each pod takes its own from its name."
  type        = map(string)
  default     = {}

  validation {
    condition     = !contains(keys(var.extra_config), "KAFKA_PIPELINE_INSTANCE_ID")
    error_message = "KAFKA_PIPELINE_INSTANCE_ID must not be in the ConfigMap: every pod would be the same static member and transactional.id."
  }
}

variable "wait_for_rollout" {
  description = "Wait until the StatefulSet's pods are ready after an apply."
  type        = bool
  default     = true
}
