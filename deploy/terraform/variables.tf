variable "name" {
  description = "Name of the deployment: the MSK cluster and its resources."
  type        = string
  default     = "kafka-pipeline"
}

# --- the Kafka side -------------------------------------------------------------------------

variable "create_msk" {
  description = "Create an Amazon MSK cluster (modules/msk). false: use the cluster at bootstrap_servers (Confluent Cloud, self-managed), with the admin credentials below."
  type        = bool
  default     = true
}

variable "aws_region" {
  description = "AWS region of the MSK cluster."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC of the MSK cluster (create_msk)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Three private subnets in three availability zones (create_msk)."
  type        = list(string)
  default     = []
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach the brokers: the Kubernetes nodes' and Terraform's (create_msk)."
  type        = list(string)
  default     = []
}

variable "broker_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.m7g.large"
}

variable "broker_volume_gib" {
  description = "EBS storage per MSK broker in GiB."
  type        = number
  default     = 100
}

variable "bootstrap_servers" {
  description = "Bootstrap servers of an existing cluster (without create_msk)."
  type        = string
  default     = ""
}

variable "kafka_admin_sasl_mechanism" {
  description = "SASL mechanism of the admin that creates topics and ACLs on an existing cluster: plain (Confluent Cloud API keys), scram-sha512 or scram-sha256."
  type        = string
  default     = "plain"
}

variable "kafka_admin_username" {
  description = "Admin user of an existing cluster (without create_msk)."
  type        = string
  default     = ""
}

variable "kafka_admin_password" {
  description = "Admin password of an existing cluster (without create_msk)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "pipeline_username" {
  description = "SASL user of the pipeline on an existing cluster (with create_msk the module's SCRAM user)."
  type        = string
  default     = "kafka-pipeline"
}

variable "pipeline_principal" {
  description = "Kafka principal of the pipeline for the ACLs on an existing cluster (Confluent Cloud: User:sa-...); null: User:<pipeline user>."
  type        = string
  default     = null
}

variable "pipeline_password" {
  description = "SASL password of the pipeline on an existing cluster."
  type        = string
  default     = ""
  sensitive   = true
}

variable "partitions" {
  description = "Partitions of each of the four topics: the most instances that can share the input."
  type        = number
  default     = 6
}

variable "replication_factor" {
  description = "Replicas of each partition (min.insync.replicas follows: min(2, rf - 1))."
  type        = number
  default     = 3
}

variable "group_id" {
  description = "Consumer group of the pipeline."
  type        = string
  default     = "kafka-pipeline"
}

variable "exactly_once" {
  description = "Run with --guarantee exactly-once and grant its transactional ids."
  type        = bool
  default     = false
}

# --- the workload side ----------------------------------------------------------------------

variable "deploy_workload" {
  description = "Apply deploy/k8s to the Kubernetes cluster of kubeconfig_path / kube_context."
  type        = bool
  default     = true
}

variable "kubeconfig_path" {
  description = "kubeconfig of the existing Kubernetes cluster (null: KUBECONFIG or ~/.kube/config)."
  type        = string
  default     = null
}

variable "kube_context" {
  description = "kubeconfig context (null: the current one)."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace of the pipeline."
  type        = string
  default     = "kafka-pipeline"
}

variable "image_repository" {
  description = "Image repository the release workflow pushes to."
  type        = string
  default     = "ghcr.io/OWNER/kafka-pipeline"
}

variable "image_tag" {
  description = "Image tag to run (a release version)."
  type        = string
}

variable "min_instances" {
  description = "Fewest pipeline instances (KEDA minReplicaCount)."
  type        = number
  default     = 1
}

variable "max_instances" {
  description = "Most pipeline instances (KEDA maxReplicaCount), at most partitions."
  type        = number
  default     = 6
}

variable "ca_pem" {
  description = "PEM of the CA(s) of the brokers' certificates, mounted for ssl.ca.location (MSK and Confluent Cloud: public roots, e.g. TF_VAR_ca_pem=\"$(cat /etc/ssl/certs/ca-certificates.crt)\")."
  type        = string
}

variable "tags" {
  description = "Tags for the AWS resources."
  type        = map(string)
  default     = {}
}
